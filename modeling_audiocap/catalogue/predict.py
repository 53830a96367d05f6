"""`predict_catalogue`: what saved audiocap models say about every track of a catalogue, in one pass, written as one
Hugging Face dataset; exact, resumable and shared among processes as `extract_embeddings` is (the same engine).

Each track is decoded once per distinct rate (once when the models share an encoder family), each model's saved
processor cuts its windows (a captioner only the first, as its pipeline), windows of one shape from many tracks go
through a model together, and a track's row holds every model's answer: a genre model's label, scores (and on
request per-window scores and its pooled embedding), a captioner's caption.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..embedding.engine import (
    DEFAULT_SHARD_SIZE,
    ShardRunner,
    Track,
    default_num_workers,
    finish,
    processes,
    start_claims,
)
from ..embedding.output import OutputLayout, inputs_digest
from ..hub import HubSettings, push_folder, render_catalogue_card
from ..embedding.sources import Clip, list_clips
from .heads import Head, load_heads

if TYPE_CHECKING:
    import datasets

PREDICT = OutputLayout("audiocap-predict", "predict_config.json", "Predictions of audiocap models by audiocap-predict")


@dataclass
class CataloguePlan:
    """The heads, the clips and their shards, and `settings` (what `plan.json` records to check a resumed run)."""

    heads: list[Head]
    clips: Sequence[Clip]  # a ClipTable, or a list for in-memory inputs
    dataset: Any
    features: Any
    shard_size: int
    num_shards: int
    settings: dict


def track_columns(tracks: list[Track], heads: Sequence[Head]) -> dict[str, list]:
    """A shard's columns: id, path, duration (s), then each head's."""
    columns = {
        "id": [t.clip.id for t in tracks],
        "path": [t.clip.path for t in tracks],
        "duration": [t.duration for t in tracks],
    }
    for index, head in enumerate(heads):
        columns.update(head.columns(tracks, index))
    return columns


def plan_catalogue(inputs, heads: list[Head], *, shard_size: int, audio_column: str, id_column: str,
                   split: str | None, streaming: bool = False) -> CataloguePlan:
    import datasets

    if shard_size < 1:
        raise ValueError("shard_size must be positive")
    clips, dataset = list_clips(inputs, audio_column=audio_column, id_column=id_column, split=split,
                                streaming=streaming)
    num_shards = max(1, math.ceil(len(clips) / shard_size))
    features = datasets.Features({
        "id": datasets.Value("string"),
        "path": datasets.Value("string"),
        "duration": datasets.Value("float64"),
        **{name: feature for head in heads for name, feature in head.features().items()},
    })
    settings = {
        "models": [head.settings for head in heads],
        "shard_size": shard_size,
        "num_shards": num_shards,
        "num_inputs": len(clips),
        "inputs_digest": inputs_digest(clips),
    }
    return CataloguePlan(heads, clips, dataset, features, shard_size, num_shards, settings)


def predict_catalogue(
    inputs,
    models: str | Sequence[str],
    output_dir: str | os.PathLike,
    *,
    batch_size: int = 8,
    shard_size: int = DEFAULT_SHARD_SIZE,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    window_scores: bool = False,
    embeddings: bool = False,
    generation: dict | None = None,
    window_seconds: float | None = None,
    layers: str | int | Sequence[int] = "-1",
    audio_column: str = "audio",
    id_column: str = "id",
    split: str | None = None,
    streaming: bool = False,
    overwrite: bool = False,
    push_to_hub: str | None = None,
    hub: HubSettings | None = None,
    progress: bool = True,
    _stop_after_shards: int | None = None,
) -> datasets.Dataset:
    """Run every saved audiocap model in `models` over every track of `inputs` into a `datasets` dataset in
    `output_dir`.

    Args:
        inputs: a folder (audio files found recursively), an audio file, a list of files, a `Dataset` /
            `DatasetDict` with an `audio_column`, a `save_to_disk` directory, or a Hub dataset id (`split=`).
        models: saved audiocap genre models and captioners (folders or Hub ids), and encoders (anything
            `audiocap-embed` takes); their columns are prefixed with their folder's name (`genre_label`,
            `genre_scores`, `captioner_caption`, `MERT_v1_95M_embedding`, ...).
        output_dir: where the dataset is written (and resumed from).
        batch_size: windows per model call (windows of one shape, from any tracks).
        shard_size: tracks per output shard, the unit of resumption and of the work processes share.
        num_workers: DataLoader worker processes decoding ahead of the models (`None`: `default_num_workers`).
        device: `"cpu"`, `"cuda"`, ... (`None`: this process's accelerator under `accelerate launch`, else CUDA when
            available, else the CPU).
        window_scores: also write each window's softmax scores (`<model>_window_scores`).
        embeddings: also write a genre model's track embedding (`<model>_embedding`: the mean of its windows'
            pooled embeddings, the vectors its head classifies).
        generation: generation settings for the captioners (`max_new_tokens`, `num_beams`, ...) over their saved ones;
            the settings used are recorded.
        window_seconds, layers: for encoders: their windows (the family's default when None) and the hidden states
            whose mean-pooled frames, averaged over the track's windows, make its `<model>_embedding` `(layers, width)`.
        audio_column, id_column, split: for dataset inputs.
        streaming: read a parquet dataset (a `.parquet` file, a local folder or a Hub id) where it lies, row group by
            row group, instead of loading (or downloading) it first.
        overwrite: replace an earlier run in `output_dir` instead of resuming it.
        push_to_hub: a dataset repo id to publish the finished dataset to, with its card (`hub`: private, branch,
            token); the card (`README.md`, saying what produced the dataset) is written either way.
        progress: show a progress bar (tracks, tracks/s, time left).

    Returns:
        The dataset (`datasets.load_from_disk(output_dir)`), one row per track that decoded, in input order: `id`,
        `path`, `duration`, then each model's columns. Tracks that did not decode are listed with the reason in
        `output_dir/skipped.json`; the settings (each model's windows, labels, generation settings) and counts are
        in `output_dir/predict_config.json`.
    """
    import datasets

    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    procs = processes(device)
    heads = load_heads([models] if isinstance(models, (str, os.PathLike)) else list(models), window_scores,
                       embeddings, generation, window_seconds, layers)
    plan = plan_catalogue(inputs, heads, shard_size=shard_size, audio_column=audio_column, id_column=id_column,
                          split=split, streaming=streaming)
    output_dir = Path(output_dir)
    claims = start_claims(plan, output_dir, procs, overwrite, PREDICT)
    for head in heads:
        head.to(procs.device)
    stream = dict(dataset=plan.dataset, audio_column="audio", heads=[head.stream for head in heads],
                  block_windows=batch_size)
    workers = default_num_workers(procs.device) if num_workers is None else num_workers
    try:
        ShardRunner(
            plan.clips, claims, plan.shard_size, plan.num_shards, stream, heads,
            lambda tracks: track_columns(tracks, heads), batch_size, workers, plan.features, output_dir, procs,
            "predict" if progress else None, _stop_after_shards, PREDICT,
        ).run()
    finally:
        for head in heads:
            head.close()
    done = finish(plan, output_dir, procs, PREDICT)
    if procs.rank == 0:
        repo_id = push_to_hub or output_dir.name
        render_catalogue_card(output_dir, {**done["plan"], **done}, repo_id)
        if push_to_hub:
            push_folder(output_dir, repo_id, f"audiocap-predict: {done['clips']} tracks", hub, repo_type="dataset")
    return datasets.load_from_disk(str(output_dir))


__all__ = ["PREDICT", "CataloguePlan", "plan_catalogue", "predict_catalogue", "track_columns"]
