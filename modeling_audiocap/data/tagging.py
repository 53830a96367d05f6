"""The two music auto-tagging benchmarks' own layouts, read from a local copy as tag `DatasetDict`s with their
standard splits: MagnaTagATune (MTT) and MTG-Jamendo.

MagnaTagATune (Law et al. 2009)::

    <root>/annotations_final.csv      tab-separated: clip_id, one 0/1 column per tag (188), mp3_path
    <root>/<d>/<name>.mp3             audio (or under <root>/mp3/): <d> is one of the 16 folders 0-9, a-f

The top-50 tags are the 50 most frequent over all clips; the standard split is by folder: 0-b train (12), c
validation (1), d-f test (3).

MTG-Jamendo (Bogdanov et al. 2019), as its repository lays it out::

    <root>/data/autotagging_top50tags.tsv                              TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS...
    <root>/data/splits/split-0/autotagging_top50tags-{train,validation,test}.tsv   the official splits (0-4)
    <audio_dir>/<PATH>                                                   e.g. 14/214.mp3

Each row's tags follow the five fixed columns, tab-separated (`genre---rock`, `instrument---piano`, ...); the
subsets are `top50tags`, `genre`, `instrument` and `moodtheme`.

`load_tagging_root` recognises either copy by its layout (the one dataset resolver uses it). Columns of both: `audio` (`datasets.Audio(decode=False)`: file paths), `tags` (`Sequence(ClassLabel)`: the tag
vocabulary, from the annotations, so it does not depend on which files are present), an id and `file_name`. Clips
whose audio file is missing are skipped and counted in the log; a tag outside the vocabulary is refused, naming it.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections import Counter
from pathlib import Path

import datasets

logger = logging.getLogger(__name__)

MTT_ANNOTATIONS = "annotations_final.csv"
MTT_SPLITS = {"train": "0123456789ab", "validation": "c", "test": "def"}
JAMENDO_SUBSETS = ("top50tags", "genre", "instrument", "moodtheme")
JAMENDO_SPLITS = ("train", "validation", "test")


def _features(tags: list[str], id_column: str, id_type: str) -> datasets.Features:
    return datasets.Features({
        "audio": datasets.Audio(decode=False),
        "tags": datasets.Sequence(datasets.ClassLabel(names=tags)),
        id_column: datasets.Value(id_type),
        "file_name": datasets.Value("string"),
    })


def _splits(rows: dict[str, list[dict]], features: datasets.Features, audio_dir: Path, what: str) -> datasets.DatasetDict:
    """`rows` per split -> a DatasetDict; rows whose audio file is missing are skipped and counted."""
    out, missing = {}, {}
    for split, split_rows in rows.items():
        present = [r for r in split_rows if (audio_dir / r["file_name"]).is_file()]
        missing[split] = len(split_rows) - len(present)
        columns = {name: [r[name] for r in present] for name in features if name != "audio"}
        columns["audio"] = [str(audio_dir / r["file_name"]) for r in present]
        out[split] = datasets.Dataset.from_dict(columns, features=features)
    if any(missing.values()):
        logger.warning("%s: skipped clips whose audio file is missing under %s (%s)", what, audio_dir,
                       ", ".join(f"{k} {v}" for k, v in missing.items()))
    logger.info("%s: %s", what, {k: len(v) for k, v in out.items()})
    return datasets.DatasetDict(out)


def _audio_dir(root: Path, candidates: tuple[str, ...]) -> Path:
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    return root


def load_mtt(root: str | os.PathLike, top_k: int = 50, audio_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """MagnaTagATune's `top_k` most frequent tags with the standard 12 / 1 / 3 folder split (see the module doc)."""
    root = Path(root).absolute()
    annotations = root / MTT_ANNOTATIONS
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} not found: MagnaTagATune's annotations_final.csv goes in {root}")
    with open(annotations, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        if header[0] != "clip_id" or header[-1] != "mp3_path":
            raise ValueError(f"{annotations}: expected clip_id, the tags and mp3_path as columns, got {header[:2]}...")
        records = [row for row in reader if row]
    tag_names = header[1:-1]
    counts = Counter()
    for row in records:
        counts.update(name for name, value in zip(tag_names, row[1:-1]) if value == "1")
    top = sorted(counts, key=lambda name: (-counts[name], tag_names.index(name)))[:top_k]
    vocabulary = sorted(top)
    rows: dict[str, list[dict]] = {split: [] for split in MTT_SPLITS}
    for row in records:
        path = row[-1]
        split = next((s for s, folders in MTT_SPLITS.items() if path[:1] in folders and path[1:2] == "/"), None)
        if split is None:
            raise ValueError(f"{annotations}: clip {row[0]} has mp3_path {path!r}, not in a folder 0-9 or a-f")
        tags = [vocabulary.index(name) for name, value in zip(tag_names, row[1:-1]) if value == "1" and name in top]
        rows[split].append({"tags": tags, "clip_id": int(row[0]), "file_name": path})
    audio = Path(audio_dir) if audio_dir else _audio_dir(root, ("mp3",))
    return _splits(rows, _features(vocabulary, "clip_id", "int64"), audio, f"MagnaTagATune top-{top_k}")


def _read_jamendo_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if not lines or lines[0][:5] != ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION"]:
        raise ValueError(f"{path}: expected the columns TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS")
    return [{"track_id": parts[0], "file_name": parts[3], "tag_names": parts[5:]} for parts in lines[1:]]


def load_jamendo(root: str | os.PathLike, subset: str = "top50tags", split_index: int = 0,
                 audio_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """MTG-Jamendo's `subset` with its official split `split_index` (see the module doc)."""
    if subset not in JAMENDO_SUBSETS:
        raise ValueError(f"subset must be one of {JAMENDO_SUBSETS}, got {subset!r}")
    root = Path(root).absolute()
    name = f"autotagging_{subset}"
    annotations = root / "data" / f"{name}.tsv"
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} not found: clone MTG-Jamendo's repository into {root}")
    vocabulary = sorted({tag for row in _read_jamendo_tsv(annotations) for tag in row["tag_names"]})
    rows: dict[str, list[dict]] = {}
    for split in JAMENDO_SPLITS:
        split_file = root / "data" / "splits" / f"split-{split_index}" / f"{name}-{split}.tsv"
        if not split_file.is_file():
            raise FileNotFoundError(f"{split_file} not found (MTG-Jamendo's official splits are split-0 to split-4)")
        rows[split] = []
        for row in _read_jamendo_tsv(split_file):
            unknown = sorted(set(row["tag_names"]) - set(vocabulary))
            if unknown:
                raise ValueError(f"{split_file}: track {row['track_id']} has tags outside {annotations.name}: {unknown}")
            rows[split].append({"tags": [vocabulary.index(t) for t in row["tag_names"]], "track_id": row["track_id"],
                                "file_name": row["file_name"]})
    audio = Path(audio_dir) if audio_dir else _audio_dir(root, ("audio", "mp3"))
    return _splits(rows, _features(vocabulary, "track_id", "string"), audio, f"MTG-Jamendo {subset} split-{split_index}")


def load_tagging_root(root: str | os.PathLike, config_name: str | None = None) -> datasets.DatasetDict | None:
    """The tag splits of a local MagnaTagATune copy (`config_name`: `top50`, or `top<k>`) or MTG-Jamendo clone
    (`config_name`: a subset, optionally with an official split: `moodtheme`, `top50tags-split-3`); None when `root`
    is neither."""
    root = Path(root)
    if (root / MTT_ANNOTATIONS).is_file():
        match = re.fullmatch(r"top(\d+)", config_name or "top50")
        if match is None:
            raise ValueError(f"{root} is MagnaTagATune: its configs are top<k> (top50 by default), got {config_name!r}")
        return load_mtt(root, int(match.group(1)))
    if any((root / "data").glob("autotagging_*.tsv")):
        match = re.fullmatch(r"(\w+?)(?:-split-(\d+))?", config_name or "top50tags")
        if match is None:
            raise ValueError(f"{root} is MTG-Jamendo: its configs are a subset ({', '.join(JAMENDO_SUBSETS)}), "
                             f"optionally with -split-<k>, got {config_name!r}")
        return load_jamendo(root, match.group(1), int(match.group(2) or 0))
    return None


__all__ = ["load_jamendo", "load_mtt", "load_tagging_root"]
