"""BENCHMARKS.md from bench/results.json: the machine, the tables, and where a target is missed, the measured reason."""

from pathlib import Path

from .configs import FRACTION_TARGET, TARGET_BATCH, target_row

CPU_BF16_TARGET = 0.75  # on the CPU: fraction of the bf16 matmul peak


def _g(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if value is not None else "-"


def _gflops(value: float) -> str:
    return f"{value / 1e9:,.1f}" if value else "-"


def _mib(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "-"


def _machine(results: dict) -> list[str]:
    m = results["machine"]
    lines = [
        "## Machine",
        "",
        f"- device: `{m['device']}`" + (f" ({m['gpu']}, {m['gpu_memory_gb']} GB, compute {m['gpu_capability']})"
                                         if "gpu" in m else ""),
        f"- CPU: {m['cpu_model']}, {m['cpu_cores']} cores; relevant flags: {', '.join(m['cpu_flags']) or 'none'}; "
        f"torch CPU capability `{m['torch_cpu_capability']}`; oneDNN bf16: {m['onednn_bf16_supported']}; "
        f"bf16 matrix units (AMX / AVX512-BF16): {'yes' if m['cpu_fast_bf16'] else 'no'}",
        f"- torch {m['torch']} ({m['torch_threads']} threads), transformers {m['transformers']}, Python {m['python']}",
    ]
    if m.get("load_average_at_start") is not None:
        start, end = m["load_average_at_start"], m.get("load_average_at_end") or [None]
        shared = max(x for x in (start[0], end[0]) if x is not None) > (m.get("cpu_cores") or 1)
        lines.append(
            f"- load average (1 min) at start / end: {start[0]:.1f} / {_g(end[0], 2)}"
            + (" (other processes shared the cores: absolute figures are noisy, ratios within the run are the result)"
               if shared else "")
        )
    lines.append(f"- wall time of this run: {results.get('wall_seconds', 0):.0f} s "
                 f"(budget {results['budget_seconds']:.0f} s; up to {results['rounds']} timed rounds per configuration, "
                 "median kept; on a CPU batch 16 and bf16 run once)")
    return lines


def _held(results: dict) -> dict[str, list[float]]:
    """Per dtype, the matmul rates held around the encoder runs (`held_matmul_rate`), one per row."""
    held = {}
    for enc in results["extraction"]["encoders"]:
        for row in enc["rows"]:
            if "held_matmul_flops_per_second" in row:
                held.setdefault(row["dtype"], []).append(row["held_matmul_flops_per_second"])
    return held


def _peaks(results: dict) -> list[str]:
    held = _held(results)
    lines = ["", "## This machine's peaks (measured in the same run)", "",
             "Best single call: the fastest single matmul at the run's start. Held: the same matmul run back to back for "
             "a second just before and just after each encoder run (median and range over the encoder rows); each "
             "row's fraction of peak is against the rate held around it.", "",
             "| dtype | best single call GFLOP/s | best path | held around the encoder runs GFLOP/s (range) "
             "| conv1d 512->512 k3 s2 GFLOP/s |", "|---|---:|---|---:|---:|"]
    for name, peak in results["matmul_peak"].items():
        best = peak.get("best") or max(peak["measured"], key=peak["measured"].get)
        conv = results.get("conv1d_flops_per_second", {}).get(name)
        rates = sorted(held.get(name, []))
        around = (f"{_gflops(rates[len(rates) // 2])} ({_gflops(rates[0])}-{_gflops(rates[-1])})" if rates else "-")
        lines.append(f"| {name} | {_gflops(peak['flops_per_second'])} | `{best}` | {around} | {_gflops(conv)} |")
    return lines


def _flops(results: dict) -> list[str]:
    lines = ["", "## FLOPs per audio second (`FlopCounterMode`, weight norm folded, batch 1)", "",
             "| encoder | parameters | window | GFLOP / audio s | conv feature encoder | positional conv |",
             "|---|---:|---:|---:|---:|---:|"]
    for enc in results["extraction"]["encoders"]:
        for window, f in enc["flops"].items():
            lines.append(
                f"| {enc['encoder']} | {enc['parameters'] / 1e6:.0f}M | {window} | "
                f"{f['flops_per_audio_second'] / 1e9:.2f} | {f['conv_feature_encoder_share']:.0%} | "
                f"{f['positional_conv_share']:.1%} |"
            )
    return lines


def _extraction(results: dict) -> list[str]:
    lines = [
        "", "## Encoder throughput: naive vs. extraction path", "",
        "naive = plain transformers, one clip at a time, fp32, all hidden states kept (`torch.no_grad`); "
        "engine = `LayerEmbedder` as run by `extract_embeddings` (inference mode, weight norm folded, positional "
        "convolution by FFT, equal-length batches, the conv feature encoder as matrix products and GELUs / GroupNorms in place on a CPU, autocast for bf16, the layers mean-pooled without a copy or a masking pass when every frame is valid). Inputs are "
        "featurised windows (decoding is measured end to end below). Fraction of peak counts the model's FLOPs "
        "(the positional convolution as the convolution it is, though the FFT does fewer) against the matmul rate "
        "held around the run, and, beside it, against the best single call. Peak memory: on a CPU, one more call "
        "of each fp32 row in a fresh process whose allocator returns freed blocks (the timed runs keep glibc's "
        "default, as users have it).", "",
        "| encoder | path | batch | dtype | window s | runs | audio s / s | x naive (per-round range) | fraction of peak "
        "| of best call | peak memory MiB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for enc in results["extraction"]["encoders"]:
        for row in enc["rows"]:
            if "skipped" in row:
                lines.append(f"| {row['encoder']} | {row['path']} | {row['batch']} | {row['dtype']} | "
                             f"{row['window_seconds']:g} | 0 | skipped ({row['skipped']}) | | | | |")
                continue
            spread = row.get("speedup_range")
            speedup = f"{row['speedup_vs_naive']:.2f}" if row.get("speedup_vs_naive") is not None else "-"
            if spread and row["runs"] > 1 and row["path"] != "naive":
                speedup += f" ({spread[0]:.2f}-{spread[1]:.2f})"
            lines.append(
                f"| {row['encoder']} | {row['path']} | {row['batch']} | {row['dtype']} | {row['window_seconds']:g} | "
                f"{row['runs']} | {row['audio_seconds_per_second']:.2f} | {speedup} | "
                f"{row['fraction_of_peak']:.2f} | {row['fraction_of_best_call']:.2f} | {_mib(row['peak_memory_mib'])} |"
            )
    for item in results["extraction"].get("skipped", []):
        lines.append(f"| {item['encoder']} | - | - | - | - | 0 | skipped ({item['reason']}) | | | | |")
    return lines


def _pipeline(results: dict) -> list[str]:
    p = results.get("pipeline")
    if not p:
        return []
    lines = [
        "", "## End to end on files", "",
        f"{p['files']} tracks of {p['track_seconds']:g} s ({p['source']}), {p['encoder']}, "
        f"{p['window_seconds']:g}-s windows, batch {p['batch_size']}; decoding, resampling and writing included. "
        "Each way once per round, naive first; the median over the rounds, and x naive as the median of the "
        "per-round ratios.", "",
        "| run | rounds | audio s / s | x naive (per-round range) | peak memory MiB | max abs difference vs naive |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in p["rows"]:
        speedup = "-"
        if row.get("speedup_vs_naive"):
            speedup = f"{row['speedup_vs_naive']:.2f}"
            if row.get("speedup_range") and row.get("rounds", 1) > 1:
                speedup += f" ({row['speedup_range'][0]:.2f}-{row['speedup_range'][1]:.2f})"
        lines.append(
            f"| {row['run']} | {row.get('rounds', 1)} | {row['audio_seconds_per_second']:.2f} | {speedup} | "
            f"{_mib(row['peak_memory_mib'])} | {_g(row.get('max_abs_difference_vs_naive'), 2)} |"
        )
    return lines


def _catalogue(results: dict) -> list[str]:
    c = results.get("catalogue")
    if not c:
        return []
    million_hours = 1e6 / c["catalogue_2_processes_tracks_per_s"] / 3600
    return [
        "", "## A catalogue: `audiocap-predict` against a loop of `pipeline()` calls", "",
        f"{c['tracks']} tracks of {c['seconds_per_track']:g} s (44.1 kHz stereo WAV) through a genre model and a "
        f"captioner (random weights: the demo's mel-CNN encoder with 3-s windows; the captioner at t5-small shape, "
        f"greedy, {c['caption_tokens']} tokens per caption), one thread per process. Tracks per second once the "
        "models are loaded (the command's start-up, imports and loading, apart).", "",
        "| way | tracks / s | x pipeline loop | start-up s |", "|---|---:|---:|---:|",
        f"| loop of `pipeline()` calls, file by file | {c['pipeline_loop_tracks_per_s']:.2f} | 1.00 | |",
        f"| `audiocap-predict`, 1 process | {c['catalogue_tracks_per_s']:.2f} | {c['catalogue_over_pipeline_loop']:.2f} | "
        f"{c['start_up_seconds']['1 process']:.1f} |",
        f"| `audiocap-predict`, 2 processes (`torchrun`) | {c['catalogue_2_processes_tracks_per_s']:.2f} | "
        f"{c['catalogue_over_pipeline_loop'] * c['two_processes_over_one']:.2f} | "
        f"{c['start_up_seconds']['2 processes']:.1f} |",
        "",
        f"Two processes run {c['two_processes_over_one']:.2f}x one on this {results['machine']['cpu_cores']}-core "
        f"machine. The catalogue's answers equal the pipelines' for {c['answers_equal_to_the_pipelines']:.0%} of the "
        f"tracks (label and caption), and the two-process dataset equals the one-process one: "
        f"{c['two_processes_equal_one']}. At the two-process rate a million such tracks take "
        f"{million_hours:,.0f} hours here.",
    ] + _catalogue_memory(results) + _million_tracks(results)


# For the estimate below when this run has no GPU: the fraction of the bf16 matmul peak plain transformers reached on
# a MERT-v1-95M shape on a lent H100 (profiled there in an earlier session), applied to the H100 SXM's data-sheet dense
# bf16 rate (the measured peak was not kept; a measured one is lower, so the encoder hours are optimistic). The lent
# machines have 16 CPU cores per GPU.
GPU_REFERENCE = {"device": "H100", "fraction_of_bf16_peak": 0.21, "bf16_peak_flops": 989e12, "host_cores_per_gpu": 16}


def _million_tracks(results: dict, tracks: float = 1e6, seconds: float = 30.0) -> list[str]:
    """On paper: a million 30-s tracks through MERT-v1-95M on 1 and 8 GPUs, from this run's FLOP count and decoding
    rate, and a GPU's bf16 rate (this run's own when it ran on one, else `GPU_REFERENCE`)."""
    mert = next((e for e in results["extraction"]["encoders"] if e["encoder"] == "MERT-v1-95M"), None)
    decoding = [row for row in results.get("preprocessing", {}).get("rows", []) if "skipped" not in row]
    if mert is None or not decoding:
        return []
    audio = tracks * seconds
    flops = max(mert["flops"].items(), key=lambda item: float(item[0].rstrip("s")))[1]["flops_per_audio_second"]
    bf16 = [row for row in mert["rows"] if row["path"] == "engine" and row["dtype"] == "bfloat16" and "skipped" not in row]
    if not results["machine"]["device"].startswith("cpu") and bf16:
        best = max(bf16, key=lambda row: row["audio_seconds_per_second"])
        rate, source = best["audio_seconds_per_second"], f"this run's engine at batch {best['batch']} in bf16"
    else:
        g = GPU_REFERENCE
        rate = g["fraction_of_bf16_peak"] * g["bf16_peak_flops"] / flops
        source = (f"{g['fraction_of_bf16_peak']} of an {g['device']}'s {g['bf16_peak_flops'] / 1e12:.0f} TFLOP/s "
                  "data-sheet bf16 rate: the fraction of its bf16 matmul peak plain transformers reached on this "
                  "shape on a lent H100; optimistic, as a measured peak is below the data sheet's, and pessimistic, "
                  "as the engine's FFT positional convolution takes out the part that ran slowest there")
    slowest = min(decoding, key=lambda row: row["audiocap_audio_seconds_per_second"])
    decode_rate = slowest["audiocap_audio_seconds_per_second"] * GPU_REFERENCE["host_cores_per_gpu"]
    lines = [
        "", f"A million {seconds:g}-s tracks through MERT-v1-95M on GPUs, on paper: {flops / 1e9:.1f} GFLOP per audio "
        f"second (counted above) at {rate:,.0f} audio seconds per second per GPU ({source}); decoding and resampling "
        f"at this run's slowest format ({slowest['format']}, {slowest['audiocap_audio_seconds_per_second']:.0f} audio "
        f"seconds per second per process) on {GPU_REFERENCE['host_cores_per_gpu']} host cores per GPU. The two "
        "overlap (decoding runs in the data loader's workers), so the larger sets the time. Genre, tag and "
        "regression heads and embeddings add next to nothing; captions are not in this estimate (generation "
        "speed on a GPU is not measured here).", "",
        "| GPUs | encoder hours | decoding hours | hours |", "|---:|---:|---:|---:|",
    ]
    for gpus in (1, 8):
        encoder_hours = audio / rate / gpus / 3600
        decode_hours = audio / decode_rate / gpus / 3600
        lines.append(f"| {gpus} | {encoder_hours:.2f} | {decode_hours:.2f} | {max(encoder_hours, decode_hours):.2f} |")
    return lines


def _catalogue_memory(results: dict) -> list[str]:
    m = results.get("catalogue_memory")
    if not m:
        return []
    lines = [
        "", "Memory against the catalogue's size: parquet datasets of 1-s clips (audio bytes in their rows) labelled by "
        "`audiocap-predict --streaming` (the genre model), each in a fresh process. The process's peak is set by the "
        "libraries' import; the run's own peak is the resident memory sampled during the run (models loaded, "
        "tracks listed, read and labelled, shards written) above its value at the start.", "",
        "| clips | process peak MiB | run's peak above its start MiB | seconds | input MiB | output MiB | "
        "written to the `datasets` cache MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in m["rows"]:
        lines.append(f"| {row['clips']:,} | {row['peak_rss_mib']:.0f} | {row.get('run_peak_mib', float('nan')):.0f} | "
                     f"{row['seconds']:.0f} | {row['input_mib']:.1f} | {row['output_mib']:.1f} | {row['cache_mib']:.1f} |")
    lines += ["", f"Largest over smallest: process peak {m['peak_memory_ratio']:.2f}"
              + (f", the run's peak {m['run_peak_memory_ratio']:.2f}." if "run_peak_memory_ratio" in m else ".")]
    return lines


def _long_tracks(results: dict) -> list[str]:
    lt = results.get("long_tracks")
    if not lt:
        return []
    lines = [
        "", "## Peak memory and time: 3-minute vs 30-minute track", "",
        f"{lt['source']}, {lt['encoder']}; RSS high-water mark (VmHWM, reset before each track) above the RSS "
        "before the track, each way in its own process after a warm-up. Time linear in the length: the 30-minute "
        "time is 10x the 3-minute one.", "",
        "| way | 3-minute track MiB | 30-minute track MiB | 30-min time / 3-min time |", "|---|---:|---:|---:|",
    ]
    for mode, label in (("naive", "naive: `load_audio` whole track, then windows"),
                        ("engine", "`extract_embeddings`: decoded and resampled block by block"),
                        ("pipeline", "`pipeline(\"audio-classification\")`, a `from_encoder_pretrained` model")):
        value = lt.get(mode)
        if not value:
            continue
        if "error" in value:
            lines.append(f"| {label} | error | error | |")
            continue
        ratio = value["30min"]["seconds"] / value["3min"]["seconds"] if "seconds" in value["3min"] else float("nan")
        lines.append(f"| {label} | {value['3min']['peak_mib_above_start']:.0f} | "
                     f"{value['30min']['peak_mib_above_start']:.0f} | {ratio:.1f} |")
    return lines


def _serving(results: dict) -> list[str]:
    p = results.get("serving")
    if not p:
        return []
    lines = [
        "", "## Serving: `pipeline(\"audio-classification\")` vs the same model fed by hand", "",
        f"{p['files']} tracks of {p['track_seconds']:g} s ({p['source']}) per format, a saved MERT-95M-shaped genre model "
        "(random weights, 5 s windows). By hand: `load_audio` -> the saved `AudioCapFeatureExtractor` -> the model -> mean "
        "logits over the windows. A score difference of 0 means serving feeds the model exactly what training fed it.",
        "", "| format | max score difference | pipeline time / by-hand time |", "|---|---:|---:|",
    ]
    for row in p["rows"]:
        lines.append(f"| {row['format']} | {row['max_score_difference']:.1e} | {row['pipeline_over_by_hand_time']:.2f} |")
    return lines


def _preprocessing(results: dict) -> list[str]:
    p = results.get("preprocessing")
    if not p:
        return []
    lines = [
        "", "## Preprocessing: decode + resample + normalise vs `librosa.load`", "",
        f"{p['files']} tracks of {p['track_seconds']:g} s ({p['source']}) in each format, to mono {p['target_rate']} Hz, "
        f"peak-normalised; best of {p.get('rounds', 3)} rounds each way, the two ways alternating within each round. audiocap: `load_audio` (WAV through soundfile / libsndfile, the other formats through torchcodec / FFmpeg, "
        "`torchaudio` sinc resampling, kernel cached per rate pair) + `peak_normalize`; librosa: `librosa.load(path, "
        "sr=...)` (soundfile, soxr_hq) + `librosa.util.normalize`. Agreement: signal-to-difference ratio of the two "
        "outputs (worst file).", "",
        "| format | audiocap audio s / s | librosa audio s / s | x librosa | agreement dB |", "|---|---:|---:|---:|---:|",
    ]
    for row in p["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['format']} | skipped ({row['skipped']}) | | | |")
            continue
        lines.append(f"| {row['format']} | {row['audiocap_audio_seconds_per_second']:.0f} | "
                     f"{row['librosa_audio_seconds_per_second']:.0f} | {row['speedup_vs_librosa']:.2f} | "
                     f"{row['agreement_db']:.1f} |")
    return lines


def _frozen_cache(results: dict) -> list[str]:
    f = results.get("frozen_cache")
    if not f:
        return []
    return [
        "", "## Frozen training: embedding cache vs recomputing the encoder", "",
        f"MERT-v1-95M (random weights), {f['clips']} clips of {f['seconds_per_clip']:g} s, batch {f['batch_size']}: "
        "an epoch of the layer weighting + head trained from cached layer-wise embeddings against the same epoch "
        "running the frozen encoder on every batch.", "",
        "| recompute epoch s | cached epoch s | cache build s (once) | frozen_cache_speedup | over 10 epochs, cache build included |",
        "|---:|---:|---:|---:|---:|",
        f"| {f['recompute_epoch_s']:.2f} | {f['cached_epoch_s']:.4f} | {f['cache_build_s']:.2f} | "
        f"{f['frozen_cache_speedup']:.0f} | {f['speedup_over_10_epochs_including_cache_build']:.1f} |",
    ]


def _captioning(results: dict) -> list[str]:
    c = results.get("captioning")
    if not c:
        return []
    return [
        "", "## Captioning speed", "",
        f"t5-small shape (random weights) under the mel-CNN encoder, {c['clips']} clips of {c['seconds_per_clip']:g} s "
        f"in one batch, every caption forced to {c['tokens_per_caption']} tokens.", "",
        "| decoding | captions / s |", "|---|---:|",
        f"| greedy | {c['greedy_captions_per_s']:.2f} |",
        f"| beam 5 | {c['beam5_captions_per_s']:.2f} |",
        "", f"Beam 5 takes {c['beam5_over_greedy_time']:.1f}x the time of greedy decoding.",
    ]


def _training_memory(results: dict) -> list[str]:
    t = results.get("training_memory")
    if not t:
        return []
    cuda = t["device"].startswith("cuda")
    lines = [
        "", "## Memory of a training step", "",
        f"{t['encoder']}, batch {t['batch']} x {t['seconds_per_clip']:g} s at {t['sampling_rate']} Hz, one AdamW step "
        "(forward, backward, optimizer state) in a fresh process per row; frozen: encoder fixed; LoRA: r 8 on the "
        "attention projections; unfrozen: all but the conv feature encoder. Frozen runs the fixed encoder in the "
        "step without recording a graph (as `train_caption.py --encoder_mode frozen` does; `train_genre.py`'s "
        "frozen mode trains from the embedding cache and runs no encoder in its steps). Step peak = RSS "
        "high-water mark during the step above the RSS once the model was built"
        + (" (and CUDA peak allocated)." if cuda else "."), "",
        "| mode | gradient checkpointing | trainable parameters | step peak MiB | process peak MiB | step s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in t["rows"]:
        head = f"| {row['mode']} | {'yes' if row['gradient_checkpointing'] else 'no'} |"
        if "skipped" in row or "error" in row:
            lines.append(f"{head} {row.get('skipped') or 'error'} | | | |")
            continue
        peak = row.get("step_peak_cuda_mib_above_model", row["step_peak_rss_mib_above_model"])
        lines.append(f"{head} {row['trainable_parameters'] / 1e6:.1f}M | {peak:.0f} | {row['peak_rss_mib']:.0f} | "
                     f"{row['step_seconds']:.1f} |")
    return lines


def _shortfalls(results: dict) -> list[str]:
    m = results["machine"]
    cpu = m["device"].startswith("cpu")
    peaks = {k: v["flops_per_second"] for k, v in results["matmul_peak"].items()}
    conv = results.get("conv1d_flops_per_second", {})
    lines = ["", "## Targets", ""]
    held = "the matmul rate held around the run"
    if cpu:
        lines.append(f"Targets: >= {FRACTION_TARGET} of {held} at batch {TARGET_BATCH} (fp32); on this CPU "
                     f">= {CPU_BF16_TARGET} of the bf16 one.")
    else:
        lines.append(f"Target: >= {FRACTION_TARGET} of {held}, in the row's dtype, at batch {TARGET_BATCH}.")
    lines.append("")
    misses = []
    for enc in results["extraction"]["encoders"]:
        engine = [row for row in enc["rows"] if row["path"] == "engine" and "skipped" not in row]
        for dtype in ("float32", "bfloat16"):
            candidates = [row for row in engine if row["dtype"] == dtype]
            if not candidates:
                continue
            row = target_row(candidates)
            target = CPU_BF16_TARGET if cpu and dtype == "bfloat16" else FRACTION_TARGET
            status = "met" if row["fraction_of_peak"] >= target else "missed"
            note = ""
            if row["batch"] != TARGET_BATCH and target == FRACTION_TARGET:
                note = f" (largest batch run here; the target is for batch {TARGET_BATCH})"
            lines.append(f"- {row['encoder']}, batch {row['batch']}, {dtype}: {row['fraction_of_peak']:.2f} of the "
                         f"{dtype} rate held around it, {row['fraction_of_best_call']:.2f} of the best single call "
                         f"(target {target}) - {status}{note}")
            if status == "missed":
                misses.append((enc, row))
    naive = [row for enc in results["extraction"]["encoders"] for row in enc["rows"]
             if row["path"] == "naive" and "skipped" not in row]
    if naive:
        low, high = min(naive, key=lambda r: r["fraction_of_peak"]), max(naive, key=lambda r: r["fraction_of_peak"])
        lines += ["", f"For scale: plain transformers, one clip at a time, already runs at "
                  f"{low['fraction_of_peak']:.2f} ({low['encoder']}) to {high['fraction_of_peak']:.2f} "
                  f"({high['encoder']}) of the rate held around it here, so on this machine the engine's headroom "
                  "over it in speed is small (x naive in the table above)."]
    if not misses:
        return lines
    lines += ["", "Why the missed ones fall short (measured in this run):", ""]
    if cpu and not m["cpu_fast_bf16"] and any(row["dtype"] == "bfloat16" for _, row in misses):
        ratio = peaks["bfloat16"] / peaks["float32"]
        conv_ratio = conv.get("bfloat16", 0) / conv.get("float32", 1) if conv else None
        lines.append(
            f"- bf16: this CPU has no bf16 matrix units (flags: {', '.join(m['cpu_flags']) or 'none'}; no "
            f"`avx512_bf16` / `amx_bf16`), so oneDNN and ATen emulate bf16 by converting to fp32: the best bf16 matmul "
            f"runs at {ratio:.2f}x the fp32 rate"
            + (f", and the feature encoder's convolution at {conv_ratio:.2f}x its fp32 rate" if conv_ratio else "")
            + ". The convolutions (the conv feature encoder holds a third of wav2vec2 / MERT FLOPs) are emulated far "
            "worse than the matmuls that set the bf16 'peak', so whole encoders reach a small fraction of it. "
            "`dtype=\"auto\"` therefore picks float32 on this CPU; bf16 is for GPUs and AMX / AVX512-BF16 CPUs."
        )
        fp32_rows = [row for enc in results["extraction"]["encoders"] for row in enc["rows"]
                     if row["path"] == "engine" and row["dtype"] == "float32" and "skipped" not in row]
        if fp32_rows:
            best = max(fp32_rows, key=lambda row: row["achieved_flops_per_second"])
            achieved = best["achieved_flops_per_second"]
            lines.append(
                f"- What `dtype=\"auto\"` gives instead: {best['encoder']} at batch {best['batch']} in float32 runs at "
                f"{achieved / 1e9:.0f} GFLOP/s, {achieved / peaks['bfloat16']:.1f}x this machine's bf16 matmul peak."
            )
    for enc, row in misses:
        if row["dtype"] != "float32":
            continue
        shares = enc.get("time_shares")
        if shares and shares["batch"] == row["batch"]:
            top = ", ".join(f"`{name}` {share:.0%}" for name, share in shares["top"])
            lines.append(
                f"- {row['encoder']}, batch {row['batch']} (profiled once more, `torch.profiler`): matrix products "
                f"take {shares['matrix_product_share']:.0%} of the time, at "
                f"{shares['matrix_product_flops_per_second'] / row['held_matmul_flops_per_second']:.2f} of the held "
                f"rate; the rest is the operators between them (norms, activations, softmax, copies), which run at "
                f"memory speed. The largest operators: {top}."
            )
        if row["encoder"].startswith("CLAP"):
            lines.append(
                f"- {row['encoder']}: HTSAT is a Swin transformer on a 256x256 log-mel image with only "
                "~1.2 GFLOP per audio second; its window attention is many small matmuls (8x8-patch windows, "
                "32-dim heads) between roll / reshape / permute copies and LayerNorms, so memory traffic and "
                "per-op overhead, not matmul throughput, set its speed."
            )
    if not cpu:
        lines.append(
            "- On GPUs the conv feature encoder takes a large share of the time at a third of the FLOPs (narrow "
            "1-D convolutions and GroupNorm run far below tensor-core peak); the positional convolution (128 taps, "
            "16 groups) runs by FFT in the engine. See the FLOP table for their shares."
        )
    loads = [x for x in (m.get("load_average_at_start") or [None])[:1] + (m.get("load_average_at_end") or [None])[:1]
             if x is not None]
    if cpu and loads and max(loads) > (m.get("cpu_cores") or 1):
        lines.append(
            f"- The machine is shared: the load average reached {max(loads):.1f} on {m['cpu_cores']} cores during "
            "this run, which slows multi-threaded kernels (their OpenMP regions wait on descheduled threads), "
            "the element-wise ops most."
        )
    return lines


def _other_targets(results: dict) -> list[str]:
    lines = []
    f = results.get("frozen_cache")
    if f:
        status = "met" if f["frozen_cache_speedup"] >= 10 else "missed"
        lines.append(f"- Frozen training, `frozen_cache_speedup`: {f['frozen_cache_speedup']:.0f} (target 10) - {status}")
    p = results.get("preprocessing")
    for row in (p or {}).get("rows", []):
        if "skipped" in row:
            continue
        status = "met" if row["speedup_vs_librosa"] > 1 else "missed"
        lines.append(f"- Preprocessing, {row['format']}: {row['speedup_vs_librosa']:.2f}x `librosa.load` (target: faster) "
                     f"- {status}")
    return ["", "Other targets:", ""] + lines if lines else []


def write_report(results: dict, path: Path) -> None:
    notes = [
        "# Benchmarks: speed and memory of the main paths",
        "",
        "Written by `make bench` (`python -m bench.run_all`) from `bench/results.json`. Encoders are built from their "
        "published configs with random weights (`bench/configs.py`). Every comparison below comes from this one run; "
        "read the ratios (x naive, fraction of peak), not the absolute timings.",
        "",
    ]
    if results["machine"]["device"].startswith("cpu"):
        notes += [
            "Reduced on this CPU: 4-s windows instead of 10 s for the waveform encoders (Whisper: 30 s, CLAP: 10 s, "
            "their native inputs), batches 1 / 4 / 16 (Whisper 1 / 4), and bf16 only at batch 1 on a 2-s window "
            "(1 s for MERT-v1-330M) with one timed run, to fit the time budget of a CPU run (see Targets for how this "
            "CPU runs bf16). On a GPU the "
            "same script runs 10-s windows at batches 1 / 4 / 16 / 64 in fp32 and bf16 (no GPU was available to this "
            "run, so those figures are not here).",
            "",
        ]
    lines = notes + _machine(results) + _peaks(results) + _flops(results) + _extraction(results) + _pipeline(results)
    lines += _catalogue(results)
    lines += _long_tracks(results) + _preprocessing(results) + _serving(results) + _frozen_cache(results) + _captioning(results)
    lines += _training_memory(results) + _shortfalls(results) + _other_targets(results)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
