"""What to embed: a folder of audio files, a list of files, or a `datasets` dataset -> an ordered list of `Clip`s.

The order is deterministic (sorted paths for a folder, the given order for a list, row order for a dataset), so a
re-run lists the same clips in the same shards and can resume.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audio import AUDIO_EXTENSIONS, audio_files

if TYPE_CHECKING:  # imported when needed: `import modeling_audiocap` stays fast
    import datasets


@dataclass(frozen=True)
class Clip:
    """One input track. `source` is what `stream.iter_windows` reads (a path, or an in-memory value); dataset rows
    carry `row` instead and are read from the dataset in the worker."""

    position: int
    id: str
    path: str
    source: Any = None
    row: int | None = None


def is_saved_dataset(path: str) -> bool:
    """Whether `path` is a directory written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return os.path.isfile(os.path.join(path, "state.json")) or os.path.isfile(os.path.join(path, "dataset_dict.json"))


def _pick_split(dataset: datasets.DatasetDict, split: str | None) -> datasets.Dataset:
    if split is not None:
        return dataset[split]
    if len(dataset) == 1:
        return next(iter(dataset.values()))
    if "train" in dataset:
        return dataset["train"]
    raise ValueError(f"The dataset has splits {sorted(dataset)}: pass split=")


def load_input_dataset(inputs: Any, split: str | None = None) -> datasets.Dataset:
    """A `Dataset` from a Dataset / DatasetDict object, a `save_to_disk` directory or a Hub id."""
    import datasets

    if isinstance(inputs, datasets.DatasetDict):
        return _pick_split(inputs, split)
    if isinstance(inputs, datasets.Dataset):
        return inputs
    name = os.fspath(inputs)
    if os.path.isdir(name):
        loaded = datasets.load_from_disk(name)
    else:
        loaded = datasets.load_dataset(name, split=split)
    return _pick_split(loaded, split) if isinstance(loaded, datasets.DatasetDict) else loaded


def dataset_clips(
    dataset: datasets.Dataset, audio_column: str = "audio", id_column: str = "id"
) -> tuple[list[Clip], datasets.Dataset]:
    """Clips of a dataset's rows, and the dataset with its Audio column set not to decode (the engine decodes,
    block by block, and skips what does not decode)."""
    import datasets

    if audio_column not in dataset.column_names:
        raise ValueError(f"The dataset has no {audio_column!r} column (columns: {dataset.column_names}); pass audio_column=")
    feature = dataset.features[audio_column]
    if isinstance(feature, datasets.Audio) and feature.decode:
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    # Paths and ids come from the Arrow columns, without reading the audio bytes into Python.
    table = dataset.select_columns([c for c in (audio_column, id_column) if c in dataset.column_names])
    table = table.with_format("arrow")
    clips: list[Clip] = []
    for batch in table.iter(batch_size=2048):
        column = batch.column(audio_column)
        paths = [None] * len(batch)
        if hasattr(column.type, "get_field_index") and column.type.get_field_index("path") >= 0:
            import pyarrow.compute as pc

            paths = pc.struct_field(column, "path").to_pylist()
        ids = batch.column(id_column).to_pylist() if id_column in batch.column_names else [None] * len(batch)
        for path, clip_id in zip(paths, ids):
            row = len(clips)
            clips.append(Clip(row, str(row) if clip_id is None else str(clip_id), path or "", row=row))
    return clips, dataset


def list_clips(
    inputs: Any, audio_column: str = "audio", id_column: str = "id", split: str | None = None
) -> tuple[list[Clip], datasets.Dataset | None]:
    """`(clips, dataset)` for a folder, a file, a list of files, a `Dataset`, a `save_to_disk` directory or a Hub id.

    Ids: a folder's files by their path relative to it; listed files by the path as given; dataset rows by their
    `id_column` when the dataset has one, else by row number.
    """
    import datasets

    if isinstance(inputs, (datasets.Dataset, datasets.DatasetDict)):
        return dataset_clips(load_input_dataset(inputs, split), audio_column, id_column)
    if isinstance(inputs, (str, os.PathLike)):
        name = os.fspath(inputs)
        if os.path.isdir(name) and not is_saved_dataset(name):
            files = audio_files(name)
            root = Path(name)
            return [
                Clip(i, f.relative_to(root).as_posix(), str(f.resolve()), source=str(f)) for i, f in enumerate(files)
            ], None
        if os.path.isfile(name):
            return [Clip(0, name, str(Path(name).resolve()), source=name)], None
        if not os.path.exists(name) and (name.startswith((".", os.sep, "~")) or name.count("/") > 1):
            raise FileNotFoundError(f"No such folder, file or dataset directory: {name!r}")
        return dataset_clips(load_input_dataset(name, split), audio_column, id_column)
    if isinstance(inputs, Sequence):
        clips = []
        for i, item in enumerate(inputs):
            if isinstance(item, (str, os.PathLike)):
                clips.append(Clip(i, os.fspath(item), str(Path(item).resolve()), source=os.fspath(item)))
            else:  # any other source load_audio reads (an (array, rate) pair, a datasets Audio dict)
                path = item.get("path") if isinstance(item, dict) else None
                clips.append(Clip(i, str(path or i), str(path or ""), source=item))
        return clips, None
    raise TypeError(
        "inputs must be a folder, a file, a list of files, a datasets Dataset / DatasetDict, a save_to_disk directory "
        f"or a Hub dataset id; got {type(inputs).__name__}"
    )


__all__ = ["AUDIO_EXTENSIONS", "Clip", "audio_files", "dataset_clips", "list_clips", "load_input_dataset"]
