"""Encoder throughput at real size, side by side in one run: the naive way against audiocap's extraction path.

- naive: plain transformers as the package's frozen-embedding cache used it, one clip at a time, fp32, all hidden
  states kept and stacked (`encode_layers` under `torch.no_grad`), weight norm recomputed at every call;
- engine: `embedding.runtime.LayerEmbedder` (what `extract_embeddings` runs): `torch.inference_mode`, weight norm
  folded, the positional convolution by FFT, equal-length batches, fp32 or bf16 autocast, each layer mean-pooled as
  soon as it is out.

For each encoder: FLOPs per audio second (`FlopCounterMode` on the weight-norm-folded model with its positional
convolution as a convolution, attention counted through the math SDPA kernel; the engine's FFT does fewer, so its
fraction of peak is in model FLOPs), audio seconds per wall second, peak memory, and `fraction_of_peak` = achieved
FLOP/s / this machine's matmul FLOP/s in that dtype (measured in the same run). Each round runs every configuration
once, naive first; a configuration's rate is the median over rounds, and its speed-up over the naive way is the median
of the per-round ratios (each against the naive run of the same round, seconds apart), so that load from other
processes on a shared machine cancels out as far as it can.
"""

import time

import numpy as np
import torch

from modeling_audiocap import resolve_encoder
from modeling_audiocap.embedding.runtime import LayerEmbedder, inference_ready, load_encoder
from modeling_audiocap.modeling_audiocap import mean_pool
from modeling_audiocap.encoder_families import encoder_family
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor

from .common import PeakMemory, timed
from .configs import ENCODERS, EncoderSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def music_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A few harmonic tones with an envelope and a little noise (float32 mono)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    wave = np.zeros_like(t)
    for _ in range(4):
        f0 = rng.uniform(80, 800)
        for harmonic in range(1, 4):
            wave += np.sin(2 * np.pi * f0 * harmonic * t + rng.uniform(0, 6.28)) / harmonic
    wave *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) ** 2
    wave += 0.05 * rng.standard_normal(t.size)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def featurized_batch(loaded, batch: int, seconds: float, seed: int = 0) -> dict:
    processor = AudioCapFeatureExtractor(loaded.feature_extractor)
    waves = [torch.from_numpy(music_like(seconds, loaded.sampling_rate, seed + i)) for i in range(batch)]
    return processor.featurize(waves)


