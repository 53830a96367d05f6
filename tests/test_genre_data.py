"""Genre datasets: folder layouts, split protocols, bad files skipped and named, window rows cover clips."""

import wave

import datasets
import numpy as np
import pytest
import torch
from torchaudio.datasets import gtzan
from transformers import Wav2Vec2FeatureExtractor

from modeling_audiocap import AudioCapFeatureExtractor
from modeling_audiocap.data.genre import load_genre_dataset
from modeling_audiocap.training.arguments import AudioDataArguments
from modeling_audiocap.training.genre_data import clip_level, decode_dataset, embed_windows, window_dataset


def write_wav(path, seconds=0.05, rate=8000, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def gtzan_folder(tmp_path_factory):
    """The original GTZAN layout, genres/<genre>/<genre>.000NN.wav, with tiny clips."""
    root = tmp_path_factory.mktemp("gtzan") / "genres"
    for genre in gtzan.GTZAN_GENRES if hasattr(gtzan, "GTZAN_GENRES") else sorted({n.split(".")[0] for n in gtzan.filtered_train}):
        for i in range(100):
            write_wav(root / genre / f"{genre}.{i:05d}.wav", seconds=0.01)
    return root


def test_gtzan_filtered_split_has_443_197_290(gtzan_folder):
    splits = load_genre_dataset(str(gtzan_folder), split_protocol="filtered")
    assert {k: len(v) for k, v in splits.items()} == {"train": 443, "validation": 197, "test": 290}
    assert len(splits["train"].features["label"].names) == 10


def test_random_split_is_disjoint_stratified_and_reproducible(gtzan_folder):
    a = load_genre_dataset(str(gtzan_folder), split_protocol="random", seed=3)
    b = load_genre_dataset(str(gtzan_folder), split_protocol="random", seed=3)
    c = load_genre_dataset(str(gtzan_folder), split_protocol="random", seed=4)
    files = {k: set(v["file_name"]) for k, v in a.items()}
    assert files == {k: set(v["file_name"]) for k, v in b.items()}
    assert files["test"] != set(c["test"]["file_name"])
    assert not (files["train"] & files["test"]) and not (files["train"] & files["validation"])
    assert not (files["validation"] & files["test"])
    assert sum(len(v) for v in files.values()) == 1000
    assert len(files["test"]) == 200
    test_labels = np.bincount(a["test"]["label"])
    assert (test_labels == 20).all()  # stratified: 20 of each genre


def test_metadata_folder_with_predefined_split(tmp_path):
    rows = ["file_name,style,split"]
    for i, (style, split) in enumerate([("a", "train"), ("b", "train"), ("a", "validation"), ("b", "test")]):
        write_wav(tmp_path / f"clip{i}.wav")
        rows.append(f"clip{i}.wav,{style},{split}")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    splits = load_genre_dataset(str(tmp_path), label_column_name="style")
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "validation": 1, "test": 1}
    assert splits["test"].features["label"].names == ["a", "b"]
    with pytest.raises(ValueError, match="genre"):
        load_genre_dataset(str(tmp_path), label_column_name="genre")


def audio_dataset(paths, labels) -> datasets.Dataset:
    ds = datasets.Dataset.from_dict({"audio": [str(p) for p in paths], "label": labels})
    return ds.cast_column("audio", datasets.Audio(decode=False))


