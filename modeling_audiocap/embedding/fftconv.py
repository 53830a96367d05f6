"""The positional convolution of wav2vec2 / HuBERT / MERT computed through the FFT, for inference.

Their positional embedding is a grouped `Conv1d` of 128 taps (16 groups of 48 channels at base size): about 3 % of
the encoder's FLOPs, yet direct convolution runs it far below the matmul rate (on an H100 in bf16 it took 39 % of
the time; on a 2-core AVX2 CPU it runs at half the fp32 matmul rate). Convolution is a product in the frequency
domain, so `FFTConv1d` transforms the input once (`torch.fft.rfft`), multiplies by the weights' transform (per
frequency, a `(batch, 48) @ (48, 48)` complex matmul for each group, batched) and transforms back: about 30x fewer
operations at 128 taps, in float32 whatever the autocast dtype (the FFT has no bf16 kernels). The result equals the
direct convolution to float32 rounding.
"""

import torch
from torch import nn


class FFTConv1d(nn.Module):
    """A stride-1, zero-padded, grouped `nn.Conv1d` evaluated by FFT; build it with `FFTConv1d.from_conv(conv)`."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, groups: int, padding: int):
        super().__init__()
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.groups = groups
        self.padding = padding
        self._spectra: dict[tuple[int, torch.device], torch.Tensor] = {}

    @classmethod
    def from_conv(cls, conv: nn.Conv1d) -> "FFTConv1d":
        if conv.stride != (1,) or conv.dilation != (1,) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"FFTConv1d needs a stride-1, undilated, zero-padded Conv1d, got {conv}")
        return cls(conv.weight, conv.bias, conv.groups, conv.padding[0])

    def extra_repr(self) -> str:
        out, per_group, taps = self.weight.shape
        return f"{per_group * self.groups}, {out}, kernel_size={taps}, groups={self.groups}, padding={self.padding}"

    def _weight_spectrum(self, length: int, device: torch.device) -> torch.Tensor:
        """`(groups, frequencies, in_per_group, out_per_group)` transform of the flipped kernel, cached per length."""
        key = (length, device)
        if key not in self._spectra:
            out, per_group, taps = self.weight.shape
            spectrum = torch.fft.rfft(self.weight.to(device).flip(-1), n=length)  # (out, in/g, F)
            spectrum = spectrum.view(self.groups, out // self.groups, per_group, -1)
            self._spectra[key] = spectrum.permute(0, 3, 2, 1).contiguous()
        return self._spectra[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames = x.shape
        taps = self.weight.shape[-1]
        out_frames = frames + 2 * self.padding - taps + 1
        length = 1 << (frames + taps - 2).bit_length()  # >= frames + taps - 1: no circular wrap-around
        with torch.autocast(x.device.type, enabled=False):
            spectrum = torch.fft.rfft(x.float(), n=length)  # (B, C, F)
            spectrum = spectrum.view(batch, self.groups, channels // self.groups, -1).permute(1, 3, 0, 2)
            product = torch.matmul(spectrum, self._weight_spectrum(length, x.device))  # (G, F, B, out/g)
            product = product.permute(2, 0, 3, 1).reshape(batch, -1, spectrum.shape[1])
            full = torch.fft.irfft(product, n=length)  # the full linear convolution with the flipped kernel
            start = taps - 1 - self.padding
            y = full[..., start : start + out_frames]
            if self.bias is not None:
                y = y + self.bias[:, None]
        return y.to(x.dtype)

