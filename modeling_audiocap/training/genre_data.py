"""Data preparation for genre training: decode once, cut windows, and (frozen mode) cache layer-wise embeddings.

Rows carry `clip_index` so that window-level predictions are averaged back into one prediction per clip.
"""

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch

from ..audio import AudioDecodingError, load_audio, peak_normalize
from ..embedding.runtime import LayerEmbedder, LoadedEncoder
from ..modeling_audiocap import AudioEncoderForGenreClassification
from ..processing_audiocap import AudioCapFeatureExtractor, average_windows

logger = logging.getLogger(__name__)


def _audio_name(value) -> str:
    if isinstance(value, dict):
        return str(value.get("path") or "<in-memory audio>")
    return str(value)


def decoded_cache_key(dataset: datasets.Dataset, sampling_rate: int, normalize: bool) -> str:
    """Key of a decoded copy: the rows, each local file's size and modification time, and the preprocessing."""
    files = []
    for value in dataset.select_columns("audio").cast_column("audio", datasets.Audio(decode=False))["audio"]:
        path = value.get("path") if isinstance(value, dict) else None
        stat = os.stat(path) if path and os.path.isfile(path) else None
        files.append((path, stat.st_size, stat.st_mtime_ns) if stat else (path, None, None))
    payload = json.dumps([dataset._fingerprint, files, sampling_rate, normalize], default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def decode_dataset(
    dataset: datasets.Dataset,
    sampling_rate: int,
    num_proc: int | None = None,
    desc: str = "decode",
    normalize: bool = False,
    cache_dir: str | Path | None = None,
) -> tuple[datasets.Dataset, list[dict[str, str]]]:
    """Decode, downmix and resample every clip (peak-normalise it with `normalize`) into a `waveform` column.

    Use the processor's own `normalize` setting, so that training sees what inference on the saved model sees.
    With `cache_dir`, the decoded copy is kept there (keyed by `decoded_cache_key`) and reused by later runs.

    Files that fail to decode are dropped and returned as `[{"file": ..., "error": ...}]`; nothing else is lost.
    """

    def decode(batch: dict, indices: list[int]) -> dict:
        waves, errors = [], []
        for value in batch["audio"]:
            try:
                wave = load_audio(value, sampling_rate)
                waves.append((peak_normalize(wave) if normalize else wave).numpy())
                errors.append("")
            except AudioDecodingError as err:
                waves.append(np.zeros(0, dtype=np.float32))
                errors.append(str(err))
        return {"waveform": waves, "decode_error": errors, "clip_index": indices}

    cache = {}
    if cache_dir is not None:
        key = decoded_cache_key(dataset, sampling_rate, normalize)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache = {"cache_file_name": str(Path(cache_dir) / f"decoded-{key}.arrow"), "new_fingerprint": key}
    decoded = dataset.map(
        decode, batched=True, batch_size=16, with_indices=True, num_proc=num_proc, desc=f"{desc} @ {sampling_rate} Hz",
        **cache,
    )
    errors = decoded["decode_error"]
    skipped = [
        {"file": _audio_name(dataset[i]["audio"]), "error": err} for i, err in enumerate(errors) if err
    ]
    for item in skipped:
        logger.warning("Skipped %s: %s", item["file"], item["error"])
    if skipped:
        logger.warning("%s: skipped %d of %d files that could not be decoded", desc, len(skipped), len(dataset))
        decoded = decoded.select([i for i, err in enumerate(errors) if not err])
    return decoded.remove_columns("decode_error").with_format("numpy"), skipped


def decode_splits(
    splits: dict[str, datasets.Dataset], processor: AudioCapFeatureExtractor, num_proc: int | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, datasets.Dataset], list[dict[str, str]]]:
    """Every split decoded as the processor reads audio (its rate and `normalize`; `decode_dataset`) and the skipped
    files, each with its `split`; a split left without clips is refused (`require_clips`)."""
    decoded, skipped = {}, []
    for split, dataset in splits.items():
        decoded[split], bad = decode_dataset(dataset, processor.sampling_rate, num_proc, desc=split,
                                             normalize=processor.normalize, cache_dir=cache_dir)
        skipped += [{**item, "split": split} for item in bad]
    require_clips(decoded, skipped)
    return decoded, skipped


