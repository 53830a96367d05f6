"""FMA (Free Music Archive, Defferrard et al. 2017) as a genre `DatasetDict` with its official split.

Layout of the two archives once unzipped (https://github.com/mdeff/fma)::

    <root>/fma_metadata/tracks.csv        per-track metadata, one row per track id
    <root>/fma_small/000/000002.mp3       audio: the track id zero-padded to 6 digits, folder = its first 3 digits
    <root>/fma_medium/..., fma_large/..., fma_full/...

`tracks.csv` has a two-level column header written by pandas (`DataFrame.to_csv` of a frame with MultiIndex
columns and an index named `track_id`), so its first three lines are::

    ,album,album,...,set,set,track,track,...          level 0 (album / artist / set / track)
    ,comments,date_created,...,split,subset,bit_rate,...   level 1
    track_id,,,,...                                     the index name
    2,0,2008-11-26 01:44:45,...                         data

The columns used here are `('set', 'subset')` (small / medium / large; the subsets are nested: medium holds the
small tracks too), `('set', 'split')` (training / validation / test, artist-aware, made by the FMA authors) and
`('track', 'genre_top')` (the root genre; fma_small has 8 balanced ones). The official loader reads it with
`pd.read_csv(path, index_col=0, header=[0, 1])`; this module streams it with the `csv` module instead and keeps only
those columns (the file is ~250 MB, mostly free text).
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from pathlib import Path

import datasets

logger = logging.getLogger(__name__)

SUBSETS = ("small", "medium", "large", "full")
# Official split names in tracks.csv -> ours.
SPLIT_NAMES = {"training": "train", "validation": "validation", "test": "test"}
SUBSET_COLUMN = ("set", "subset")
SPLIT_COLUMN = ("set", "split")
GENRE_COLUMN = ("track", "genre_top")
INDEX_NAME = "track_id"


def fma_audio_path(audio_dir: str | os.PathLike, track_id: int) -> Path:
    """`<audio_dir>/<first 3 digits>/<6 digits>.mp3`, as FMA's `utils.get_audio_path`."""
    name = f"{int(track_id):06d}"
    return Path(audio_dir) / name[:3] / f"{name}.mp3"


def _in_subset(track_subset: str, subset: str) -> bool:
    """Subsets are nested (small < medium < large); `full` holds every track, as `large` does (untrimmed audio)."""
    order = {"small": 0, "medium": 1, "large": 2}
    if track_subset not in order:
        return False
    return order[track_subset] <= order.get(subset, 2)


def read_fma_tracks(tracks_csv: str | os.PathLike) -> list[dict]:
    """Rows `{"track_id", "subset", "split", "genre_top"}` of FMA's `tracks.csv` (the 3-line header above)."""
    path = Path(tracks_csv)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # artist bios and album notes are long free text
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            level0, level1, index_row = next(reader), next(reader), next(reader)
        except StopIteration:
            raise ValueError(f"{path}: expected FMA's 3-line header (level 0, level 1, 'track_id'); file too short")
        columns = list(zip(level0, level1))
        missing = [c for c in (SUBSET_COLUMN, SPLIT_COLUMN, GENRE_COLUMN) if c not in columns]
        if missing or not index_row or index_row[0] != INDEX_NAME:
            raise ValueError(
                f"{path} does not look like FMA's tracks.csv: expected a two-level header with columns "
                f"{SUBSET_COLUMN}, {SPLIT_COLUMN}, {GENRE_COLUMN} and a third line starting with {INDEX_NAME!r}; "
                f"missing {missing}, third line starts with {index_row[:1]}"
            )
        i_subset, i_split, i_genre = (columns.index(c) for c in (SUBSET_COLUMN, SPLIT_COLUMN, GENRE_COLUMN))
        rows = []
        for record in reader:
            if not record or not record[0].strip():
                continue
            rows.append({
                "track_id": int(record[0]),
                "subset": record[i_subset],
                "split": record[i_split],
                "genre_top": record[i_genre],
            })
    return rows


