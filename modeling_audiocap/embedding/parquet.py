"""Parquet datasets read where they lie (`--streaming`): a local folder or file of parquet data, or a Hub dataset's
parquet files over `hf://`, read row group by row group; nothing is copied into a cache first, and a reader holds one
row group at a time.

The split's files come from `datasets`' own resolution of a dataset's data files (`load_dataset_builder(...)
.config.data_files`, no download), so the same files make up the same split as `load_dataset` would read. Rows are
numbered across the files in order, so shards are row ranges: claimed, resumed and written exactly as for any other
input.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PARQUET_SUFFIX = ".parquet"


def _open(path: str):
    import fsspec

    return fsspec.open(path, "rb").open()  # a local path, or `hf://datasets/...` through huggingface_hub's filesystem


class ParquetRows:
    """The rows of parquet files, numbered across them in order: `rows[i]["audio"]` is row `i`'s audio value (the
    `audio_column`'s `{"bytes", "path"}`), read with its row group."""

    def __init__(self, files: list[str], audio_column: str = "audio"):
        import pyarrow.parquet as pq

        if not files:
            raise ValueError("No parquet files to read")
        self.files = [os.fspath(f) for f in files]
        self.audio_column = audio_column
        self.starts: list[int] = []  # first row of each row group, across the files
        self.groups: list[tuple[int, int]] = []  # (file, row group)
        total = 0
        for index, path in enumerate(self.files):
            with _open(path) as f:
                parquet = pq.ParquetFile(f)
                if audio_column not in parquet.schema_arrow.names:
                    raise ValueError(
                        f"{path} has no {audio_column!r} column (columns: {', '.join(parquet.schema_arrow.names)}); "
                        "pass audio_column="
                    )
                self.column_names = parquet.schema_arrow.names
                for group in range(parquet.metadata.num_row_groups):
                    self.starts.append(total)
                    self.groups.append((index, group))
                    total += parquet.metadata.row_group(group).num_rows
        self.num_rows = total
        self._cached: tuple[int, Any] | None = None

    def __len__(self) -> int:
        return self.num_rows

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cached": None}  # a DataLoader worker reads its own row groups

    def _group(self, group: int, columns: list[str]):
        import pyarrow.parquet as pq

        index, row_group = self.groups[group]
        with _open(self.files[index]) as f:
            return pq.ParquetFile(f).read_row_group(row_group, columns=columns)

    def __getitem__(self, row: int) -> dict[str, Any]:
        if not 0 <= row < self.num_rows:
            raise IndexError(row)
        group = bisect.bisect_right(self.starts, row) - 1
        if self._cached is None or self._cached[0] != group:
            self._cached = (group, self._group(group, [self.audio_column]).column(0))
        return {"audio": self._cached[1][row - self.starts[group]].as_py()}

    def ids_and_paths(self, id_column: str) -> Iterator[tuple[str, str]]:
        """Each row's id (`id_column`, else its row number) and its audio's path (empty when it has none), in row
        order, read a row group at a time without the audio bytes."""
        has_id = id_column in self.column_names
        row = 0
        for group in range(len(self.groups)):
            table = self._group(group, [f"{self.audio_column}.path", *([id_column] if has_id else [])])
            audio = table.column(0).to_pylist()
            ids = table.column(1).to_pylist() if has_id else range(row, row + len(audio))
            for value, clip_id in zip(audio, ids):
                yield str(clip_id), (value or {}).get("path") or ""
            row += len(audio)


def split_parquet_files(name: str, split: str | None = None, config_name: str | None = None,
                        revision: str | None = None) -> list[str]:
    """The parquet files of a dataset's split: a `.parquet` file itself, or the data files `datasets` resolves for a
    local folder or Hub dataset id (`split`: the only one, else `train`, when not given)."""
    if os.path.isfile(name):
        if Path(name).suffix != PARQUET_SUFFIX:
            raise ValueError(f"streaming reads parquet data; {name} is not a .parquet file")
        return [name]
    import datasets

    data_files = datasets.load_dataset_builder(name, config_name, revision=revision).config.data_files
    if not data_files:
        raise ValueError(f"{name} has no data files to stream")
    if split is None:
        split = next(iter(data_files)) if len(data_files) == 1 else "train"
    if split not in data_files:
        raise ValueError(f"{name} has the splits {sorted(data_files)}, not {split!r}: pass split=")
    files = [str(f) for f in data_files[split]]
    others = sorted({Path(f).suffix for f in files} - {PARQUET_SUFFIX})
    if others:
        raise ValueError(f"streaming reads parquet data; {name}'s {split} split has {', '.join(others)} files")
    return files


__all__ = ["ParquetRows", "split_parquet_files"]