def require_clips(decoded: dict[str, datasets.Dataset], skipped: list[dict[str, str]]) -> None:
    """Refuse a split left with no clip (all of its files unusable, or none listed), naming its skipped files."""
    for split, dataset in decoded.items():
        if len(dataset) == 0:
            lost = [item for item in skipped if item.get("split") == split]
            detail = "; ".join(f"{item['file']}: {item['error']}" for item in lost[:5]) or "the source lists none"
            raise ValueError(f"The {split} split has no usable clips ({len(lost)} skipped: {detail})")


def window_dataset(dataset: datasets.Dataset, processor: AudioCapFeatureExtractor) -> datasets.Dataset:
    """One row per evaluation window the processor cuts (`input_values`, the clip's `label`, `clip_index`); a short
    clip is one short window (the feature extractor pads and masks it)."""

    def explode(batch: dict) -> dict:
        out = {"input_values": [], "label": [], "clip_index": []}
        for wave, label, clip in zip(batch["waveform"], batch["label"], batch["clip_index"]):
            for window in processor.windows(torch.tensor(np.asarray(wave, dtype=np.float32))):  # a writable copy
                out["input_values"].append(window.numpy())
                out["label"].append(label)
                out["clip_index"].append(clip)
        return out

    # the rows depend on the clips and on how the processor cuts them: the fingerprint says exactly that (a hash of
    # the processor object itself would not be stable across runs)
    cut = f"{dataset._fingerprint} windows {processor.window_samples} hop {processor.hop_samples}"
    rows = dataset.map(explode, batched=True, batch_size=8, remove_columns=dataset.column_names, desc="windows",
                       new_fingerprint=hashlib.sha256(cut.encode()).hexdigest()[:16])
    return rows.with_format("numpy")


def embedding_cache_key(encoder_id: str, model: AudioEncoderForGenreClassification, windows: datasets.Dataset) -> str:
    """Key of an embedding cache: encoder, its config, preprocessing (in the window rows' fingerprint) and data."""
    payload = json.dumps(
        {"encoder": encoder_id, "config": model.config.encoder.to_dict(), "rows": windows._fingerprint, "engine": 2},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def embed_windows(
    windows: datasets.Dataset,
    model: AudioEncoderForGenreClassification,
    featurize: Callable[[list[np.ndarray]], dict],
    cache_dir: str | Path,
    encoder_id: str,
    batch_size: int = 8,
) -> datasets.Dataset:
    """Replace `input_values` with per-layer mean-pooled `layer_embeddings` `(L, D)`; cached on disk by key.

    Runs the extraction engine's `LayerEmbedder` (inference mode, weight norm folded, FFT positional convolution)
    on windows grouped by length, so that no batch is padded: a window's embeddings do not depend on its batch."""
    key = embedding_cache_key(encoder_id, model, windows)
    cache_file = Path(cache_dir) / f"embeddings-{key}.arrow"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    if cache_file.exists():
        logger.info("Reusing cached embeddings %s", cache_file)
    config = model.config
    family = model.family
    loaded = LoadedEncoder(model.encoder, config.encoder, None, config.sampling_rate, family.num_layers(config.encoder),
                           family=family)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def embed(batch: dict) -> dict:
        waves = [np.asarray(w, dtype=np.float32) for w in batch["input_values"]]
        out: list[np.ndarray | None] = [None] * len(waves)
        for length in sorted({w.size for w in waves}):
            same = [i for i, w in enumerate(waves) if w.size == length]
            pooled = embedder(featurize([waves[i] for i in same])).numpy()
            for i, row in zip(same, pooled):
                out[i] = row
        return {"layer_embeddings": out}

    with LayerEmbedder(loaded, list(range(loaded.num_layers)), "mean", device) as embedder:
        return windows.map(
            embed,
            batched=True,
            batch_size=batch_size,
            remove_columns=["input_values"],
            cache_file_name=str(cache_file),
            new_fingerprint=key,
            desc="embed (frozen encoder)",
        ).with_format("numpy")


def clip_level(values: np.ndarray, labels: np.ndarray, clip_index: np.ndarray):
    """Per-window `values` (logits or embeddings) averaged over each clip's windows (`average_windows`, the one
    window-to-clip mean): returns `(clip_values, clip_labels, clip_ids)` sorted by clip id (a label is a class, or a
    row of tags or values)."""
    clips, inverse = np.unique(clip_index, return_inverse=True)
    means = average_windows(torch.from_numpy(np.asarray(values, dtype=np.float64)), torch.from_numpy(inverse), clips.size)
    labels = np.asarray(labels)
    clip_labels = np.zeros((clips.size, *labels.shape[1:]), dtype=labels.dtype)
    clip_labels[inverse] = labels
    return means.numpy(), clip_labels, clips
