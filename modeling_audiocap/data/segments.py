"""Long tracks as overlapping fixed-length segments that keep their track id (music2vec / MERT-style evaluation:
3 s segments with 50 % overlap), and the per-track mean of segment predictions.

    segments = segment_dataset(dataset, seconds=3.0, overlap=0.5, sampling_rate=24000, num_proc=2)
    # ... predict logits for every segment row ...
    track_logits, track_ids = aggregate_by_track(logits, segments["track_id"])
"""

from __future__ import annotations

import logging

import datasets
import numpy as np

from ..audio import AudioDecodingError, load_audio, window_starts
from ..training.genre_data import clip_level

logger = logging.getLogger(__name__)

SOURCE_COLUMNS = ("audio", "waveform")


def segment_hop(seconds: float, overlap: float, sampling_rate: int) -> tuple[int, int]:
    """`(segment, hop)` in samples: `hop = round(segment * (1 - overlap))`."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    segment = int(round(seconds * sampling_rate))
    hop = max(1, int(round(segment * (1.0 - overlap))))
    return segment, hop


def segment_dataset(
    dataset: datasets.Dataset,
    seconds: float = 3.0,
    overlap: float = 0.5,
    sampling_rate: int = 16000,
    num_proc: int | None = None,
    track_id_column: str = "track_id",
    batch_size: int = 8,
) -> datasets.Dataset:
    """One row per segment: `input_values` (float32 waveform of `seconds`), `track_id`, `segment_start` (seconds).

    The source rows hold either a decoded mono `waveform` at `sampling_rate` (as `decode_dataset` makes) or an
    `audio` column (decoded here with `load_audio`, downmixed and resampled to `sampling_rate`). Segment starts are
    `window_starts(samples, segment, hop)`: every `hop = segment * (1 - overlap)` samples, the last segment aligned
    to the track's end, so the segments cover the whole track; a track no longer than a segment is one (short)
    segment. The track id is the `track_id_column` value when the source has that column, else the row index.
    Every other column (e.g. `label`, `caption`) is repeated on each segment row. Tracks that fail to decode are
    skipped and counted in the log.
    """
    segment, hop = segment_hop(seconds, overlap, sampling_rate)
    names = dataset.column_names
    if "waveform" in names:
        source = "waveform"
    elif "audio" in names:
        source = "audio"
    else:
        raise ValueError(f"segment_dataset needs a 'waveform' or 'audio' column; has {names}")
    has_ids = track_id_column in names
    carried = [c for c in names if c not in SOURCE_COLUMNS and c != track_id_column]
    features = datasets.Features({c: dataset.features[c] for c in carried})
    features["track_id"] = dataset.features[track_id_column] if has_ids else datasets.Value("int64")
    features["segment_start"] = datasets.Value("float64")
    features["input_values"] = datasets.Sequence(datasets.Value("float32"))
    if source == "audio" and isinstance(dataset.features["audio"], datasets.Audio):
        dataset = dataset.cast_column("audio", datasets.Audio(decode=False))

    def explode(batch: dict, indices: list[int]) -> dict:
        out = {key: [] for key in features}
        ids = batch[track_id_column] if has_ids else indices
        for i, value in enumerate(batch[source]):
            if source == "waveform":
                wave = np.asarray(value, dtype=np.float32).reshape(-1)
            else:
                try:
                    wave = load_audio(value, sampling_rate).numpy()
                except AudioDecodingError as error:
                    logger.warning("Skipped track %s: %s", ids[i], error)
                    continue
            if wave.size == 0:
                continue
            for start in window_starts(wave.size, segment, hop):
                out["input_values"].append(wave[start : start + segment])
                out["segment_start"].append(start / sampling_rate)
                out["track_id"].append(ids[i])
                for column in carried:
                    out[column].append(batch[column][i])
        return out

    segments = dataset.map(
        explode,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        remove_columns=names,
        features=features,
        num_proc=num_proc,
        desc=f"segments ({seconds:g} s, {overlap:.0%} overlap)",
    )
    segments = segments.with_format("numpy")
    tracks = len(np.unique(np.asarray(segments["track_id"]))) if len(segments) else 0
    if tracks < len(dataset):
        logger.warning(
            "segment_dataset: %d of %d tracks gave no segment (undecodable or empty)",
            len(dataset) - tracks,
            len(dataset),
        )
    return segments


def aggregate_by_track(logits, track_ids) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the segment `logits` `(segments, classes)` (or `(segments,)`) over each track's segments.

    Returns `(track_logits, tracks)`: one row per distinct track id, sorted by id (`np.unique` order), so that
    `track_logits[k]` is the mean over the rows where `track_ids == tracks[k]`.
    """
    logits = np.asarray(logits, dtype=np.float64)
    track_ids = np.asarray(track_ids)
    if logits.shape[0] != track_ids.shape[0]:
        raise ValueError(f"{logits.shape[0]} logit rows but {track_ids.shape[0]} track ids")
    flat = logits.ndim == 1
    matrix = logits[:, None] if flat else logits.reshape(logits.shape[0], -1)
    means, _, tracks = clip_level(matrix, np.zeros(track_ids.shape[0], dtype=np.int64), track_ids)
    means = means[:, 0] if flat else means.reshape((means.shape[0], *logits.shape[1:]))
    return means, tracks


__all__ = ["aggregate_by_track", "segment_dataset", "segment_hop"]
