"""Captioning datasets as a `DatasetDict` (`train` / `validation` / `test`) with `audio` and `caption` columns.

Sources: a Hub id; a MusicCaps folder (`musiccaps-public.csv` beside the clips that `prepare_musiccaps` fetched;
`--split_protocol random` is the reference's 70/10/20, `official` uses `is_audioset_eval`); or a folder with
`metadata.csv` (`file_name`, a caption column, optional `split`; every other column is kept, e.g. the built-in
set's attributes). Without predefined splits, a seeded random 70/10/20 split (the reference protocol) is made.
"""

import csv
import logging
import os
from pathlib import Path

import datasets
from sklearn.model_selection import train_test_split

from .musiccaps import load_musiccaps

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MUSICCAPS_CSV = "musiccaps-public.csv"


def _from_metadata(root: Path, caption_column: str) -> datasets.Dataset:
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{root} has no metadata.csv (columns file_name and {caption_column!r})")
    with open(metadata, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or caption_column not in rows[0] or "file_name" not in rows[0]:
        raise ValueError(f"{metadata} needs columns file_name and {caption_column!r}")
    columns = {key: [r[key] for r in rows] for key in rows[0]}
    columns["audio"] = [str(root / name) for name in columns["file_name"]]
    columns["caption"] = columns.pop(caption_column)
    return datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio(decode=False))


def random_caption_split(dataset: datasets.Dataset, seed: int, validation: float = 0.1, test: float = 0.2):
    """Seeded random train/validation/test split (fractions of the whole set)."""
    indices = list(range(len(dataset)))
    train_idx, test_idx = train_test_split(indices, test_size=test, random_state=seed)
    train_idx, val_idx = train_test_split(train_idx, test_size=validation / (1.0 - test), random_state=seed)
    return datasets.DatasetDict({s: dataset.select(sorted(i)) for s, i in zip(SPLITS, (train_idx, val_idx, test_idx))})


def load_caption_dataset(
    dataset_name: str,
    dataset_config_name: str | None = None,
    audio_column_name: str = "audio",
    caption_column_name: str = "caption",
    split_protocol: str = "predefined",
    seed: int = 0,
) -> datasets.DatasetDict:
    """Load a captioning dataset with `train`, `validation` and `test` splits."""
    if split_protocol not in ("predefined", "random", "official"):
        raise ValueError(f"split_protocol must be predefined, random or official, got {split_protocol!r}")
    musiccaps_csv = Path(dataset_name) / MUSICCAPS_CSV
    if musiccaps_csv.is_file():
        protocol = "official" if split_protocol == "official" else "random"
        splits = load_musiccaps(musiccaps_csv, Path(dataset_name), split_protocol=protocol, seed=seed)
    elif split_protocol == "official":
        raise ValueError(f"split_protocol 'official' is MusicCaps' split; {dataset_name} has no {MUSICCAPS_CSV}")
    elif os.path.isdir(dataset_name):
        whole = _from_metadata(Path(dataset_name).absolute(), caption_column_name)
        splits = None
        if split_protocol == "predefined" and "split" in whole.column_names:
            splits = datasets.DatasetDict({s: whole.filter(lambda r, s=s: r["split"] == s) for s in SPLITS})
    else:
        loaded = datasets.load_dataset(dataset_name, dataset_config_name)
        renames = {c: n for c, n in ((audio_column_name, "audio"), (caption_column_name, "caption")) if c != n}
        loaded = loaded.rename_columns(renames).cast_column("audio", datasets.Audio(decode=False))
        whole = datasets.concatenate_datasets(list(loaded.values()))
        splits = loaded if split_protocol == "predefined" and set(SPLITS) <= set(loaded) else None
    if splits is None:
        splits = random_caption_split(whole, seed)
    logger.info("Caption splits (%s, seed %d): %s", split_protocol, seed, {k: len(v) for k, v in splits.items()})
    return splits
