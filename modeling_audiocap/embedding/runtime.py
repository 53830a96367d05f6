"""The encoder side of embedding extraction: load it, choose the compute dtype, prepare it for fast inference, and
turn a batch of equal-length windows into pooled layer embeddings.

- `load_encoder` accepts whatever `resolve_encoder` accepts (Hub id, local encoder checkpoint, config, short name of a
  from-scratch encoder), a `ResolvedEncoder`, or a saved audiocap model directory (genre classifier or captioner:
  its `.encoder`, with the feature extractor and `normalize` setting of its saved `AudioCapFeatureExtractor`).
- `choose_dtype("auto", device)`: bfloat16 autocast on CUDA GPUs that support it, and on CPUs with bf16 matrix units
  (AMX or AVX512-BF16, where oneDNN runs bf16 matmuls faster than fp32); float32 elsewhere. On a CPU without them
  (AVX2 only), PyTorch emulates bf16 matmuls and convolutions, several times slower than fp32.
- `inference_ready(model, layers)` (a context manager) puts the model in eval mode, folds weight norm into plain
  weights on copies of the affected modules (wav2vec2 / HuBERT / MERT keep their positional convolution under a
  weight-norm parametrization, recomputed at every call, and which `FlopCounterMode` and some export paths cannot
  trace), computes the positional convolution by FFT (`FFTConv1d`: the same result, far fewer operations than the
  128-tap grouped convolution), runs the conv feature encoder of wav2vec2-style encoders one window at a time as
  matrix products (`GemmFeatureEncoder`, float32 on a CPU) and their GELUs and per-channel GroupNorm in place
  (`inplace`: no fresh allocation of the largest activations), and drops the transformer layers above the deepest
  layer asked for. Everything is put back on exit, so a model passed in by the caller is left as it was. For
  inference only (no gradients).
- `LayerEmbedder` runs a batch through its family's `encode_layers` under `torch.inference_mode` and autocast and pools each kept
  layer: `"mean"` (masked mean over frames), `"mean+std"` (mean and population std, concatenated along the width) or
  `"frames"` (the valid frames themselves).
"""

import contextlib
import copy
import functools
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.feature_extraction_utils import FeatureExtractionMixin

from ..encoders import ResolvedEncoder, resolve_encoder
from ..modeling_audiocap import mean_pool
from ..encoder_families import EncoderFamily, encoder_family
from ..saved import audiocap_model_type, load_audiocap_model
from .convgemm import GemmFeatureEncoder
from .fftconv import FFTConv1d
from .inplace import inplace_swaps

POOLINGS = ("mean", "mean+std", "frames")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class LoadedEncoder:
    """An encoder with what extraction needs: its feature extractor, rate, layer count and preprocessing."""

    model: PreTrainedModel
    config: PretrainedConfig
    feature_extractor: FeatureExtractionMixin
    sampling_rate: int
    num_layers: int
    family: EncoderFamily | None = None  # its record (for CLAP, of the output used); None: the config's default
    normalize: bool = False  # peak-normalise each track (a saved audiocap model's processor setting)
    name: str = ""  # how the encoder was given, for the run's settings

    def __post_init__(self):
        if self.family is None:
            self.family = encoder_family(self.config)


def _config_digest(config: PretrainedConfig) -> str:
    import hashlib

    return hashlib.sha256(config.to_json_string(use_diff=False).encode()).hexdigest()[:16]


def load_encoder(encoder, **hub_kwargs) -> LoadedEncoder:
    """Resolve `encoder` (see the module docstring) to a `LoadedEncoder`."""
    if isinstance(encoder, LoadedEncoder):
        return encoder
    if isinstance(encoder, ResolvedEncoder):
        return LoadedEncoder(
            encoder.model, encoder.config, encoder.feature_extractor, encoder.sampling_rate, encoder.num_layers,
            family=encoder.family, name=f"{type(encoder.model).__name__}:{_config_digest(encoder.config)}",
        )
    if isinstance(encoder, PretrainedConfig):
        resolved = resolve_encoder(encoder)
        return load_encoder(resolved)
    name = os.fspath(encoder)
    if audiocap_model_type(name, **hub_kwargs):
        return _load_audiocap_model(name, **hub_kwargs)
    resolved = resolve_encoder(name, **hub_kwargs)
    loaded = load_encoder(resolved)
    loaded.name = os.path.abspath(name) if os.path.isdir(name) else name
    return loaded