def test_bad_files_are_skipped_counted_and_named(tmp_path, caplog):
    write_wav(tmp_path / "rock" / "good.wav", seconds=0.5)
    write_wav(tmp_path / "jazz" / "fine.wav", seconds=0.5)
    (tmp_path / "jazz" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (tmp_path / "rock" / "empty.wav").write_bytes(b"")
    names = ["rock/good.wav", "jazz/broken.wav", "jazz/fine.wav", "rock/empty.wav"]
    whole = audio_dataset([tmp_path / n for n in names], [0, 1, 1, 0])
    decoded, skipped = decode_dataset(whole, 16000)
    assert len(decoded) == 2
    assert sorted(s["file"].rsplit("/", 1)[-1] for s in skipped) == ["broken.wav", "empty.wav"]
    assert all(s["error"] for s in skipped)
    assert "skipped 2 of 4" in caplog.text


def test_windows_cover_each_clip_and_clip_logits_are_window_means(tmp_path):
    write_wav(tmp_path / "x" / "long.wav", seconds=1.0, rate=16000)
    write_wav(tmp_path / "y" / "short.wav", seconds=0.2, rate=16000)
    whole = audio_dataset([tmp_path / "x" / "long.wav", tmp_path / "y" / "short.wav"], [0, 1])
    decoded, _ = decode_dataset(whole, 16000)
    rows = window_dataset(decoded, AudioCapFeatureExtractor(Wav2Vec2FeatureExtractor(sampling_rate=16000), window_seconds=0.25))
    per_clip = np.bincount(rows["clip_index"])
    lengths = {c: len(w) for c, w in zip(decoded["clip_index"], decoded["waveform"])}
    for clip, count in enumerate(per_clip):
        assert count == max(1, -(-lengths[clip] // 4000))
    assert all(len(x) == min(4000, lengths[c]) for x, c in zip(rows["input_values"], rows["clip_index"]))
    logits = np.arange(len(rows) * 2, dtype=np.float64).reshape(-1, 2)
    clip_logits, clip_labels, clips = clip_level(logits, np.asarray(rows["label"]), np.asarray(rows["clip_index"]))
    for k, clip in enumerate(clips):
        np.testing.assert_allclose(clip_logits[k], logits[np.asarray(rows["clip_index"]) == clip].mean(0))


def test_window_overlap_cuts_music2vec_style_half_overlapping_windows(tmp_path):
    args = AudioDataArguments(max_length_seconds=0.25, window_overlap=0.5)
    processor = AudioCapFeatureExtractor(Wav2Vec2FeatureExtractor(sampling_rate=16000), window_seconds=args.max_length_seconds,
                                  hop_seconds=args.hop_seconds)
    window, hop = processor.window_samples, processor.hop_samples
    assert (window, hop) == (4000, 2000)
    write_wav(tmp_path / "x" / "long.wav", seconds=1.0, rate=16000)
    decoded, _ = decode_dataset(audio_dataset([tmp_path / "x" / "long.wav"], [0]), 16000)
    rows = window_dataset(decoded, processor)
    assert len(rows) == 7  # starts 0, 2000, ..., 12000 over 16000 samples
    wave = np.asarray(decoded[0]["waveform"])
    for k, x in enumerate(rows["input_values"]):
        np.testing.assert_array_equal(x, wave[k * hop : k * hop + window])
    with pytest.raises(ValueError, match="window_overlap"):
        AudioDataArguments(window_overlap=1.0)


def test_decoded_audio_is_cached_on_disk_and_refreshed_when_a_file_changes(tmp_path):
    write_wav(tmp_path / "a.wav", seconds=0.3)
    write_wav(tmp_path / "b.wav", seconds=0.2)
    ds = audio_dataset([tmp_path / "a.wav", tmp_path / "b.wav"], [0, 1])
    first, _ = decode_dataset(ds, 16000, cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("decoded-*.arrow"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again, _ = decode_dataset(audio_dataset([tmp_path / "a.wav", tmp_path / "b.wav"], [0, 1]), 16000, cache_dir=tmp_path / "cache")
    assert cached[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again[0]["waveform"], first[0]["waveform"])
    write_wav(tmp_path / "b.wav", seconds=0.4, freq=880.0)  # the file changes: decoded again
    changed, _ = decode_dataset(audio_dataset([tmp_path / "a.wav", tmp_path / "b.wav"], [0, 1]), 16000, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("decoded-*.arrow"))) == 2
    assert len(changed[1]["waveform"]) == 6400


def test_cached_embeddings_of_a_window_do_not_depend_on_its_batch(tmp_path):
    """Frozen mode's cache: a short clip's window batched with full windows gets what it gets alone, also through a
    group-norm feature encoder (wav2vec2-base style), which normalises over any padding."""
    from conftest import tiny_encoder_config

    from modeling_audiocap import AudioEncoderForGenreClassification, AudioGenreConfig, mean_pool, resolve_encoder
    from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor

    write_wav(tmp_path / "x" / "long.wav", seconds=1.0, rate=16000)
    write_wav(tmp_path / "y" / "short.wav", seconds=0.3, rate=16000, freq=330.0)
    decoded, _ = decode_dataset(audio_dataset([tmp_path / "x" / "long.wav", tmp_path / "y" / "short.wav"], [0, 1]),
                                16000)
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2"))
    windows = window_dataset(decoded, AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5))
    assert resolved.config.feat_extract_norm == "group"
    model = AudioEncoderForGenreClassification(
        AudioGenreConfig(encoder=resolved.config, num_labels=2, sampling_rate=16000)
    ).eval()
    processor = AudioCapFeatureExtractor(resolved.feature_extractor)
    cached = embed_windows(windows, model, lambda w: dict(processor.featurize(w)), tmp_path / "cache", "tiny", 8)
    assert len(cached) == 3  # two windows of the long clip, one short window
    for row, window in zip(cached, windows["input_values"]):
        features = processor.featurize([window])
        with torch.no_grad():
            alone = mean_pool(*model.layer_hidden_states(features["input_values"], features.get("attention_mask")))
        np.testing.assert_allclose(row["layer_embeddings"], alone[0].numpy(), rtol=1e-4, atol=1e-5)


def test_epoch_crops_depend_only_on_seed_epoch_and_clip():
    """A resumed run crops as an uninterrupted one: the window depends on (seed, epoch, clip), not on call order."""
    from types import SimpleNamespace

    from modeling_audiocap.training.crops import EpochCrops

    wave = torch.arange(10_000, dtype=torch.float32)
    processor = AudioCapFeatureExtractor(Wav2Vec2FeatureExtractor(sampling_rate=16000), window_seconds=1000 / 16000)
    crops = EpochCrops(processor, seed=5)
    first = [crops.crop(wave, clip)[0].item() for clip in range(6)]
    assert [crops.crop(wave, clip)[0].item() for clip in reversed(range(6))] == first[::-1]
    crops.on_epoch_begin(None, SimpleNamespace(epoch=1.5), None)  # resumed half-way through epoch 1
    second = [crops.crop(wave, clip)[0].item() for clip in range(6)]
    fresh = EpochCrops(processor, seed=5)
    fresh.on_epoch_begin(None, SimpleNamespace(epoch=1.0), None)
    assert [fresh.crop(wave, clip)[0].item() for clip in range(6)] == second != first
    assert crops.crop(wave, 0).shape == (1000,)
    assert crops.crop(wave[:300], 0).shape == (300,)  # a short clip is itself, as in evaluation (the extractor pads it)
