"""Captioning datasets as a `DatasetDict` (`train` / `validation` / `test`) with `audio` and `caption` columns.

Sources: a MusicCaps folder (`musiccaps-public.csv` beside the clips that `prepare_musiccaps` fetched;
`--split_protocol random` is the reference's 70/10/20, `official` uses `is_audioset_eval`), or anything the shared
resolver `modeling_audiocap.data.sources.load_source` reads: a Hub id, a Hub snapshot or `save_to_disk` folder, a
folder with `metadata.csv` / `metadata.jsonl` (`file_name`, a caption column, optional `split`; every other column is
kept, e.g. the built-in set's attributes). Without predefined splits, a seeded random 70/10/20 split (the reference
protocol) is made.

Several captions per clip (Clotho's `caption_1` .. `caption_5`, the built-in set's `caption` .. `caption_5`): name
their columns separated by commas (`--caption_column_name caption_1,caption_2,...`). The first becomes `caption`, and
`captions` lists every non-empty one (only `caption` with a single column): training draws one of them per clip and
epoch, and the metrics score against all of them.
"""

import logging
from pathlib import Path

import datasets
from sklearn.model_selection import train_test_split

from .musiccaps import load_musiccaps
from .sources import load_source, take_column

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MUSICCAPS_CSV = "musiccaps-public.csv"


def random_caption_split(dataset: datasets.Dataset, seed: int, validation: float = 0.1, test: float = 0.2):
    """Seeded random train/validation/test split (fractions of the whole set)."""
    indices = list(range(len(dataset)))
    train_idx, test_idx = train_test_split(indices, test_size=test, random_state=seed)
    train_idx, val_idx = train_test_split(train_idx, test_size=validation / (1.0 - test), random_state=seed)
    return datasets.DatasetDict({s: dataset.select(sorted(i)) for s, i in zip(SPLITS, (train_idx, val_idx, test_idx))})


def with_all_captions(splits: datasets.DatasetDict, others: list[str]) -> datasets.DatasetDict:
    """`splits` with a `captions` column: `caption` and the non-empty captions of the columns `others`."""

    def gather(*columns: list) -> dict:
        return {"captions": [[str(c) for c in row if c is not None and str(c).strip()] for row in zip(*columns)]}

    return splits.map(gather, batched=True, input_columns=["caption", *others], desc="captions")


def load_caption_dataset(
    dataset_name: str,
    dataset_config_name: str | None = None,
    audio_column_name: str = "audio",
    caption_column_name: str = "caption",
    split_protocol: str = "predefined",
    seed: int = 0,
    dataset_revision: str | None = None,
) -> datasets.DatasetDict:
    """Load a captioning dataset with `train`, `validation` and `test` splits."""
    if split_protocol not in ("predefined", "random", "official"):
        raise ValueError(f"split_protocol must be predefined, random or official, got {split_protocol!r}")
    musiccaps_csv = Path(dataset_name) / MUSICCAPS_CSV
    others: list[str] = []  # caption columns after the first
    if musiccaps_csv.is_file():
        protocol = "official" if split_protocol == "official" else "random"
        splits = load_musiccaps(musiccaps_csv, Path(dataset_name), split_protocol=protocol, seed=seed)
    elif split_protocol == "official":
        raise ValueError(f"split_protocol 'official' is MusicCaps' split; {dataset_name} has no {MUSICCAPS_CSV}")
    else:
        loaded = load_source(dataset_name, dataset_config_name, dataset_revision, audio_column_name)
        first, *others = [c.strip() for c in caption_column_name.split(",") if c.strip()] or [""]
        loaded = take_column(loaded, first, "caption", "caption", dataset_name, "--caption_column_name")
        for column in others:  # kept under their own names: this only refuses a missing one, naming the columns there
            take_column(loaded, column, column, "caption", dataset_name, "--caption_column_name")
        whole = datasets.concatenate_datasets(list(loaded.values()))
        splits = None
        if split_protocol == "predefined" and set(SPLITS) <= set(loaded):
            splits = datasets.DatasetDict({s: loaded[s] for s in SPLITS})
    if splits is None:
        splits = random_caption_split(whole, seed)
    splits = with_all_captions(splits, others)
    logger.info("Caption splits (%s, seed %d): %s", split_protocol, seed, {k: len(v) for k, v in splits.items()})
    return splits
