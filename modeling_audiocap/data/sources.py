"""The one dataset resolver: `--dataset_name` (+ config, revision, audio column) -> a `datasets.DatasetDict`.

Every script reads its data through `load_source` (genre and caption training via `load_genre_dataset` /
`load_caption_dataset`, `audiocap-embed` via `embedding.sources`). Forms, tried in this order for a local folder:

1. a `save_to_disk` folder (`state.json` or `dataset_dict.json`): `datasets.load_from_disk`;
2. a Hub snapshot (`hf download --repo-type dataset ID --local-dir D`: a README.md with a `configs:` block, or
   parquet / arrow / csv / jsonl data files) and no audio files: `datasets.load_dataset(folder)`;
3. an audiofolder: `metadata.csv` or `metadata.jsonl` (a `file_name` column, optional `split`), or a `<label>/<clip>`
   tree; GTZAN's tarball (`genres/<g>/<g>.000NN.au`) and Kaggle's copy (`genres_original/<g>/<g>.000NN.wav`) work
   pointed at that folder or at its parent.

Anything else is a Hub id, loaded by `datasets.load_dataset(name, config, revision=...)`. A script dataset (which
datasets >= 4 no longer runs) is refused with the way out: its parquet conversion, `revision="refs/convert/parquet"`.

The result always has an `audio` column (renamed from `audio_column`) that does not decode: audiocap decodes once, in
its own preparation step, and skips what does not decode. A source without clips is an error naming what was looked
for. Label columns become a ClassLabel through `encode_labels`.
"""

import json
import logging
import os
from pathlib import Path

import datasets
import pyarrow.csv

from ..audio import AUDIO_EXTENSIONS, audio_files, iter_audio_files

logger = logging.getLogger(__name__)

METADATA_FILES = ("metadata.csv", "metadata.jsonl")
DATA_FILE_EXTENSIONS = (".parquet", ".arrow", ".csv", ".jsonl", ".json")
# GTZAN's genre folder in the original tarball and in Kaggle's copy; a root holding one is read from inside it.
GTZAN_FOLDERS = ("genres", "genres_original")
SCRIPT_ERROR = "Dataset scripts are no longer supported"
PARQUET_REVISION = "refs/convert/parquet"


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Whether `path` is a directory written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return os.path.isfile(os.path.join(path, "state.json")) or os.path.isfile(os.path.join(path, "dataset_dict.json"))


def _has_configs(root: Path) -> bool:
    readme = root / "README.md"
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return False
    header = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    return any(line.startswith("configs:") for line in header.splitlines())


def _data_files(root: Path) -> list[Path]:
    """Data files `datasets.load_dataset(folder)` would read (hidden files and the audiofolder metadata excluded)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [
            Path(dirpath, name) for name in filenames
            if name.endswith(DATA_FILE_EXTENSIONS) and not name.startswith(".") and name not in METADATA_FILES
        ]
    return sorted(found)


def audio_root(root: Path) -> Path:
    """`root`, or its GTZAN genre folder (`genres/` or `genres_original/`) when it holds one and no metadata."""
    if any((root / name).is_file() for name in METADATA_FILES):
        return root
    for name in GTZAN_FOLDERS:
        if (root / name).is_dir():
            logger.info("Reading %s (GTZAN's genre folder) of %s", name, root)
            return root / name
    return root


def folder_kind(path: str | os.PathLike) -> str:
    """What `load_source` reads a folder as: `saved`, `snapshot`, `metadata`, `tree` or `empty`."""
    root = Path(path)
    if is_saved_dataset(root):
        return "saved"
    if _has_configs(root):
        return "snapshot"
    if any((root / name).is_file() for name in METADATA_FILES):
        return "metadata"
    if next(iter_audio_files(audio_root(root)), None) is not None:  # one file is enough: no listing of the tree
        return "tree"
    return "snapshot" if _data_files(root) else "empty"


def _read_metadata(root: Path) -> tuple[Path, list[dict]]:
    for name in METADATA_FILES:
        path = root / name
        if path.is_file():
            if name.endswith(".csv"):  # typed as `datasets`' audiofolder reads it: numbers are numbers
                rows = pyarrow.csv.read_csv(path).to_pylist()
            else:
                with open(path, encoding="utf-8") as f:
                    rows = [json.loads(line) for line in f if line.strip()]
            if rows and "file_name" not in rows[0]:
                raise ValueError(f"{path} has no file_name column; columns: {', '.join(rows[0])}")
            return path, rows
    raise FileNotFoundError(f"{root} has no {' or '.join(METADATA_FILES)}")


def _folder_rows(root: Path, tree_label_column: str) -> list[dict]:
    """Rows of an audiofolder: its metadata file, or its `<label>/<clip>` tree (label = the clip's folder name)."""
    if any((root / name).is_file() for name in METADATA_FILES):
        _, rows = _read_metadata(root)
        for row in rows:
            row["audio"] = str(root / row["file_name"])
        return rows
    root = audio_root(root)
    return [
        {"audio": str(path), "file_name": path.relative_to(root).as_posix(), tree_label_column: path.parent.name}
        for path in audio_files(root)
    ]


def _rows_to_splits(rows: list[dict]) -> datasets.DatasetDict:
    """Rows -> one `train` split, or one split per value of a `split` column."""
    columns = {key: [r.get(key) for r in rows] for key in rows[0]}
    whole = datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio(decode=False))
    if "split" not in whole.column_names:
        return datasets.DatasetDict({"train": whole})
    names = sorted(set(columns["split"]))
    return datasets.DatasetDict({s: whole.filter(lambda r, s=s: r["split"] == s) for s in names})


