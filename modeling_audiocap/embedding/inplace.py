"""In-place GELU and per-channel GroupNorm for inference, swapped into wav2vec2 / HuBERT / MERT by `inference_ready`.

The conv feature encoder's activations are the largest tensors an encoder makes (a batch of 16 four-second windows at
24 kHz: 630 MB after the first convolution), and its first GroupNorm and every GELU write a fresh tensor of that size.
Each allocation above glibc's mmap threshold maps new pages, so the page faults of writing them cost more than the
arithmetic (on a 2-core AVX2 CPU, a GELU over those 630 MB took 0.46 s out of place, 0.10 s in place). Under
inference nothing else reads the convolution's or the FFN's output, so these modules overwrite it: the same values,
without the allocation.
"""

import torch
from torch import nn
from transformers.activations import GELUActivation


class InPlaceGELU(nn.Module):
    """Exact (erf) GELU written over its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.gelu_(x)


def channel_norm_(x: torch.Tensor, norm: nn.GroupNorm, time_dim: int) -> torch.Tensor:
    """`norm` (one group per channel: each channel over time) applied over `x` in place; `time_dim` is -1 for
    `(..., channels, time)`, 0 for `(time, channels)`."""
    var, mean = torch.var_mean(x, dim=time_dim, unbiased=False, keepdim=True)
    scale = var.add_(norm.eps).rsqrt_()
    if not norm.affine:
        return x.sub_(mean).mul_(scale)
    weight, bias = (norm.weight[:, None], norm.bias[:, None]) if time_dim == -1 else (norm.weight, norm.bias)
    return x.sub_(mean).mul_(scale.mul_(weight)).add_(bias)


class InPlaceChannelNorm(nn.Module):
    """`nn.GroupNorm` with one group per channel over `(batch, channels, time)`, written over its input."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_norm_(x, self.norm, time_dim=-1)


def is_exact_gelu(module: nn.Module | None) -> bool:
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    return type(module) is GELUActivation and module.act is nn.functional.gelu


def inplace_swaps(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """`(owner, attribute, replacement)` for each exact GELU of a conv feature-encoder layer or a feed-forward block,
    and each per-channel GroupNorm of a conv layer, in wav2vec2-style models (none elsewhere)."""
    swaps = []
    for name, module in model.named_modules():
        leaf = name.split(".")[-1]
        if ".conv_layers." in f".{name}" or leaf == "feed_forward":
            attribute = "activation" if hasattr(module, "activation") else "intermediate_act_fn"
            act = getattr(module, attribute, None)
            if act is not None and is_exact_gelu(act):
                swaps.append((module, attribute, InPlaceGELU()))
            norm = getattr(module, "layer_norm", None)
            if isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels:
                swaps.append((module, "layer_norm", InPlaceChannelNorm(norm)))
    return swaps
