"""Memory of one training step at MERT-v1-95M size: frozen / LoRA / unfrozen, with and without gradient checkpointing.

Each configuration runs in a fresh process (`python -m bench.training_memory --child MODE CHECKPOINTING`): the genre
model is built from MERT-v1-95M's config with random weights, the training mode applied the way `train_genre.py`
applies it (frozen: encoder fixed; unfrozen: all but the conv feature encoder; LoRA: peft adapters on the attention
projections), then one AdamW step runs on a batch of 4 x 10 s at 24 kHz. Reported: the RSS high-water mark of
that step (forward, backward, optimizer state) above the RSS after the model was built, the process's absolute
peak, and the step's time. On CUDA the same child reports `torch.cuda.max_memory_allocated`.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODES = ("frozen", "lora", "unfrozen")


def _step(mode: str, checkpointing: bool, device: torch.device, batch: int, seconds: float) -> dict:
    from modeling_audiocap import AudioEncoderForGenreClassification, AudioGenreConfig
    from modeling_audiocap.training.lora import apply_lora

    from .common import peak_mib, reset_peak, rss_mib, set_malloc_mmap_threshold, sync
    from .configs import mert_v1_95m

    set_malloc_mmap_threshold()
    torch.manual_seed(0)
    config = AudioGenreConfig(encoder=mert_v1_95m(), num_labels=10, sampling_rate=24000, window_seconds=seconds)
    model = AudioEncoderForGenreClassification(config)
    if mode == "frozen":
        model.freeze_encoder()
    else:
        model.freeze_feature_encoder()
    if checkpointing:
        model.activation_checkpointing_enable()
    model = (apply_lora(model) if mode == "lora" else model).to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    audio = torch.randn(batch, int(seconds * 24000), device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    sync(device)
    base = rss_mib()
    reset_peak()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    model(input_values=audio, labels=labels).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync(device)
    result = {
        "mode": mode,
        "gradient_checkpointing": checkpointing,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "step_seconds": time.perf_counter() - start,
        "model_rss_mib": base,
        "peak_rss_mib": peak_mib(),
        "step_peak_rss_mib_above_model": peak_mib() - base,
    }
    if device.type == "cuda":
        result["step_peak_cuda_mib_above_model"] = (torch.cuda.max_memory_allocated(device) - cuda_base) / 2**20
    return result


def run(device: torch.device, deadline: float, batch: int = 4, seconds: float = 10.0, log=print) -> dict:
    """Every mode with and without checkpointing, each in its own process; skipped once the deadline has passed."""
    results = {"encoder": "MERT-v1-95M (random weights)", "batch": batch, "seconds_per_clip": seconds,
               "sampling_rate": 24000, "device": str(device), "rows": []}
    for mode in MODES:
        for checkpointing in (False, True):
            if time.perf_counter() > deadline:
                results["rows"].append({"mode": mode, "gradient_checkpointing": checkpointing, "skipped": "time budget"})
                continue
            command = [sys.executable, "-m", "bench.training_memory", "--child", mode, str(int(checkpointing)),
                       "--device", str(device), "--batch", str(batch), "--seconds", str(seconds)]
            proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            if proc.returncode != 0:
                row = {"mode": mode, "gradient_checkpointing": checkpointing, "error": proc.stderr[-2000:]}
            else:
                row = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
                log(f"  {mode}, checkpointing {checkpointing}: step peak {row['step_peak_rss_mib_above_model']:.0f} MiB "
                    f"above the model, {row['step_seconds']:.1f} s")
            results["rows"].append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "CHECKPOINTING"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.child:
        mode, checkpointing = args.child
        print("RESULT " + json.dumps(_step(mode, checkpointing == "1", device, args.batch, args.seconds)))
    else:
        print(json.dumps(run(device, time.perf_counter() + 3600, args.batch, args.seconds), indent=2))


if __name__ == "__main__":
    main()
