"""Genre datasets as a `DatasetDict` with `train` / `validation` / `test`, an `audio` column and a `label` ClassLabel.

Sources: a Hub id (`datasets.load_dataset`), a folder with `metadata.csv` (`file_name` + label column, optional
`split` column; the built-in music set is one), or an audiofolder tree `<root>/<label>/<clip>` (GTZAN's
`genres/<genre>/<genre>.000NN.au` is one), or an FMA root holding `fma_metadata/tracks.csv` and `fma_<subset>/`
(`dataset_config_name` picks the subset: small, medium, large or full; see `modeling_audiocap.data.fma`). Split
protocols:

- `predefined`: the source's own splits (Hub splits, the `split` column, FMA's official split); falls back to
  `random` if it has none;
- `random`: the reference paper's seeded, stratified 80/20 train/test, with validation carved from train;
- `filtered`: GTZAN's fault-filtered, artist-aware 443/197/290 lists (as shipped in torchaudio.datasets.gtzan).
"""

import csv
import logging
import os
from pathlib import Path

import datasets
from sklearn.model_selection import train_test_split

from ..audio import audio_files
from .fma import find_fma_root, load_fma_root

logger = logging.getLogger(__name__)

SPLIT_PROTOCOLS = ("predefined", "random", "filtered")
SPLITS = ("train", "validation", "test")


def _folder_rows(root: Path, label_column: str) -> list[dict]:
    """Rows of a `metadata.csv` folder, or of a `<root>/<label>/<clip>` tree."""
    metadata = root / "metadata.csv"
    if metadata.is_file():
        with open(metadata, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and label_column not in rows[0]:
            raise ValueError(f"{metadata} has no label column {label_column!r}; columns: {', '.join(rows[0])}")
        for row in rows:
            row["audio"] = str(root / row["file_name"])
        return rows
    rows = []
    for path in audio_files(root):
        rows.append({"audio": str(path), "file_name": str(path.relative_to(root)), label_column: path.parent.name})
    if not rows:
        raise FileNotFoundError(f"{root} has neither metadata.csv nor audio files in <label>/<clip> folders")
    return rows


def _from_rows(rows: list[dict], label_column: str) -> datasets.Dataset:
    names = sorted({r[label_column] for r in rows})
    columns = {key: [r[key] for r in rows] for key in rows[0] if key != label_column}
    columns["label"] = [names.index(r[label_column]) for r in rows]
    features = datasets.Features(
        {key: datasets.Value("string") for key in columns if key != "label"} | {"label": datasets.ClassLabel(names=names)}
    )
    return datasets.Dataset.from_dict(columns, features=features).cast_column("audio", datasets.Audio(decode=False))


def random_split(dataset: datasets.Dataset, seed: int, test_fraction: float = 0.2, validation_fraction: float = 0.1):
    """Seeded, stratified train/test split with validation carved out of train (fractions of the whole set)."""
    labels = dataset["label"]
    indices = list(range(len(dataset)))
    train_idx, test_idx = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=labels)
    rest = [labels[i] for i in train_idx]
    val_share = validation_fraction / (1.0 - test_fraction)
    train_idx, val_idx = train_test_split(train_idx, test_size=val_share, random_state=seed, stratify=rest)
    return datasets.DatasetDict(
        {name: dataset.select(sorted(idx)) for name, idx in zip(SPLITS, (train_idx, val_idx, test_idx))}
    )


def gtzan_filtered_split(dataset: datasets.Dataset) -> datasets.DatasetDict:
    """GTZAN's fault-filtered split; clips are matched by their `<genre>.000NN` file stem."""
    from torchaudio.datasets import gtzan

    lists = {"train": gtzan.filtered_train, "validation": gtzan.filtered_valid, "test": gtzan.filtered_test}
    stems = [Path(p["path"] if isinstance(p, dict) else p).stem for p in dataset["audio"]]
    out = {}
    for split, names in lists.items():
        wanted = set(names)
        out[split] = dataset.select([i for i, stem in enumerate(stems) if stem in wanted])
        if len(out[split]) != len(wanted):
            logger.warning("GTZAN filtered %s: %d of %d listed clips found", split, len(out[split]), len(wanted))
    return datasets.DatasetDict(out)


def load_genre_dataset(
    dataset_name: str,
    dataset_config_name: str | None = None,
    audio_column_name: str = "audio",
    label_column_name: str = "label",
    split_protocol: str = "predefined",
    seed: int = 0,
) -> datasets.DatasetDict:
    """Load a genre dataset with `train`, `validation` and `test` splits (see the module docstring)."""
    if split_protocol not in SPLIT_PROTOCOLS:
        raise ValueError(f"split_protocol must be one of {SPLIT_PROTOCOLS}, got {split_protocol!r}")
    if os.path.isdir(dataset_name) and find_fma_root(dataset_name) is not None:
        if split_protocol == "filtered":
            raise ValueError(
                "split_protocol 'filtered' is GTZAN's split; FMA takes 'predefined' (official) or 'random'"
            )
        official = load_fma_root(dataset_name, dataset_config_name)
        whole = datasets.concatenate_datasets(list(official.values()))
        splits = official if split_protocol == "predefined" else None
    elif os.path.isdir(dataset_name):
        rows = _folder_rows(Path(dataset_name).absolute(), label_column_name)
        has_split = "split" in rows[0]
        whole = _from_rows(rows, label_column_name)
        if split_protocol == "predefined" and has_split:
            splits = datasets.DatasetDict({s: whole.filter(lambda r, s=s: r["split"] == s) for s in SPLITS})
        else:
            splits = None
    else:
        loaded = datasets.load_dataset(dataset_name, dataset_config_name)
        loaded = loaded.rename_columns({c: n for c, n in ((audio_column_name, "audio"), (label_column_name, "label")) if c != n})
        # Keep paths and bytes: decoding happens once, in audiocap's own preparation step.
        loaded = loaded.cast_column("audio", datasets.Audio(decode=False))
        whole = datasets.concatenate_datasets(list(loaded.values()))
        splits = loaded if split_protocol == "predefined" and set(SPLITS) <= set(loaded) else None
    if splits is None:
        if split_protocol == "filtered":
            splits = gtzan_filtered_split(whole)
        else:
            splits = random_split(whole, seed)
    logger.info("Genre splits (%s, seed %d): %s", split_protocol, seed, {k: len(v) for k, v in splits.items()})
    return splits
