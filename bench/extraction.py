"""Encoder throughput at real size, side by side in one run: the naive way against audiocap's extraction path.

- naive: plain transformers as the package's frozen-embedding cache used it, one clip at a time, fp32, all hidden
  states kept and stacked (`encode_layers` under `torch.no_grad`), weight norm recomputed at every call;
- engine: `embedding.runtime.LayerEmbedder` (what `extract_embeddings` runs): `torch.inference_mode`, weight norm
  folded, the positional convolution by FFT, on a CPU the conv feature encoder as matrix products and GELUs /
  GroupNorms in place, equal-length batches, fp32 or bf16 autocast, the layers mean-pooled without a copy.

For each encoder: FLOPs per audio second (`FlopCounterMode` on the weight-norm-folded model with its positional
convolution as a convolution, attention counted through the math SDPA kernel; the engine's FFT does fewer, so its
fraction of peak is in model FLOPs), audio seconds per wall second, peak memory (on a CPU in a fresh process after the
timed runs: `cpu_peak_memory`), and
- `fraction_of_peak` = achieved FLOP/s / the matmul FLOP/s this machine held in that dtype around the run (its best
  matmul path run back to back for a second just before and just after, `held_matmul_rate`), and
- `fraction_of_best_call` = achieved FLOP/s / the best single matmul call of the run's start (`matmul_peak`), which a
  shared host or a boosting CPU does not hold for the seconds an encoder run takes.
Each round runs every configuration once, naive first; a configuration's rate is the median over rounds, and its
speed-up over the naive way is the median of the per-round ratios (each against the naive run of the same round,
seconds apart), so that load from other processes on a shared machine cancels out as far as it can.
"""

import time
from contextlib import nullcontext

import numpy as np
import torch

from modeling_audiocap import resolve_encoder
from modeling_audiocap.embedding.runtime import LayerEmbedder, inference_ready, load_encoder
from modeling_audiocap.modeling_audiocap import mean_pool
from modeling_audiocap.encoder_families import encoder_family
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor

from .common import PeakMemory, held_matmul_rate, in_fresh_process, timed
from .configs import ENCODERS, FRACTION_TARGET, EncoderSpec, target_row

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


Plan = tuple[str, int, str, float]  # (path, batch, dtype name, window seconds)


def _plans(spec: EncoderSpec, kind: str) -> list[Plan]:
    """The naive way first, then the engine at each batch in fp32 and in bf16."""
    window = spec.window_seconds[kind]
    plans = [("naive", 1, "float32", window)] + [("engine", b, "float32", window) for b in spec.batches[kind]]
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            plans += [("engine", b, "bfloat16", window) for b in spec.batches[kind]]
    else:
        plans += [("engine", b, "bfloat16", spec.window_seconds["cpu_bf16"]) for b in spec.batches["cpu_bf16"]]
    return plans


def _plan_key(plan: Plan) -> str:
    return "/".join(map(str, plan))


class _Runs:
    """An encoder built from its config, its plans and their inputs, each plan run on demand (after `warm_up`)."""

    def __init__(self, spec: EncoderSpec, device: torch.device):
        torch.manual_seed(0)
        self.device = device
        self.loaded = load_encoder(resolve_encoder(spec.config()))
        self.loaded.model.eval().to(device)
        self.layers = list(range(self.loaded.num_layers))
        self.plans = _plans(spec, "cuda" if device.type == "cuda" else "cpu")
        self.inputs = {}
        for path, batch, dtype, seconds in self.plans:
            if (batch, seconds) not in self.inputs:
                self.inputs[(batch, seconds)] = featurized_batch(self.loaded, batch, seconds, seed=batch)

    def warm_up(self) -> None:
        """fp32, batch 1, both paths: kernel selection, allocator, lazy hooks."""
        window = self.plans[0][3]
        _naive(self.loaded, self.inputs[(1, window)], self.device)
        with LayerEmbedder(self.loaded, self.layers, "mean", self.device, torch.float32) as embedder:
            embedder(self.inputs[(1, window)])

    def run(self, plan: Plan, memory: bool = False) -> tuple[float, float | None]:
        """Seconds of one call of `plan` and, if `memory`, its peak memory above the start in MiB."""
        path, batch, dtype, seconds = plan
        torch.manual_seed(0)
        measure = PeakMemory(self.device) if memory else nullcontext()
        if path == "naive":
            with measure:
                elapsed = timed(lambda: _naive(self.loaded, self.inputs[(1, seconds)], self.device), self.device)
        else:
            with LayerEmbedder(self.loaded, self.layers, "mean", self.device, DTYPES[dtype]) as embedder, measure:
                elapsed = timed(lambda: embedder(self.inputs[(batch, seconds)]), self.device)
        return elapsed, measure.peak_mib if memory else None


def cpu_peak_memory(name: str, keys: list[str]) -> dict[str, float]:
    """Peak memory of the CPU plans `keys` of encoder `name`, one call each after a warm-up; run through
    `in_fresh_process`, so that the resident memory follows live memory."""
    runs = _Runs(next(spec for spec in ENCODERS if spec.name == name), torch.device("cpu"))
    runs.warm_up()
    return {_plan_key(plan): runs.run(plan, memory=True)[1] for plan in runs.plans if _plan_key(plan) in keys}


MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm")


def time_shares(runs: _Runs, plan: Plan, top: int = 6) -> dict:
    """Where one call of `plan` spends its time (`torch.profiler`, each operator's own time): the matrix products'
    share and the FLOP/s they ran at, and the operators taking the most time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as profiler:
        runs.run(plan)
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    products = [e for e in events if e.key in MATRIX_PRODUCTS]
    product_seconds = sum(e.self_cpu_time_total for e in products) / 1e6
    return {
        "seconds": total / 1e6,
        "matrix_product_share": product_seconds * 1e6 / total,
        "matrix_product_flops_per_second": sum(e.flops for e in products) / product_seconds if product_seconds else 0.0,
        "top": [(e.key, e.self_cpu_time_total / total) for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]],
    }


def bench_encoder(
    spec: EncoderSpec, device: torch.device, peaks: dict, deadline: float, rounds: int, log=print
) -> dict:
    """Every configuration of one encoder; configurations that would overrun `deadline` are skipped and listed.

    `peaks`: `matmul_peak` per dtype name. The matmul at its best path is also run for a second between the timed runs
    (`held_matmul_rate`): each run is held against the mean of the rates measured just before and just after it."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    runs = _Runs(spec, device)
    loaded, plans = runs.loaded, runs.plans
    window = plans[0][3]
    params = sum(p.numel() for p in loaded.model.parameters())

    flops = {}  # per window length: FLOPs per audio second
    for seconds in sorted({p[3] for p in plans}):
        counted = count_flops(loaded, featurized_batch(loaded, 1, seconds))
        flops[seconds] = {**counted, "flops_per_audio_second": counted["flops"] / seconds}
    log(f"  {spec.name}: {params / 1e6:.0f}M parameters, "
        f"{flops[window]['flops_per_audio_second'] / 1e9:.1f} GFLOP per audio second at {window:g} s windows")
    runs.warm_up()

    results = {plan: {"times": {}, "held": {}, "peak_mib": None} for plan in plans}
    held = {}  # dtype -> the held matmul rate measured last (just before the next run)
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
            before = held.get(dtype) or held_matmul_rate(device, DTYPES[dtype], peaks[dtype]["best"])
            elapsed, peak_mib = runs.run(plan, memory=kind == "cuda")
            held[dtype] = held_matmul_rate(device, DTYPES[dtype], peaks[dtype]["best"])
            results[plan]["times"][round_index] = elapsed
            results[plan]["held"][round_index] = (before + held[dtype]) / 2
            if peak_mib is not None:
                previous = results[plan]["peak_mib"]
                results[plan]["peak_mib"] = peak_mib if previous is None else max(previous, peak_mib)
            throughput = batch * seconds / elapsed
            if batch == 1:
                key = "naive" if path == "naive" else dtype
                rate[key] = max(rate.get(key, 0.0), throughput)
            log(f"    round {round_index + 1}: {path:6s} batch {batch:3d} {dtype:8s} {throughput:8.2f} audio s/s, "
                f"matmul held at {results[plan]['held'][round_index] / 1e9:.0f} GFLOP/s")
    loaded.model.to("cpu")
    if kind == "cpu":  # bf16 is emulated on most CPUs: its rows are too slow to run again for their memory
        keys = [_plan_key(plan) for plan in plans if results[plan]["times"] and plan[2] == "float32"]
        memory = in_fresh_process("bench.extraction:cpu_peak_memory", spec.name, keys)
        if "error" in memory:
            log(f"  peak memory not measured: {memory['error'][-300:]}")
        for plan in plans:
            results[plan]["peak_mib"] = memory.get(_plan_key(plan))

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
        held_rate = float(np.median(list(results[plan]["held"].values())))
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
                "held_matmul_flops_per_second": held_rate,
                "fraction_of_peak": achieved / held_rate,
                "fraction_of_best_call": achieved / peaks[dtype]["flops_per_second"],
                "peak_memory_mib": results[plan]["peak_mib"],
                "speedup_vs_naive": float(np.median(ratios)) if ratios else None,
                "speedup_range": [min(ratios), max(ratios)] if ratios else None,
            }
        )
    profiled = None
    engine = [row for row in rows if row["path"] == "engine" and row["dtype"] == "float32" and "skipped" not in row]
    if kind == "cpu" and engine:  # where a missed target's row spends its time
        row = target_row(engine)
        plan = next(p for p in plans if p[:3] == ("engine", row["batch"], "float32"))
        if row["fraction_of_peak"] < FRACTION_TARGET and time.perf_counter() + row["seconds_per_call"] * 1.5 < deadline:
            profiled = {"batch": row["batch"], **time_shares(runs, plan)}
            log(f"    batch {row['batch']}: matrix products {profiled['matrix_product_share']:.0%} of the time at "
                f"{profiled['matrix_product_flops_per_second'] / 1e9:.0f} GFLOP/s")
    return {
        "encoder": spec.name,
        "parameters": params,
        "flops": {f"{s:g}s": v for s, v in flops.items()},
        "rows": rows,
        "time_shares": profiled,
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