def _nothing_found(root: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{root} holds no dataset: looked for save_to_disk files (state.json, dataset_dict.json), a README.md with "
        f"`configs:`, data files ({', '.join('*' + e for e in DATA_FILE_EXTENSIONS)}), "
        f"{' / '.join(METADATA_FILES)}, and audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in <label>/<clip> "
        f"folders (also under {' or '.join(g + '/' for g in GTZAN_FOLDERS)})"
    )


def _load_folder(root: Path, config_name: str | None, tree_label_column: str) -> datasets.DatasetDict:
    kind = folder_kind(root)
    if kind == "saved":
        loaded = datasets.load_from_disk(str(root))
    elif kind == "snapshot":
        loaded = datasets.load_dataset(str(root), config_name)
    elif kind == "empty":
        raise _nothing_found(root)
    else:
        rows = _folder_rows(root, tree_label_column)
        if not rows:
            raise _nothing_found(root)
        loaded = _rows_to_splits(rows)
    logger.info("Read %s as a %s folder", root, kind)
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})


def _load_hub(name: str, config_name: str | None, revision: str | None) -> datasets.DatasetDict:
    if name.startswith((".", os.sep, "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"No such dataset folder: {name!r} (a Hub id is 'owner/name')")
    try:
        loaded = datasets.load_dataset(name, config_name, revision=revision or None)
    except RuntimeError as err:
        if SCRIPT_ERROR not in str(err):
            raise
        raise ValueError(
            f"{name} is a dataset script, which datasets {datasets.__version__} no longer runs ({err}). Load its "
            f"parquet conversion instead: --dataset_revision {PARQUET_REVISION} (or point --dataset_name at a local "
            "copy of the data)"
        ) from err
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})


def take_column(
    splits: datasets.DatasetDict, column: str, target: str, what: str, source: str, flag: str
) -> datasets.DatasetDict:
    """`splits` with `column` renamed to `target` (an existing `target` column gives way); an error naming the
    source, the column and the columns there are when it is missing."""
    columns = next(iter(splits.values())).column_names if splits else []
    if column not in columns:
        raise ValueError(f"{source} has no {what} column {column!r} (columns: {', '.join(columns)}); pass {flag}")
    if column == target:
        return splits
    if target in columns:
        splits = splits.remove_columns(target)
    return splits.rename_column(column, target)


def load_source(
    name: str,
    config_name: str | None = None,
    revision: str | None = None,
    audio_column: str = "audio",
    tree_label_column: str = "label",
) -> datasets.DatasetDict:
    """The dataset `name` names (a local folder or a Hub id; see the module docstring) with an undecoded `audio`
    column; a `<label>/<clip>` tree puts its folder names in `tree_label_column`. Raises when it holds no clip."""
    if os.path.isdir(name):
        if revision:
            logger.warning("--dataset_revision %s is ignored for the local folder %s", revision, name)
        loaded = _load_folder(Path(name).absolute(), config_name, tree_label_column)
    else:
        loaded = _load_hub(name, config_name, revision)
    loaded = take_column(loaded, audio_column, "audio", "audio", name, flag="--audio_column_name")
    loaded = loaded.cast_column("audio", datasets.Audio(decode=False))
    if sum(len(split) for split in loaded.values()) == 0:
        raise ValueError(f"{name} has no rows (splits: {sorted(loaded)})")
    return loaded


def encode_labels(splits: datasets.DatasetDict, column: str, source: str = "the dataset") -> datasets.DatasetDict:
    """Rename `column` to `label` as one ClassLabel over all splits: a ClassLabel stays; strings and integers get
    the sorted distinct values as names (integers sorted as numbers)."""
    splits = take_column(splits, column, "label", "label", source, flag="--label_column_name")
    feature = next(iter(splits.values())).features["label"]
    if isinstance(feature, datasets.ClassLabel):
        return splits
    values = {v for split in splits.values() for v in split.unique("label")}
    if None in values:
        raise ValueError(f"{source} has rows without a {column!r} value")
    names = [str(v) for v in sorted(values)]
    index = {str(v): i for i, v in enumerate(sorted(values))}
    features = {s: d.features.copy() for s, d in splits.items()}
    for f in features.values():
        f["label"] = datasets.ClassLabel(names=names)
    return datasets.DatasetDict(
        {
            s: d.map(lambda labels: {"label": [index[str(v)] for v in labels]}, input_columns="label", batched=True,
                     features=features[s], desc="labels")
            for s, d in splits.items()
        }
    )