def load_fma(
    metadata_dir: str | os.PathLike,
    audio_dir: str | os.PathLike,
    subset: str = "small",
) -> datasets.DatasetDict:
    """FMA's official training / validation / test split of `subset` as `train` / `validation` / `test`.

    Args:
        metadata_dir: the folder holding `tracks.csv` (`fma_metadata`).
        audio_dir: the subset's audio folder (`fma_small`, ...), laid out as `<000>/<000002>.mp3`.
        subset: small | medium | large | full. The subsets are nested: `medium` includes the small tracks.

    Columns: `audio` (`datasets.Audio(decode=False)`: file paths), `label` (ClassLabel over the subset's
    `genre_top` values, sorted; computed from the metadata, so it does not depend on which files are present),
    `track_id` (int) and `file_name` (path relative to `audio_dir`). Tracks without a `genre_top` (only in
    large / full) are left out; tracks whose audio file is missing are skipped and counted in the log.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    metadata_dir, audio_dir = Path(metadata_dir).absolute(), Path(audio_dir).absolute()
    tracks_csv = metadata_dir / "tracks.csv"
    if not tracks_csv.is_file():
        raise FileNotFoundError(f"{tracks_csv} not found: unzip fma_metadata.zip into {metadata_dir.parent}")
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"FMA audio folder {audio_dir} not found: unzip fma_{subset}.zip there")
    rows = [r for r in read_fma_tracks(tracks_csv) if _in_subset(r["subset"], subset)]
    no_genre = [r for r in rows if not r["genre_top"]]
    rows = [r for r in rows if r["genre_top"]]
    if not rows:
        raise ValueError(f"{tracks_csv}: no tracks with a genre_top in subset {subset!r}")
    if no_genre:
        logger.info("FMA %s: %d tracks have no genre_top and are left out", subset, len(no_genre))
    bad_split = sorted({r["split"] for r in rows} - set(SPLIT_NAMES))
    if bad_split:
        raise ValueError(f"{tracks_csv}: unknown ('set', 'split') values {bad_split}; expected {list(SPLIT_NAMES)}")
    names = sorted({r["genre_top"] for r in rows})
    features = datasets.Features({
        "audio": datasets.Audio(decode=False),
        "label": datasets.ClassLabel(names=names),
        "track_id": datasets.Value("int64"),
        "file_name": datasets.Value("string"),
    })
    out, missing = {}, {}
    for official, split in SPLIT_NAMES.items():
        columns = {key: [] for key in features}
        missing[split] = 0
        for r in (r for r in rows if r["split"] == official):
            path = fma_audio_path(audio_dir, r["track_id"])
            if not path.is_file():
                missing[split] += 1
                continue
            columns["audio"].append(str(path))
            columns["label"].append(names.index(r["genre_top"]))
            columns["track_id"].append(r["track_id"])
            columns["file_name"].append(str(path.relative_to(audio_dir)))
        out[split] = datasets.Dataset.from_dict(columns, features=features)
    total_missing = sum(missing.values())
    if total_missing:
        logger.warning(
            "FMA %s: skipped %d of %d tracks whose audio file is missing under %s (%s)",
            subset, total_missing, len(rows), audio_dir, ", ".join(f"{k} {v}" for k, v in missing.items()),
        )
    logger.info("FMA %s: %s, %d genres", subset, {k: len(v) for k, v in out.items()}, len(names))
    return datasets.DatasetDict(out)


def find_fma_root(path: str | os.PathLike) -> Path | None:
    """`path` if it is an FMA root (it holds `fma_metadata/tracks.csv`), else None."""
    root = Path(path)
    return root if (root / "fma_metadata" / "tracks.csv").is_file() else None


def load_fma_root(root: str | os.PathLike, subset: str | None = None) -> datasets.DatasetDict:
    """`load_fma(<root>/fma_metadata, <root>/fma_<subset>, subset)`; with no subset, the smallest one present."""
    root = Path(root).absolute()
    if subset is None:
        present = [s for s in SUBSETS if (root / f"fma_{s}").is_dir()]
        if not present:
            raise FileNotFoundError(f"{root} has fma_metadata/ but no audio folder fma_{{{','.join(SUBSETS)}}}/")
        subset = present[0]
    return load_fma(root / "fma_metadata", root / f"fma_{subset}", subset)


__all__ = ["fma_audio_path", "find_fma_root", "load_fma", "load_fma_root", "read_fma_tracks"]