def _load_audiocap_model(name: str, **hub_kwargs) -> LoadedEncoder:
    model, processor = load_audiocap_model(name, **hub_kwargs)
    config, encoder, family = model.config.encoder, model.encoder, model.family
    del model  # only the encoder is kept (the head / T5 are freed)
    return LoadedEncoder(
        encoder, config, processor.feature_extractor, processor.sampling_rate, family.num_layers(config),
        family=family, normalize=processor.normalize,
        name=os.path.abspath(name) if os.path.isdir(name) else name,
    )


# -- dtype --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's bf16 matrix features among `amx_bf16` and `avx512_bf16` (from /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags)
    except OSError:
        pass
    return ()


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """Whether bf16 matmuls run faster than fp32 on this CPU: oneDNN has bf16 kernels for it
    (`mkldnn_bf16_supported`), the CPU has bf16 dot-product units (AMX or AVX512-BF16), and a timed 768x768 matmul
    (once per process, about 0.1 s) is faster in bf16. Without the units oneDNN / ATen emulate bf16 through fp32
    conversions; with them some CPUs still run bf16 at half their fp32 rate."""
    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn_bf16 = False
    if not (onednn_bf16 and cpu_bf16_flags()):
        return False
    return _matmul_seconds(torch.bfloat16) < _matmul_seconds(torch.float32)


def _matmul_seconds(dtype: torch.dtype, size: int = 768, repeats: int = 5) -> float:
    """The fastest of `repeats` timed `size`-square CPU matmuls in `dtype` (after one warm-up)."""
    a = torch.randn(size, size).to(dtype)
    with torch.inference_mode():
        a @ a
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - start)
    return min(times)


