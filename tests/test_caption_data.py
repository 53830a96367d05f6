"""Captioning datasets: metadata folders with and without splits, and a MusicCaps folder through the same entry."""

import shutil

import pytest

from conftest import make_ytids, write_musiccaps_csv

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


def test_several_caption_columns_give_every_clip_its_captions(tmp_path):
    """Clotho-style caption_1..caption_3: `caption` is the first, `captions` all non-empty ones; a missing column is
    named."""
    lines = ["file_name,caption_1,caption_2,caption_3,split"]
    for i in range(6):
        (tmp_path / f"c{i}.wav").write_bytes(b"RIFF")
        third = "" if i == 0 else f"third {i}"
        lines.append(f"c{i}.wav,first {i},second {i},{third},{('train', 'validation', 'test')[i % 3]}")
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n")
    splits = load_caption_dataset(str(tmp_path), caption_column_name="caption_1, caption_2,caption_3")
    train = splits["train"]
    assert train["caption"] == ["first 0", "first 3"]
    assert train["captions"] == [["first 0", "second 0"], ["first 3", "second 3", "third 3"]]
    single = load_caption_dataset(str(tmp_path), caption_column_name="caption_2")
    assert single["test"]["captions"] == [["second 2"], ["second 5"]]
    with pytest.raises(ValueError, match="caption_9"):
        load_caption_dataset(str(tmp_path), caption_column_name="caption_1,caption_9")


def test_training_draws_a_caption_per_clip_and_epoch():
    """The caption collator trains on one of a clip's captions, drawn from (seed, epoch, clip) so a resumed run draws
    the same; evaluation always reads the first."""
    from types import SimpleNamespace

    import numpy as np

    from modeling_audiocap.processing_audiocap import AudioCapProcessor
    from modeling_audiocap.training.collators import CaptionCollator
    from modeling_audiocap.training.crops import EpochCrops
    from modeling_audiocap.training.text import train_caption_tokenizer
    from transformers import Wav2Vec2FeatureExtractor

    captions = [f"caption {k} of clip {c}" for c in range(4) for k in range(5)]
    processor = AudioCapProcessor(feature_extractor=Wav2Vec2FeatureExtractor(), window_seconds=0.1,
                                  tokenizer=train_caption_tokenizer(captions, vocab_size=300))
    rows = [{"waveform": np.zeros(3200, dtype=np.float32), "clip_index": c, "caption": captions[5 * c],
             "captions": captions[5 * c: 5 * c + 5]} for c in range(4)]

    def drawn(collator) -> list[str]:
        labels = collator(rows)["labels"]
        labels = labels.masked_fill(labels < 0, processor.tokenizer.pad_token_id)
        return processor.tokenizer.batch_decode(labels, skip_special_tokens=True)

    crops = EpochCrops(processor.audio, seed=3)
    collator = CaptionCollator(processor, crops, max_tokens=32)
    per_epoch = []
    for epoch in range(6):
        crops.on_epoch_begin(None, SimpleNamespace(epoch=float(epoch)), None)
        per_epoch.append(drawn(collator))
    assert all(text in rows[c]["captions"] for texts in per_epoch for c, text in enumerate(texts))
    assert len({texts[0] for texts in per_epoch}) > 1  # another caption in another epoch
    resumed = EpochCrops(processor.audio, seed=3)
    resumed.on_epoch_begin(None, SimpleNamespace(epoch=4.5), None)
    assert drawn(CaptionCollator(processor, resumed, max_tokens=32)) == per_epoch[4]
    assert drawn(collator.for_evaluation()) == [r["caption"] for r in rows]
