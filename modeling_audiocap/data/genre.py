"""Clip datasets (genre and other classes, tags, regression targets) as a `DatasetDict` with `train` / `validation` /
`test`, an `audio` column and the targets in `label`.

Sources: an FMA root holding `fma_metadata/tracks.csv` and `fma_<subset>/` (`dataset_config_name` picks the
subset: small, medium, large or full; see `modeling_audiocap.data.fma`), a MagnaTagATune or MTG-Jamendo copy in its
own layout (`modeling_audiocap.data.tagging`), or anything the shared resolver
`modeling_audiocap.data.sources.load_source` reads (a Hub id, a Hub snapshot or `save_to_disk` folder, a folder with
`metadata.csv` / `metadata.jsonl`, a `<label>/<clip>` tree such as GTZAN's). The label column(s) become `label` as
`modeling_audiocap.data.targets.clip_targets` reads them: a ClassLabel for classes, `Sequence(ClassLabel)` for tags,
`Sequence(float32)` for regression targets. Split protocols:

- `predefined`: the source's own splits (Hub splits, the `split` column, FMA's, MTT's and Jamendo's official
  splits); a source with `train` and `test` but no `validation` gets a validation carved from its train (stratified
  by class); one without splits falls back to `random`;
- `random`: the reference paper's seeded 80/20 train/test (stratified by class), with validation carved from train;
- `filtered`: GTZAN's fault-filtered, artist-aware 443/197/290 lists (as shipped in torchaudio.datasets.gtzan).
"""

import logging
import os
from pathlib import Path

import datasets
import pyarrow.compute as pc
from sklearn.model_selection import train_test_split

from .fma import find_fma_root, load_fma_root
from .sources import load_source
from .tagging import load_tagging_root
from .targets import clip_targets

logger = logging.getLogger(__name__)

SPLIT_PROTOCOLS = ("predefined", "random", "filtered")
SPLITS = ("train", "validation", "test")


def class_strata(dataset: datasets.Dataset) -> list[int] | None:
    """The clips' classes to stratify a split by; None for tags and regression targets."""
    return dataset["label"] if isinstance(dataset.features["label"], datasets.ClassLabel) else None


def random_split(dataset: datasets.Dataset, seed: int, test_fraction: float = 0.2, validation_fraction: float = 0.1):
    """Seeded train/test split (stratified by class) with validation carved out of train (fractions of the whole
    set)."""
    labels = class_strata(dataset)
    indices = list(range(len(dataset)))
    train_idx, test_idx = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=labels)
    rest = None if labels is None else [labels[i] for i in train_idx]
    val_share = validation_fraction / (1.0 - test_fraction)
    train_idx, val_idx = train_test_split(train_idx, test_size=val_share, random_state=seed, stratify=rest)
    return datasets.DatasetDict(
        {name: dataset.select(sorted(idx)) for name, idx in zip(SPLITS, (train_idx, val_idx, test_idx))}
    )


def gtzan_filtered_split(dataset: datasets.Dataset) -> datasets.DatasetDict:
    """GTZAN's fault-filtered split; clips are matched by their `<genre>.000NN` file stem."""
    from torchaudio.datasets import gtzan

    lists = {"train": gtzan.filtered_train, "validation": gtzan.filtered_valid, "test": gtzan.filtered_test}
    paths = pc.struct_field(dataset.with_format("arrow", columns=["audio"])[:]["audio"], "path").to_pylist()
    stems = [Path(p or "").stem for p in paths]  # read from Arrow: the audio bytes stay where they are
    out = {}
    for split, names in lists.items():
        wanted = set(names)
        out[split] = dataset.select([i for i, stem in enumerate(stems) if stem in wanted])
        if len(out[split]) != len(wanted):
            logger.warning("GTZAN filtered %s: %d of %d listed clips found", split, len(out[split]), len(wanted))
    return datasets.DatasetDict(out)


def carve_validation(splits: datasets.DatasetDict, seed: int, fraction: float = 0.125) -> datasets.DatasetDict:
    """`train` / `validation` / `test` from a source's `train` and `test`: a seeded `fraction` of train (stratified by
    class) becomes validation (0.125 of an 80 % train is the `random` protocol's 10 % of the whole)."""
    train = splits["train"]
    labels = class_strata(train)
    size = max(round(fraction * len(train)), len(set(labels or [])), 1)  # stratifying needs one clip of every class
    train_idx, val_idx = train_test_split(list(range(len(train))), test_size=size, random_state=seed, stratify=labels)
    return datasets.DatasetDict(
        {"train": train.select(sorted(train_idx)), "validation": train.select(sorted(val_idx)), "test": splits["test"]}
    )


def _predefined(loaded: datasets.DatasetDict, seed: int) -> datasets.DatasetDict | None:
    if set(SPLITS) <= set(loaded):
        return datasets.DatasetDict({s: loaded[s] for s in SPLITS})
    if {"train", "test"} <= set(loaded):
        return carve_validation(loaded, seed)
    return None


def load_genre_dataset(
    dataset_name: str,
    dataset_config_name: str | None = None,
    audio_column_name: str = "audio",
    label_column_name: str = "label",
    split_protocol: str = "predefined",
    seed: int = 0,
    dataset_revision: str | None = None,
    problem_type: str | None = None,
) -> datasets.DatasetDict:
    """Load a clip dataset with `train`, `validation` and `test` splits, its targets from `label_column_name` (one
    column, or a comma-separated list) as `problem_type` (inferred from the data when None) reads them (see the
    module docstring)."""
    if split_protocol not in SPLIT_PROTOCOLS:
        raise ValueError(f"split_protocol must be one of {SPLIT_PROTOCOLS}, got {split_protocol!r}")
    tagging = load_tagging_root(dataset_name, dataset_config_name) if os.path.isdir(dataset_name) else None
    if tagging is not None:
        if split_protocol != "predefined":
            raise ValueError(f"{dataset_name} is a tagging benchmark with official splits: use split_protocol predefined")
        columns = "tags" if label_column_name == "label" else label_column_name
        return clip_targets(tagging, columns, problem_type, dataset_name)
    if os.path.isdir(dataset_name) and find_fma_root(dataset_name) is not None:
        if split_protocol == "filtered":
            raise ValueError(
                "split_protocol 'filtered' is GTZAN's split; FMA takes 'predefined' (official) or 'random'"
            )
        if problem_type not in (None, "single_label_classification"):
            raise ValueError(f"{dataset_name} is read as FMA's top-level genre, one class per track")
        official = load_fma_root(dataset_name, dataset_config_name)
        whole = datasets.concatenate_datasets(list(official.values()))
        splits = official if split_protocol == "predefined" else None
    else:
        tree_column = label_column_name.split(",")[0]
        loaded = load_source(
            dataset_name, dataset_config_name, dataset_revision, audio_column_name, tree_label_column=tree_column
        )
        loaded = clip_targets(loaded, label_column_name, problem_type, source=dataset_name)
        whole = datasets.concatenate_datasets(list(loaded.values()))
        splits = _predefined(loaded, seed) if split_protocol == "predefined" else None
    if splits is None:
        if split_protocol == "filtered":
            splits = gtzan_filtered_split(whole)
        else:
            splits = random_split(whole, seed)
    logger.info("Clip splits (%s, seed %d): %s", split_protocol, seed, {k: len(v) for k, v in splits.items()})
    return splits