def choose_dtype(dtype: str | torch.dtype, device: torch.device | str) -> torch.dtype:
    """The autocast dtype for `dtype` (`"auto"`, `"float32"`, `"bfloat16"`, `"float16"`) on `device`."""
    device = torch.device(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype != "auto":
        if dtype == "float16" and device.type == "cpu":
            raise ValueError("dtype='float16' is for GPUs; use 'bfloat16' or 'float32' on a CPU")
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.float32


def autocast_context(device: torch.device, dtype: torch.dtype):
    """Autocast to `dtype` on `device` (nothing for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# -- preparing the model ----------------------------------------------------------------------------------------------


def _weight_norm_modules(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """`(parent, attribute, module)` of every module whose `weight` is under weight norm (either API)."""
    from torch.nn.utils import parametrize

    found = []
    for parent in model.modules():
        for attribute, child in parent.named_children():
            parametrized = parametrize.is_parametrized(child, "weight") and any(
                "WeightNorm" in type(p).__name__ for p in child.parametrizations["weight"]
            )
            legacy = any(
                type(hook).__name__ == "WeightNorm" and getattr(hook, "name", None) == "weight"
                for hook in child._forward_pre_hooks.values()
            )
            if parametrized or legacy:
                found.append((parent, attribute, child))
    return found


def folded_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` whose weight-norm `weight` is folded into a plain parameter (g * v / ||v||)."""
    from torch.nn.utils import parametrize

    folded = copy.deepcopy(module)
    if parametrize.is_parametrized(folded, "weight"):
        # A parametrized module has a class of its own, which deepcopy shares and remove_parametrizations edits
        # (it deletes the `weight` property): give the copy its own class first, so the original keeps working.
        cls = type(module)
        namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        folded.__class__ = type(cls.__name__, cls.__bases__, namespace)
        parametrize.remove_parametrizations(folded, "weight", leave_parametrized=True)
    else:
        torch.nn.utils.remove_weight_norm(folded, "weight")
    return folded


def fold_weight_norm(model: nn.Module) -> int:
    """Fold weight norm into plain weights, in place (for inference only: training would change the model).
    Returns how many modules were folded."""
    modules = _weight_norm_modules(model)
    for parent, attribute, child in modules:
        setattr(parent, attribute, folded_copy(child))
    return len(modules)


def _layer_stack(model: nn.Module, family: EncoderFamily, total: int) -> tuple[nn.Module, str] | None:
    """`(owner, attribute)` of the encoder's `nn.ModuleList` of its `total - 1` transformer layers, for the families
    where dropping the top layers is safe (`EncoderFamily.top_layers`), or None."""
    if family.top_layers is None:
        return None
    owner, attribute = family.top_layers(model)
    stack = getattr(owner, attribute, None)
    return (owner, attribute) if isinstance(stack, nn.ModuleList) and len(stack) == total - 1 else None


def _install_output_hooks(model: nn.Module) -> None:
    """transformers >= 5 records hidden states with forward hooks it installs on the first call that asks for them, on
    the layers present then; install them now, on the full model."""
    try:
        from transformers.utils.output_capturing import maybe_install_capturing_hooks
    except ImportError:  # older transformers return hidden states from the forward itself
        return
    if isinstance(model, PreTrainedModel):
        maybe_install_capturing_hooks(model)


def _positional_convs(model: nn.Module) -> list[nn.Module]:
    """The `pos_conv_embed` modules (wav2vec2 / HuBERT / WavLM / MERT) whose `conv` is a large-kernel stride-1 Conv1d."""
    found = []
    for name, module in model.named_modules():
        conv = getattr(module, "conv", None)
        if name.split(".")[-1] == "pos_conv_embed" and isinstance(conv, nn.Conv1d):
            if conv.kernel_size[0] >= 16 and conv.stride == (1,) and conv.dilation == (1,):
                found.append(module)
    return found


@contextlib.contextmanager
def inference_ready(
    model: nn.Module, config: PretrainedConfig, max_layer: int | None = None, nominal: bool = False
) -> Iterator[int]:
    """Eval mode, weight norm folded on copies, the positional convolution computed by FFT (`FFTConv1d`) and the conv
    feature encoder as matrix products (neither with `nominal=True`: the model's own operations, for counting its
    FLOPs), GELUs and per-channel GroupNorms in place, and only the layers up to hidden state
    `max_layer` run (see the module docstring); yields the number of hidden states the model then returns. Restores
    the model on exit. For inference only: the in-place modules overwrite their inputs."""
    was_training = model.training
    folded = [(parent, attribute, child) for parent, attribute, child in _weight_norm_modules(model)]
    swaps: list[tuple[nn.Module, str, nn.Module]] = []
    family = encoder_family(config)
    total = family.num_layers(config)
    kept = total
    _install_output_hooks(model)  # before any layer is dropped, so that every layer gets its hook
    try:
        model.eval()
        for parent, attribute, child in folded:
            setattr(parent, attribute, folded_copy(child))
            swaps.append((parent, attribute, child))
        for owner in _positional_convs(model) if not nominal else []:
            swaps.append((owner, "conv", owner.conv))
            owner.conv = FFTConv1d.from_conv(owner.conv)
        gemm = None if nominal else GemmFeatureEncoder.wrap(getattr(model, "feature_extractor", None))
        if gemm is not None:  # before the in-place swaps, which its fallback (autocast, GPU) then gets
            swaps.append((model, "feature_extractor", model.feature_extractor))
            model.feature_extractor = gemm
        for owner, attribute, replacement in inplace_swaps(model):
            swaps.append((owner, attribute, getattr(owner, attribute)))
            setattr(owner, attribute, replacement)
        stack = _layer_stack(model, family, total)
        # hidden states are recorded by hooks on the layers: at least one layer must run
        keep = None if max_layer is None else max(1, max_layer)
        if stack is not None and keep is not None and keep < total - 1:
            owner, attribute = stack
            layers = getattr(owner, attribute)
            setattr(owner, attribute, nn.ModuleList(list(layers)[:keep]))
            swaps.append((owner, attribute, layers))
            final_norm = family.final_norm(model, config)
            if final_norm is not None:
                # The last hidden state is the encoder's output after its final norm: with the top layers dropped, the
                # kept top layer must come out as the full model gives it there (before that norm).
                norm_owner, norm_attribute = final_norm
                swaps.append((norm_owner, norm_attribute, getattr(norm_owner, norm_attribute)))
                setattr(norm_owner, norm_attribute, nn.Identity())
            kept = keep + 1
        yield kept
    finally:
        for parent, attribute, original in reversed(swaps):
            setattr(parent, attribute, original)
        model.train(was_training)


# -- running a batch -------------------------------------------------------------------------------------------------


def pool_frames(hidden: torch.Tensor, frame_mask: torch.Tensor | None, pooling: str) -> list[torch.Tensor] | torch.Tensor:
    """`(B, L, T, D)` float32 -> `(B, L, D)` for `"mean"`, `(B, L, 2D)` for `"mean+std"`, or a list of `(L, T_b, D)`
    (each window's valid frames) for `"frames"`."""
    if pooling == "frames":
        if frame_mask is None:
            return list(hidden.unbind(0))
        return [h[:, m] for h, m in zip(hidden.unbind(0), frame_mask.bool().unbind(0))]
    mean = mean_pool(hidden, frame_mask)  # (B, L, D)
    if pooling == "mean":
        return mean
    var = mean_pool((hidden - mean.unsqueeze(2)) ** 2, frame_mask)
    return torch.cat([mean, var.clamp_min(0).sqrt()], dim=-1)


class LayerEmbedder:
    """Runs batches of featurised windows through an encoder and pools the chosen layers.

    Use inside `with embedder:` (which prepares the model with `inference_ready` and moves it to the device).
    """

    def __init__(
        self,
        loaded: LoadedEncoder,
        layers: Sequence[int],
        pooling: str = "mean",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.loaded = loaded
        self.layers = list(layers)
        self.pooling = pooling
        self.device = torch.device(device)
        self.dtype = dtype
        self.family = loaded.family
        self.input_name = self.family.input_name
        self._stack = None

    def __enter__(self) -> "LayerEmbedder":
        self._stack = contextlib.ExitStack()
        self.loaded.model.to(self.device)  # note: moves the caller's module to the device
        self._stack.enter_context(inference_ready(self.loaded.model, self.loaded.config, max(self.layers)))
        if self.device.type == "cuda":
            # Batches come in a few fixed shapes (windows bucketed by length): let cuDNN time its convolution
            # algorithms once per shape (the grouped 128-tap positional convolution and the feature encoder's).
            previous = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
            self._stack.callback(setattr, torch.backends.cudnn, "benchmark", previous)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @torch.inference_mode()
    def __call__(self, features: dict[str, torch.Tensor]):
        """Featurised windows (the feature extractor's output, batch first) -> pooled embeddings, float32 on the CPU:
        `(B, layers, D)` / `(B, layers, 2D)`, or for `"frames"` a list of `(layers, T, D)`."""
        features = dict(features)
        non_blocking = self.device.type == "cuda"
        inputs = features.pop(self.input_name).to(self.device, non_blocking=non_blocking)
        mask = features.pop("attention_mask", None)
        if mask is not None:
            mask = mask.to(self.device, non_blocking=non_blocking)
        extra = {k: v.to(self.device, non_blocking=non_blocking) for k, v in features.items()}
        with autocast_context(self.device, self.dtype):
            hidden, frame_mask, _ = self.family.encode_layers(self.loaded.model, inputs, mask, **extra)
        first, last = self.layers[0], self.layers[-1]
        if self.layers == list(range(first, last + 1)):  # consecutive layers: a view, not a copy of every frame
            hidden = hidden[:, first : last + 1].float()
        else:
            hidden = hidden[:, self.layers].float()
        if frame_mask is not None and bool(frame_mask.all()):  # equal-length windows: no masking pass
            frame_mask = None
        pooled = pool_frames(hidden, frame_mask, self.pooling)
        if isinstance(pooled, list):
            return [p.cpu() for p in pooled]
        return pooled.cpu()


def resolve_layers(layers: str | int | Sequence[int], total: int) -> list[int]:
    """`"all"` -> `[0, ..., total - 1]`; a list of indices (negative ones count from the top) -> sorted, unique,
    non-negative indices. Hidden state 0 is the encoder's input embedding, `total - 1` its top layer."""
    if isinstance(layers, str):
        if layers == "all":
            return list(range(total))
        layers = [int(part) for part in layers.replace(",", " ").split()]
    if isinstance(layers, int):
        layers = [layers]
    resolved = []
    for index in layers:
        index = int(index)
        if not -total <= index < total:
            raise ValueError(f"layer {index} out of range: this encoder has {total} hidden states (0..{total - 1})")
        resolved.append(index % total)
    if not resolved:
        raise ValueError("layers is empty")
    return sorted(set(resolved))


__all__ = [
    "DTYPES",
    "LayerEmbedder",
    "LoadedEncoder",
    "POOLINGS",
    "autocast_context",
    "choose_dtype",
    "cpu_bf16_flags",
    "cpu_has_fast_bf16",
    "fold_weight_norm",
    "folded_copy",
    "inference_ready",
    "load_encoder",
    "pool_frames",
    "resolve_layers",
]
