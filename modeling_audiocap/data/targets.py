"""A clip's targets, from the forms datasets hold them in, as the one column a classifier, tagger or regressor
trains on (`clip_targets`, which also decides which of the three the data asks for: `infer_problem_type`).

- Classes -> a `ClassLabel` (`sources.encode_labels`).
- Tags -> `Sequence(ClassLabel)` (the Hub's own form): from a list column (class ids with names, or strings), from
  one 0/1 column per tag, from several categorical columns (each value a tag: instrument, mood, ...), or from a
  delimited string (`"rock|guitar"`, as a `metadata.csv` column holds them). The vocabulary is the training split's
  tags (or a given one); a tag outside it in another split is refused, naming the split, the row and the tag: never
  silently dropped.
- Numbers -> `Sequence(float32)` (one value per target column). A row with a missing value (None, NaN, empty text)
  or text that is no number is skipped and counted per split, with the first such row named.
"""

from __future__ import annotations

import logging
import math
import re

import datasets

from .sources import encode_labels

logger = logging.getLogger(__name__)

TAG_SEPARATORS = re.compile(r"\s*[|;,]\s*")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
FLAGS = frozenset((0, 1, True, False, "0", "1", "true", "false", "True", "False"))


def _is_float(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype.startswith("float")


def infer_problem_type(features: datasets.Features, columns: list[str]) -> str:
    """What the target `columns` ask for, as users expect: number columns make a regressor, a list column or several
    columns (0/1 flags, or categorical values) a tagger, one column of classes a classifier. A delimited string
    column is text to this rule: name `multi_label_classification` to read it as tags."""
    found = [features[c] for c in columns if c in features]
    if len(found) == len(columns) and all(_is_float(feature) for feature in found):
        return "regression"
    if len(columns) > 1 or isinstance(features.get(columns[0]), (datasets.Sequence, datasets.List)):
        return "multi_label_classification"
    return "single_label_classification"


def clip_targets(splits: datasets.DatasetDict, columns: str | list[str], problem_type: str | None,
                 source: str) -> datasets.DatasetDict:
    """`splits` with the clips' targets from `columns` (a name, or a comma-separated list) as `label`: a `ClassLabel`
    (single label), `Sequence(ClassLabel)` (tags) or `Sequence(float32)` (regression), by `problem_type`, inferred
    from the data when None (`infer_problem_type`)."""
    columns = [c.strip() for c in columns.split(",")] if isinstance(columns, str) else list(columns)
    features = next(iter(splits.values())).features
    problem_type = problem_type or infer_problem_type(features, columns)
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    logger.info("%s: %s from %s", source, problem_type, ", ".join(columns))
    if problem_type == "regression":
        return regression_targets(splits, columns, source, name="label")
    if problem_type == "multi_label_classification":
        return tag_targets(splits, columns, source, name="label")
    if len(columns) != 1:
        raise ValueError(f"{source}: a single-label classifier reads one label column, got {', '.join(columns)}")
    return encode_labels(splits, columns[0], source)


def _names(feature, values: list) -> list[list[str]]:
    """Each row's tags as names, from a list column of class ids (with their names) or of strings."""
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        return [[inner.names[i] for i in row or []] for row in values]
    return [[str(tag).strip() for tag in row or [] if str(tag).strip()] for row in values]


def _flag_columns(split: datasets.Dataset, columns: list[str]) -> bool:
    """Whether several tag `columns` are 0/1 flags (a tag each) rather than categorical values (each value a tag)."""
    return all(set(split.unique(c)) <= FLAGS for c in columns)


def _row_tags(split: datasets.Dataset, columns: list[str], source: str, flags: bool) -> list[list[str]]:
    """Each row's tags as names, from whichever form `columns` hold."""
    missing = [c for c in columns if c not in split.column_names]
    if missing:
        raise ValueError(f"{source} has no column {missing[0]!r} (columns: {', '.join(split.column_names)})")
    if len(columns) > 1:
        rows = split.select_columns(columns)
        if flags:  # one 0/1 column per tag
            return [[c for c in columns if row[c] in (1, True, "1", "true", "True")] for row in rows]
        return [list(dict.fromkeys(str(row[c]).strip() for c in columns if str(row[c] or "").strip())) for row in rows]
    column = columns[0]
    feature, values = split.features[column], split[column]
    if isinstance(feature, (datasets.Sequence, datasets.List)):
        return _names(feature, values)
    return [[tag for tag in TAG_SEPARATORS.split(str(value or "").strip()) if tag] for value in values]


def tag_targets(splits: datasets.DatasetDict, columns: str | list[str], source: str,
                vocabulary: list[str] | None = None, name: str = "tags") -> datasets.DatasetDict:
    """`splits` with a `name` column (`Sequence(ClassLabel)` over `vocabulary`, the training split's tags when None)
    made from `columns`: one list or delimited-string column, several 0/1 columns (a tag each) or several
    categorical columns (each value a tag)."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    first = splits.get("train") or next(iter(splits.values()))
    flags = len(columns) > 1 and all(c in first.column_names for c in columns) and _flag_columns(first, columns)
    rows = {split_name: _row_tags(split, columns, f"{source} ({split_name})", flags)
            for split_name, split in splits.items()}
    inner = getattr(first.features.get(columns[0]), "feature", None) if len(columns) == 1 else None
    if vocabulary is None and isinstance(inner, datasets.ClassLabel):
        vocabulary = inner.names  # the Hub's own form keeps its vocabulary
    if vocabulary is None:
        train = rows.get("train") or next(iter(rows.values()))
        vocabulary = columns if flags else sorted({tag for row in train for tag in row})
    if len(vocabulary) < 1:
        raise ValueError(f"{source}: no tags in {', '.join(columns)}")
    index = {tag: i for i, tag in enumerate(vocabulary)}
    feature = datasets.Sequence(datasets.ClassLabel(names=list(vocabulary)))
    out = {}
    for split_name, split in splits.items():
        for position, row in enumerate(rows[split_name]):
            unknown = [tag for tag in row if tag not in index]
            if unknown:
                raise ValueError(
                    f"{source}: row {position} of the {split_name} split has tags outside the vocabulary of "
                    f"{len(vocabulary)} tags: {unknown}"
                )
        ids = [[index[tag] for tag in row] for row in rows[split_name]]
        out[split_name] = _replace_columns(split, columns, name, ids, feature)
    return datasets.DatasetDict(out)


def _replace_columns(split: datasets.Dataset, sources: list[str], name: str, values: list, feature) -> datasets.Dataset:
    """`split` with `values` as column `name` in place of the `sources` columns (and of an earlier `name`)."""
    added = split.add_column(f"__{name}", values, feature=feature)
    added = added.remove_columns([c for c in dict.fromkeys((name, *sources)) if c in split.column_names])
    return added.rename_column(f"__{name}", name)


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def regression_targets(splits: datasets.DatasetDict, columns: str | list[str], source: str,
                       name: str = "targets") -> datasets.DatasetDict:
    """`splits` with a `name` column (one float per column of `columns`); rows with a missing or non-numeric
    value are skipped, counted per split and the first one named in the log."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    out = {}
    for split_name, split in splits.items():
        missing = [c for c in columns if c not in split.column_names]
        if missing:
            raise ValueError(f"{source} has no target column {missing[0]!r} (columns: {', '.join(split.column_names)})")
        values = [[_number(row[c]) for c in columns] for row in split.select_columns(columns)]
        bad = [i for i, row in enumerate(values) if None in row]
        if bad:
            logger.warning("%s: %d of %d %s rows have a missing or non-numeric target (%s; the first is row %d): "
                           "skipped", source, len(bad), len(values), split_name, ", ".join(columns), bad[0])
        skipped = set(bad)
        keep = [i for i in range(len(values)) if i not in skipped]
        if not keep:
            raise ValueError(f"{source}: no {split_name} row has a number in every target column ({', '.join(columns)})")
        feature = datasets.Sequence(datasets.Value("float32"))
        out[split_name] = _replace_columns(split.select(keep), columns, name, [values[i] for i in keep], feature)
    return datasets.DatasetDict(out)


__all__ = ["PROBLEM_TYPES", "clip_targets", "infer_problem_type", "regression_targets", "tag_targets"]
