"""Frozen-encoder training: an epoch from the embedding cache vs recomputing the encoder every epoch.

The reference code ran the frozen encoder inside every training step; audiocap computes layer-wise embeddings
once (`train_genre.py --encoder_mode frozen`) and trains the layer weighting and head on them. Both sides train the
same head on the same clips, in one run, at MERT-v1-95M size with random weights.
"""

import time

import torch

from modeling_audiocap import AudioEncoderForGenreClassification, AudioGenreConfig, MERTConfig, mean_pool


def _epoch(model, optimizer, batches) -> float:
    start = time.perf_counter()
    model.train()
    model.encoder.eval()
    for inputs, labels in batches:
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start


def run(clips: int = 16, seconds: float = 5.0, batch_size: int = 4, epochs: int = 10, device: str | None = None) -> dict:
    """Seconds per epoch both ways, the one-off cache cost, and the speedups (per epoch and over `epochs`)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    config = AudioGenreConfig(encoder=MERTConfig(), num_labels=10, sampling_rate=24000, window_seconds=seconds)
    model = AudioEncoderForGenreClassification(config).to(device)
    model.freeze_encoder()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    audio = torch.randn(clips, int(seconds * 24000), device=device)
    labels = torch.randint(0, 10, (clips,), device=device)
    starts = range(0, clips, batch_size)
    recompute_batches = [({"input_values": audio[s : s + batch_size]}, labels[s : s + batch_size]) for s in starts]

    recompute = _epoch(model, optimizer, recompute_batches)
    start = time.perf_counter()
    with torch.inference_mode():
        cache = torch.cat([mean_pool(*model.layer_hidden_states(x["input_values"])) for x, _ in recompute_batches])
    build = time.perf_counter() - start
    cached_batches = [({"layer_embeddings": cache[s : s + batch_size].clone()}, labels[s : s + batch_size]) for s in starts]
    cached = min(_epoch(model, optimizer, cached_batches) for _ in range(3))
    return {
        "device": device,
        "clips": clips,
        "seconds_per_clip": seconds,
        "batch_size": batch_size,
        "recompute_epoch_s": recompute,
        "cached_epoch_s": cached,
        "cache_build_s": build,
        "frozen_cache_speedup": recompute / cached,
        f"speedup_over_{epochs}_epochs_including_cache_build": epochs * recompute / (build + epochs * cached),
    }


if __name__ == "__main__":
    print(run())
