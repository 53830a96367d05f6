"""The positional convolution of wav2vec2 / HuBERT / MERT computed through the FFT, for inference.

Their positional embedding is a grouped `Conv1d` of 128 taps (16 groups of 48 channels at base size): about 3 % of
the encoder's FLOPs, yet direct convolution runs it far below the matmul rate (on an H100 in bf16 it took 39 % of
the time; on a 2-core AVX2 CPU it runs at half the fp32 matmul rate). Convolution is a product in the frequency
domain, so `FFTConv1d` transforms blocks of the input (`torch.fft.rfft`, overlap-save), multiplies by the weights'
transform (per frequency, a `(blocks, 48) @ (48, 48)` complex matmul for each group, batched) and transforms back:
about 10x fewer operations at 128 taps, in float32 whatever the autocast dtype (the FFT has no bf16 kernels). The result equals the
direct convolution to float32 rounding.
"""

import torch
from torch import nn


class FFTConv1d(nn.Module):
    """A stride-1, zero-padded, grouped `nn.Conv1d` evaluated by FFT; build it with `FFTConv1d.from_conv(conv)`.

    Overlap-save with a fixed block of `2 * next_pow2(taps)` samples: the weights' transform is computed once (a
    non-persistent buffer, 38 MB at wav2vec2-base size) and every input length reuses it."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, groups: int, padding: int):
        super().__init__()
        out, per_group, taps = weight.shape
        self.groups, self.padding, self.taps = groups, padding, taps
        self.block = 2 << (taps - 1).bit_length()  # >= 2 * taps: each block gives block - taps + 1 outputs
        spectrum = torch.fft.rfft(weight.detach().float().flip(-1), n=self.block)  # (out, in/g, F)
        spectrum = spectrum.view(groups, out // groups, per_group, -1).permute(0, 3, 2, 1).contiguous()
        self.register_buffer("spectrum", spectrum, persistent=False)  # (groups, F, in/g, out/g)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone(), persistent=False)

    @classmethod
    def from_conv(cls, conv: nn.Conv1d) -> "FFTConv1d":
        if conv.stride != (1,) or conv.dilation != (1,) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"FFTConv1d needs a stride-1, undilated, zero-padded Conv1d, got {conv}")
        return cls(conv.weight, conv.bias, conv.groups, conv.padding[0])

    def extra_repr(self) -> str:
        groups, _, per_group, out_per_group = self.spectrum.shape
        return (f"{per_group * groups}, {out_per_group * groups}, kernel_size={self.taps}, groups={groups}, "
                f"padding={self.padding}, block={self.block}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames = x.shape
        groups, freqs = self.groups, self.spectrum.shape[1]
        out_frames = frames + 2 * self.padding - self.taps + 1
        step = self.block - self.taps + 1  # valid outputs per block
        blocks = -(-out_frames // step)
        total = (blocks - 1) * step + self.block
        with torch.autocast(x.device.type, enabled=False):
            padded = nn.functional.pad(x.float(), (self.padding, total - frames - self.padding))
            spectrum = torch.fft.rfft(padded.unfold(-1, self.block, step), n=self.block)  # (B, C, blocks, F)
            spectrum = spectrum.view(batch, groups, channels // groups, blocks, freqs).permute(1, 4, 0, 3, 2)
            product = torch.matmul(spectrum.reshape(groups, freqs, batch * blocks, -1), self.spectrum)
            product = product.view(groups, freqs, batch, blocks, -1).permute(2, 0, 4, 3, 1)
            out = torch.fft.irfft(product.reshape(batch, -1, blocks, freqs), n=self.block)[..., self.taps - 1 :]
            y = out.reshape(batch, -1, blocks * step)[..., :out_frames]
            if self.bias is not None:
                y = y + self.bias[:, None]
        return y.to(x.dtype)