def count_flops(loaded, features: dict) -> dict:
    """FLOPs of one forward on `features` (weight norm folded), with the share of the conv feature encoder and of
    the positional convolution."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model, config = loaded.model, loaded.config
    inputs = dict(features)
    main = inputs.pop(encoder_family(config).input_name)
    mask = inputs.pop("attention_mask", None)
    counter = FlopCounterMode(display=False)
    # the model's own FLOPs: its convolutions counted as the convolutions they are, not as the engine computes them
    nominal = inference_ready(model, config, nominal=True)
    with nominal, torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        loaded.family.encode_layers(model, main, mask, **inputs)
    total = counter.get_total_flops()
    by_module = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    top = type(model).__name__

    def share(suffix: str) -> float:
        return sum(v for k, v in by_module.items() if k == f"{top}.{suffix}") / total if total else 0.0

    return {
        "flops": total,
        "conv_feature_encoder_share": share("feature_extractor"),
        "positional_conv_share": share("encoder.pos_conv_embed"),
    }


def _naive(loaded, clip: dict, device: torch.device):
    inputs = dict(clip)
    main = inputs.pop(encoder_family(loaded.config).input_name).to(device)
    mask = inputs.pop("attention_mask", None)
    mask = None if mask is None else mask.to(device)
    extra = {k: v.to(device) for k, v in inputs.items()}
    with torch.no_grad():
        hidden, frame_mask, _ = loaded.family.encode_layers(loaded.model, main, mask, **extra)
        return mean_pool(hidden, frame_mask).cpu()


def bench_encoder(
    spec: EncoderSpec, device: torch.device, peaks: dict, deadline: float, rounds: int, log=print
) -> dict:
    """Every configuration of one encoder; configurations that would overrun `deadline` are skipped and listed."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    torch.manual_seed(0)
    loaded = load_encoder(resolve_encoder(spec.config()))
    loaded.model.eval().to(device)
    layers = list(range(loaded.num_layers))
    params = sum(p.numel() for p in loaded.model.parameters())
    plans = []  # (path, batch, dtype name, window seconds)
    window = spec.window_seconds[kind]
    plans.append(("naive", 1, "float32", window))
    plans += [("engine", b, "float32", window) for b in spec.batches[kind]]
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            plans += [("engine", b, "bfloat16", window) for b in spec.batches[kind]]
    else:
        plans += [("engine", b, "bfloat16", spec.window_seconds["cpu_bf16"]) for b in spec.batches["cpu_bf16"]]

    flops = {}  # per window length: FLOPs per audio second
    for seconds in sorted({p[3] for p in plans}):
        counted = count_flops(loaded, featurized_batch(loaded, 1, seconds))
        flops[seconds] = {**counted, "flops_per_audio_second": counted["flops"] / seconds}
    log(f"  {spec.name}: {params / 1e6:.0f}M parameters, "
        f"{flops[window]['flops_per_audio_second'] / 1e9:.1f} GFLOP per audio second at {window:g} s windows")

    inputs = {}
    for path, batch, dtype, seconds in plans:
        if (batch, seconds) not in inputs:
            inputs[(batch, seconds)] = featurized_batch(loaded, batch, seconds, seed=batch)

    def run(plan):
        path, batch, dtype, seconds = plan
        if path == "naive":
            return lambda: _naive(loaded, inputs[(1, seconds)], device)
        return lambda: embedder(inputs[(batch, seconds)])

    # warm-up (fp32, batch 1, both paths): kernel selection, allocator, lazy hooks
    _naive(loaded, inputs[(1, window)], device)
    with LayerEmbedder(loaded, layers, "mean", device, torch.float32) as embedder:
        embedder(inputs[(1, window)])

    results = {plan: {"times": {}, "peak_mib": None} for plan in plans}
    skipped = []
    rate = {}  # (dtype) -> audio s per s at batch 1, for estimating the cost of larger batches
    for round_index in range(rounds):
        for plan in plans:
            path, batch, dtype, seconds = plan
            if plan in skipped:
                continue
            estimate = None
            if dtype in rate:
                estimate = batch * seconds / rate[dtype]
            elif dtype == "float32" and "naive" in rate:
                estimate = batch * seconds / rate["naive"]
            if estimate is not None and time.perf_counter() + estimate > deadline:
                skipped.append(plan)
                continue
            if kind == "cpu" and (dtype == "bfloat16" or batch >= 16) and round_index > 0:
                continue  # one run only on a CPU: bf16 is emulated there, and batch 16 is long enough to be steady
            torch.manual_seed(0)
            if path == "naive":
                with PeakMemory(device) as memory:
                    elapsed = timed(run(plan), device)
            else:
                with LayerEmbedder(loaded, layers, "mean", device, DTYPES[dtype]) as embedder:
                    with PeakMemory(device) as memory:
                        elapsed = timed(lambda: embedder(inputs[(batch, seconds)]), device)
            results[plan]["times"][round_index] = elapsed
            previous = results[plan]["peak_mib"]
            results[plan]["peak_mib"] = memory.peak_mib if previous is None else max(previous, memory.peak_mib)
            throughput = batch * seconds / elapsed
            if batch == 1:
                key = "naive" if path == "naive" else dtype
                rate[key] = max(rate.get(key, 0.0), throughput)
            log(f"    round {round_index + 1}: {path:6s} batch {batch:3d} {dtype:8s} {throughput:8.2f} audio s/s")

    naive_plan = plans[0]
    naive_times = results[naive_plan]["times"]
    rows = []
    for plan in plans:
        path, batch, dtype, seconds = plan
        times = results[plan]["times"]
        if not times:
            rows.append({"encoder": spec.name, "path": path, "batch": batch, "dtype": dtype, "window_seconds": seconds,
                         "skipped": "time budget"})
            continue
        median = float(np.median(list(times.values())))
        audio_rate = batch * seconds / median
        achieved = flops[seconds]["flops_per_audio_second"] * audio_rate
        ratios = [
            (batch * seconds / t) / (naive_plan[3] / naive_times[r]) for r, t in times.items() if r in naive_times
        ]
        rows.append(
            {
                "encoder": spec.name,
                "path": path,
                "batch": batch,
                "dtype": dtype,
                "window_seconds": seconds,
                "runs": len(times),
                "seconds_per_call": median,
                "audio_seconds_per_second": audio_rate,
                "achieved_flops_per_second": achieved,
                "fraction_of_peak": achieved / peaks[dtype],
                "peak_memory_mib": results[plan]["peak_mib"],
                "speedup_vs_naive": float(np.median(ratios)) if ratios else None,
                "speedup_range": [min(ratios), max(ratios)] if ratios else None,
            }
        )
    loaded.model.to("cpu")
    return {
        "encoder": spec.name,
        "parameters": params,
        "flops": {f"{s:g}s": v for s, v in flops.items()},
        "rows": rows,
    }


def run_extraction(device: torch.device, peaks: dict, deadline: float, rounds: int, log=print) -> dict:
    """All encoders; the optional ones (Whisper, CLAP) only while the time budget allows."""
    out = {"encoders": [], "skipped": []}
    for spec in ENCODERS:
        remaining = deadline - time.perf_counter()
        if spec.optional and remaining < 60:
            out["skipped"].append({"encoder": spec.name, "reason": "time budget"})
            continue
        log(f"[extraction] {spec.name}")
        out["encoders"].append(bench_encoder(spec, device, peaks, deadline, rounds, log))
    return out
