"""What to embed or predict: a folder of audio files, a list of files (given, or in a `.txt` / `.csv` / `.tsv` /
`.parquet` file list), or a `datasets` dataset -> an ordered sequence of `Clip`s.

The order is deterministic (sorted paths for a folder, walked lazily, the given order for a list, row order for a dataset), so a
re-run lists the same clips in the same shards and can resume. A catalogue's clips are held as Arrow columns
(`ClipTable`), each `Clip` made when it is read.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audio import AUDIO_EXTENSIONS, audio_files, iter_audio_files
from .parquet import ParquetRows, split_parquet_files

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


class ClipTable(Sequence):
    """Clips as Arrow columns (`id`, `path`, and `source` or the dataset `row`), a `Clip` made per read: a million
    tracks take about 90 MB where a list of `Clip` objects takes 450 MB, and forked decoding workers share the
    buffers instead of copying every page that Python's reference counts touch. Position `i` is the `i`-th clip."""

    BATCH = 65536

    def __init__(self, table):
        self.table = table.combine_chunks()
        self._columns = {name: self.table.column(name) for name in self.table.column_names}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str | None, int | None]]) -> "ClipTable":
        """From `(id, path, source, row)` tuples, converted to Arrow a batch at a time."""
        import pyarrow as pa

        schema = pa.schema([("id", pa.string()), ("path", pa.string()), ("source", pa.string()), ("row", pa.int64())])
        rows, batches = iter(rows), []
        while pending := list(itertools.islice(rows, cls.BATCH)):
            columns = [pa.array(values, field.type) for values, field in zip(zip(*pending), schema)]
            batches.append(pa.RecordBatch.from_arrays(columns, schema=schema))
        return cls(pa.Table.from_batches(batches, schema=schema))

    def __len__(self) -> int:
        return self.table.num_rows

    def _clip(self, position: int, values: dict) -> Clip:
        return Clip(position, values["id"], values["path"], source=values["source"], row=values["row"])

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            part = self.table.slice(start, max(0, stop - start)).to_pylist()
            return [self._clip(start + i, values) for i, values in enumerate(part)]
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"clip {index} of {len(self)}")
        return self._clip(position, {name: column[position].as_py() for name, column in self._columns.items()})

    def __iter__(self) -> Iterator[Clip]:
        for start in range(0, len(self), self.BATCH):
            yield from self[start : start + self.BATCH]


def _pick_split(dataset: datasets.DatasetDict, split: str | None) -> datasets.Dataset:
    if split is not None:
        return dataset[split]
    if len(dataset) == 1:
        return next(iter(dataset.values()))
    if "train" in dataset:
        return dataset["train"]
    raise ValueError(f"The dataset has splits {sorted(dataset)}: pass split=")


def load_input_dataset(inputs: Any, split: str | None = None, audio_column: str = "audio") -> datasets.Dataset:
    """A `Dataset` from a Dataset / DatasetDict object, or from anything the shared resolver
    (`modeling_audiocap.data.sources.load_source`) reads: a Hub id, a Hub snapshot, `save_to_disk` or audio folder.
    Resolved sources come with their audio column renamed to `audio`."""
    import datasets

    from ..data.sources import load_source

    if isinstance(inputs, datasets.DatasetDict):
        return _pick_split(inputs, split)
    if isinstance(inputs, datasets.Dataset):
        return inputs
    return _pick_split(load_source(os.fspath(inputs), audio_column=audio_column), split)


def dataset_clips(
    dataset: datasets.Dataset, audio_column: str = "audio", id_column: str = "id"
) -> tuple[ClipTable, datasets.Dataset]:
    """Clips of a dataset's rows, and the dataset with its Audio column set not to decode (the engine decodes,
    block by block, and skips what does not decode)."""
    import datasets

    if audio_column not in dataset.column_names:
        raise ValueError(f"The dataset has no {audio_column!r} column (columns: {dataset.column_names}); pass audio_column=")
    if len(dataset) == 0:
        raise ValueError("The dataset has no rows: nothing to embed")
    feature = dataset.features[audio_column]
    if isinstance(feature, datasets.Audio) and feature.decode:
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    # Paths and ids come from the Arrow columns, without reading the audio bytes into Python.
    table = dataset.select_columns([c for c in (audio_column, id_column) if c in dataset.column_names])
    table = table.with_format("arrow")

    def rows() -> Iterator[tuple[str, str, None, int]]:
        import pyarrow.compute as pc

        row = 0
        for batch in table.iter(batch_size=2048):
            column = batch.column(audio_column)
            paths = [None] * len(batch)
            if hasattr(column.type, "get_field_index") and column.type.get_field_index("path") >= 0:
                paths = pc.struct_field(column, "path").to_pylist()
            ids = batch.column(id_column).to_pylist() if id_column in batch.column_names else [None] * len(batch)
            for path, clip_id in zip(paths, ids):
                yield str(row) if clip_id is None else str(clip_id), path or "", None, row
                row += 1

    return ClipTable.from_rows(rows()), dataset


