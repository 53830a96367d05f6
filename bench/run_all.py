"""`make bench` / `python -m bench.run_all`: every benchmark in one run, written to bench/results.json and BENCHMARKS.md.

    python -m bench.run_all [--device cpu|cuda] [--budget_seconds 2100] [--rounds N] [--skip_long_tracks]

Device auto: CUDA when present, else the CPU. Everything is compared side by side within this one run and reported as
ratios (speed-up over the naive way, fraction of this machine's matmul peak measured in the same run); absolute
timings are recorded but are not pass/fail. Configurations that would overrun the time budget are skipped and listed.
"""

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch

from .common import conv1d_rate, device_auto, machine_info, matmul_peak
from . import captioning, catalogue, frozen_cache, preprocessing, training_memory
from .extraction import run_extraction
from .pipeline import run_files, run_long_tracks
from .report import write_report

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--budget_seconds", type=float, default=2100.0)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per configuration (default 3 CPU, 5 GPU)")
    parser.add_argument("--skip_long_tracks", action="store_true")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--report", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    logging.getLogger("modeling_audiocap").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.perf_counter()
    deadline = start + args.budget_seconds
    device = torch.device(args.device) if args.device else device_auto()
    rounds = args.rounds or (5 if device.type == "cuda" else 3)

    results = {"machine": machine_info(device), "budget_seconds": args.budget_seconds, "rounds": rounds}
    print(f"[machine] {results['machine']['cpu_model']}, {results['machine']['cpu_cores']} cores, "
          f"torch {torch.__version__}, device {device}")
    peaks = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        peaks[name] = matmul_peak(device, dtype)
        print(f"[peak] {name}: {peaks[name]['flops_per_second'] / 1e9:.1f} GFLOP/s")
    results["matmul_peak"] = peaks
    results["conv1d_flops_per_second"] = {
        name: conv1d_rate(device, dtype) for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
    }

    print("[preprocessing] audiocap vs librosa.load")
    results["preprocessing"] = preprocessing.run()
    print("[serving] pipeline('audio-classification') vs the same model fed by hand")
    results["serving"] = preprocessing.run_serving()
    print("[frozen cache] epoch from the embedding cache vs recomputing the encoder")
    results["frozen_cache"] = frozen_cache.run(device=device.type)
    print(f"  x{results['frozen_cache']['frozen_cache_speedup']:.1f} per epoch")
    print("[captioning] greedy and beam 5")
    results["captioning"] = captioning.run(device=device.type)
    print(f"  greedy {results['captioning']['greedy_captions_per_s']:.2f}, "
          f"beam 5 {results['captioning']['beam5_captions_per_s']:.2f} captions/s")
    print("[training memory] one step, MERT-v1-95M, batch 4 x 10 s")
    results["training_memory"] = training_memory.run(device, deadline)
    print("[catalogue] audiocap-predict vs a loop of pipeline() calls; 1 and 2 processes")
    results["catalogue"] = catalogue.run()
    print("[catalogue] peak memory, 2,000 vs 20,000 clips streamed")
    results["catalogue_memory"] = catalogue.run_memory()
    # Reserve time for the end-to-end and long-track runs.
    reserve = 60.0 if args.skip_long_tracks else 150.0
    results["extraction"] = run_extraction(device, peaks, deadline - reserve, rounds)
    print("[pipeline] files end to end")
    results["pipeline"] = run_files(device, deadline - (0 if args.skip_long_tracks else 60.0), rounds)
    if not args.skip_long_tracks:
        print("[memory] 3-minute and 30-minute tracks")
        results["long_tracks"] = run_long_tracks()
    results["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["wall_seconds"] = time.perf_counter() - start
    Path(args.results).write_text(json.dumps(results, indent=2, default=float))
    write_report(results, Path(args.report))
    print(f"[done] {results['wall_seconds']:.0f} s -> {args.results}, {args.report}")
    return results


if __name__ == "__main__":
    main()
