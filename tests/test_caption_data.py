"""Captioning datasets: metadata folders with and without splits, and a MusicCaps folder through the same entry."""

import shutil

import pytest
from test_data_sources import make_ytids, write_musiccaps_csv

from modeling_audiocap.data.captions import load_caption_dataset


def metadata_folder(root, rows: int, with_split: bool):
    root.mkdir(parents=True, exist_ok=True)
    lines = ["file_name,text,tempo" + (",split" if with_split else "")]
    for i in range(rows):
        (root / f"c{i}.wav").write_bytes(b"RIFF")
        split = ("train", "validation", "test")[i % 3]
        lines.append(f"c{i}.wav,caption number {i},fast" + (f",{split}" if with_split else ""))
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_metadata_folder_keeps_its_splits_and_columns(tmp_path):
    splits = load_caption_dataset(str(metadata_folder(tmp_path, 9, True)), caption_column_name="text")
    assert {k: len(v) for k, v in splits.items()} == {"train": 3, "validation": 3, "test": 3}
    assert splits["test"]["caption"][0] == "caption number 2" and splits["test"]["tempo"][0] == "fast"


def test_random_split_is_70_10_20_and_seeded(tmp_path):
    root = metadata_folder(tmp_path, 50, False)
    a = load_caption_dataset(str(root), caption_column_name="text", seed=1)
    b = load_caption_dataset(str(root), caption_column_name="text", seed=1)
    assert {k: len(v) for k, v in a.items()} == {"train": 35, "validation": 5, "test": 10}
    assert a["test"]["file_name"] == b["test"]["file_name"]
    assert not set(a["train"]["file_name"]) & set(a["test"]["file_name"])


def test_musiccaps_folder_loads_through_the_same_entry(tmp_path):
    ytids = make_ytids(20)
    write_musiccaps_csv(tmp_path / "musiccaps-public.csv", ytids)
    for ytid in ytids:
        (tmp_path / f"{ytid}.wav").write_bytes(b"RIFF")
    random = load_caption_dataset(str(tmp_path), split_protocol="random", seed=0)
    assert sum(len(v) for v in random.values()) == 20 and "ytid" in random["train"].column_names
    official = load_caption_dataset(str(tmp_path), split_protocol="official", seed=0)
    assert sum(len(v) for v in official.values()) == 20
    shutil.move(tmp_path / "musiccaps-public.csv", tmp_path / "elsewhere.csv")
    with pytest.raises(ValueError, match="official"):
        load_caption_dataset(str(tmp_path), split_protocol="official")