FILE_LIST_SUFFIXES = (".txt", ".csv", ".tsv", ".parquet")
PATH_COLUMNS = ("path", "file_name", "file", "filename")  # a file list's path column, after `audio_column`


def file_list_clips(list_file: str | os.PathLike, audio_column: str = "audio", id_column: str = "id") -> ClipTable:
    """The clips a file list names, in its order: a `.txt` of one path per line (blank lines and `#` comments
    skipped), or a `.csv` / `.tsv` / `.parquet` table with a path column (`audio_column`, else one of
    `PATH_COLUMNS`) and optionally `id_column`. Relative paths are relative to the list's folder; a clip's id is its
    `id_column` value, else its path as written."""
    list_file = Path(list_file)
    if list_file.suffix == ".txt":
        with open(list_file, encoding="utf-8") as f:
            paths = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        ids = paths
    else:
        table = _read_table(list_file)
        column = next((c for c in (audio_column, *PATH_COLUMNS) if c in table.column_names), None)
        if column is None:
            raise ValueError(
                f"{list_file} has no path column ({audio_column!r} or one of {', '.join(PATH_COLUMNS)}); its columns: "
                f"{', '.join(table.column_names)}"
            )
        paths = [str(p) for p in table.column(column).to_pylist()]
        ids = [str(i) for i in table.column(id_column).to_pylist()] if id_column in table.column_names else paths
    if not paths:
        raise ValueError(f"{list_file} lists no audio files")
    root = list_file.parent
    return ClipTable.from_rows(
        (clip_id, str((root / path).resolve()), str(root / path), None) for clip_id, path in zip(ids, paths)
    )


def _read_table(list_file: Path):
    """A `.csv` / `.tsv` / `.parquet` file list as an Arrow table."""
    if list_file.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(list_file)
    import pyarrow.csv as pcsv

    delimiter = "\t" if list_file.suffix == ".tsv" else ","
    return pcsv.read_csv(list_file, parse_options=pcsv.ParseOptions(delimiter=delimiter),
                         convert_options=pcsv.ConvertOptions(strings_can_be_null=False))


def _audio_named_audio(dataset: datasets.Dataset, audio_column: str) -> datasets.Dataset:
    if audio_column == "audio":
        return dataset
    if "audio" in dataset.column_names:
        dataset = dataset.remove_columns("audio")
    return dataset.rename_column(audio_column, "audio")


def list_clips(
    inputs: Any, audio_column: str = "audio", id_column: str = "id", split: str | None = None, streaming: bool = False
) -> tuple[Sequence[Clip], datasets.Dataset | ParquetRows | None]:
    """`(clips, dataset)` for a folder, a file, a list of files, a file list (`FILE_LIST_SUFFIXES`), a `Dataset`, a
    `save_to_disk` directory or a Hub id.

    Folders and ids are read by the shared resolver, `modeling_audiocap.data.sources`; a returned dataset holds the
    audio in its `audio` column. Ids: a `<label>/<clip>` folder's files by their path relative to it; listed files
    by the path as given; dataset rows by their `id_column` when the dataset has one, else by row number.

    With `streaming`, a parquet dataset (a `.parquet` file, a local folder or a Hub id) is read where it lies,
    row group by row group (`ParquetRows`), instead of being loaded (and, for a Hub id, downloaded) first.
    """
    import datasets

    if streaming:
        if not isinstance(inputs, (str, os.PathLike)):
            raise TypeError("streaming reads a parquet dataset: a .parquet file, a folder or a Hub dataset id")
        rows = ParquetRows(split_parquet_files(os.fspath(inputs), split), audio_column)
        listed = enumerate(rows.ids_and_paths(id_column))
        return ClipTable.from_rows((clip_id, path, None, row) for row, (clip_id, path) in listed), rows
    if isinstance(inputs, (datasets.Dataset, datasets.DatasetDict)):
        clips, dataset = dataset_clips(load_input_dataset(inputs, split), audio_column, id_column)
        return clips, _audio_named_audio(dataset, audio_column)
    if isinstance(inputs, (str, os.PathLike)):
        from ..data.sources import audio_root, folder_kind

        name = os.fspath(inputs)
        if os.path.isfile(name) and Path(name).suffix.lower() in FILE_LIST_SUFFIXES:
            return file_list_clips(name, audio_column, id_column), None
        if os.path.isfile(name):
            return [Clip(0, name, str(Path(name).resolve()), source=name)], None
        if os.path.isdir(name) and folder_kind(name) == "tree":  # the files themselves, by their relative path
            root = Path(name)
            files = iter_audio_files(audio_root(root))  # walked as the table is built: no list of every path
            return ClipTable.from_rows((f.relative_to(root).as_posix(), str(f.resolve()), str(f), None) for f in files), None
        # A save_to_disk / Hub snapshot / metadata folder or a Hub id; its audio column is renamed to `audio`.
        return dataset_clips(load_input_dataset(name, split, audio_column), "audio", id_column)
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


__all__ = [
    "AUDIO_EXTENSIONS", "FILE_LIST_SUFFIXES", "Clip", "ClipTable", "audio_files", "dataset_clips", "file_list_clips", "list_clips",
    "load_input_dataset",
]
