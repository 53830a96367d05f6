"""Targets beyond one label per clip, from the forms datasets hold them in, as one column a tagger or regressor
trains on.

- Tags -> `tags` (`Sequence(ClassLabel)`, the Hub's own form): from a list column (class ids with names, or
  strings), from one 0/1 column per tag, or from a delimited string (`"rock|guitar"`, as a `metadata.csv` column
  holds them). The vocabulary is the training split's tags (or a given one); a tag outside it in another split is
  refused, naming the split, the row and the tag: never silently dropped.
- Numbers -> `targets` (`Sequence(float32)`, one value per target column). A row with a missing value (None, NaN,
  empty text) or text that is no number is skipped and counted per split, with the first such row named.
"""

from __future__ import annotations

import logging
import math
import re

import datasets

logger = logging.getLogger(__name__)

TAG_SEPARATORS = re.compile(r"\s*[|;,]\s*")


def _names(feature, values: list) -> list[list[str]]:
    """Each row's tags as names, from a list column of class ids (with their names) or of strings."""
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        return [[inner.names[i] for i in row or []] for row in values]
    return [[str(tag).strip() for tag in row or [] if str(tag).strip()] for row in values]


def _row_tags(split: datasets.Dataset, columns: list[str], source: str) -> list[list[str]]:
    """Each row's tags as names, from whichever form `columns` hold."""
    missing = [c for c in columns if c not in split.column_names]
    if missing:
        raise ValueError(f"{source} has no column {missing[0]!r} (columns: {', '.join(split.column_names)})")
    if len(columns) > 1:  # one 0/1 column per tag
        return [[c for c in columns if row[c] in (1, True, "1", "true", "True")] for row in split.select_columns(columns)]
    column = columns[0]
    feature, values = split.features[column], split[column]
    if isinstance(feature, (datasets.Sequence, datasets.List)):
        return _names(feature, values)
    return [[tag for tag in TAG_SEPARATORS.split(str(value or "").strip()) if tag] for value in values]


def tag_targets(splits: datasets.DatasetDict, columns: str | list[str], source: str,
                vocabulary: list[str] | None = None) -> datasets.DatasetDict:
    """`splits` with a `tags` column (`Sequence(ClassLabel)` over `vocabulary`, the training split's tags when None)
    made from `columns`: one list or delimited-string column, or several 0/1 columns (a name each)."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    rows = {name: _row_tags(split, columns, f"{source} ({name})") for name, split in splits.items()}
    if vocabulary is None:
        train = rows.get("train") or next(iter(rows.values()))
        vocabulary = columns if len(columns) > 1 else sorted({tag for row in train for tag in row})
    if len(vocabulary) < 1:
        raise ValueError(f"{source}: no tags in {', '.join(columns)}")
    index = {tag: i for i, tag in enumerate(vocabulary)}
    feature = datasets.Sequence(datasets.ClassLabel(names=list(vocabulary)))
    out = {}
    for name, split in splits.items():
        for position, row in enumerate(rows[name]):
            unknown = [tag for tag in row if tag not in index]
            if unknown:
                raise ValueError(
                    f"{source}: row {position} of the {name} split has tags outside the vocabulary of "
                    f"{len(vocabulary)} tags: {unknown}"
                )
        ids = [[index[tag] for tag in row] for row in rows[name]]
        out[name] = _replace_columns(split, columns, "tags", ids, feature)
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


def regression_targets(splits: datasets.DatasetDict, columns: str | list[str], source: str) -> datasets.DatasetDict:
    """`splits` with a `targets` column (one float per column of `columns`); rows with a missing or non-numeric
    value are skipped, counted per split and the first one named in the log."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    out = {}
    for name, split in splits.items():
        missing = [c for c in columns if c not in split.column_names]
        if missing:
            raise ValueError(f"{source} has no target column {missing[0]!r} (columns: {', '.join(split.column_names)})")
        values = [[_number(row[c]) for c in columns] for row in split.select_columns(columns)]
        bad = [i for i, row in enumerate(values) if None in row]
        if bad:
            logger.warning("%s: %d of %d %s rows have a missing or non-numeric target (%s; the first is row %d): "
                           "skipped", source, len(bad), len(values), name, ", ".join(columns), bad[0])
        skipped = set(bad)
        keep = [i for i in range(len(values)) if i not in skipped]
        if not keep:
            raise ValueError(f"{source}: no {name} row has a number in every target column ({', '.join(columns)})")
        feature = datasets.Sequence(datasets.Value("float32"))
        out[name] = _replace_columns(split.select(keep), columns, "targets", [values[i] for i in keep], feature)
    return datasets.DatasetDict(out)


__all__ = ["regression_targets", "tag_targets"]
