"""The training scripts on the shapes real data has: validation and test splits of different sizes, a training split
that leaves one clip in its last batch, broken files that empty a split, and a run killed after a checkpoint."""

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_script
from safetensors.numpy import load_file

pytestmark = pytest.mark.slow  # whole training runs (in this process: the imports are paid once)

GENRES = ("low", "mid", "high")


def write_folder(root: Path, sizes: dict[str, int], broken: dict[str, int] | None = None) -> Path:
    """A `metadata.csv` folder: stereo 22.05 kHz WAV tones of 0.7-2.3 s (one pitch per genre) in the given split
    sizes, plus `broken` unreadable files per split."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows, rate = [], 22050
    for split, count in sizes.items():
        for i in range(count):
            genre = GENRES[i % len(GENRES)]
            seconds = 0.7 + 1.6 * rng.random()
            t = np.arange(int(seconds * rate)) / rate
            tone = 0.4 * np.sin(2 * np.pi * 200 * 2 ** GENRES.index(genre) * t)
            wave = np.stack([tone, 0.8 * tone], axis=1) + 0.01 * rng.standard_normal((t.size, 2))
            name = f"{split}-{i:02d}.wav"
            sf.write(root / name, wave.astype(np.float32), rate)
            rows.append({"file_name": name, "genre": genre, "split": split, "caption": f"a {genre} tone"})
        for i in range((broken or {}).get(split, 0)):
            name = f"{split}-broken-{i}.wav"
            (root / name).write_bytes(rng.bytes(3000))
            rows.append({"file_name": name, "genre": GENRES[i % len(GENRES)], "split": split, "caption": "broken"})
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["file_name", "genre", "split", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Each run's relative defaults (`runs/cache/...`) land in the test's own folder."""
    monkeypatch.chdir(tmp_path)


def train_genre(monkeypatch, cwd: Path, encoder: Path, data: Path, out: Path, mode: str, *extra: str) -> None:
    run_script(
        monkeypatch, "train_genre", "--encoder_name_or_path", str(encoder), "--encoder_mode", mode,
        "--dataset_name", str(data), "--label_column_name", "genre", "--max_length_seconds", "1.0",
        "--embedding_cache_dir", str(cwd / "cache"), "--head_hidden_size", "16", "--output_dir", str(out),
        "--num_train_epochs", "2", "--learning_rate", "1e-3", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "4", "--report_to", "none", "--seed", "3", *extra,
    )


@pytest.mark.parametrize("mode", ["frozen", "unfrozen"])
def test_unequal_splits_a_one_clip_last_batch_and_broken_files(tmp_path, encoder_dir, mode, monkeypatch):
    """13 training clips at batch size 4 (a last batch of one), 3 validation and 7 test clips, each of which also
    loses a broken file: the run finishes, scores every clip once, and lists the skipped files."""
    data = write_folder(tmp_path / "data", {"train": 13, "validation": 3, "test": 7}, {"validation": 1, "test": 2})
    out = tmp_path / "run"
    train_genre(monkeypatch, tmp_path, encoder_dir, data, out, mode, "--eval_strategy", "epoch", "--save_strategy",
                "epoch", "--load_best_model_at_end", "true", "--window_overlap", "0.5")
    results = json.loads((out / "results.json").read_text())
    # served with the windows evaluation used: 1 s windows every 0.5 s
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert (processor["window_seconds"], processor["hop_seconds"]) == (1.0, 0.5)
    assert results["split_sizes"] == {"train": 13, "validation": 3, "test": 7}
    for split in ("validation", "test"):
        assert sum(map(sum, results[split]["confusion_matrix"])) == results["split_sizes"][split]
    skipped = sorted((item["split"], Path(item["file"]).name) for item in results["skipped_files"])
    assert skipped == [("test", "test-broken-0.wav"), ("test", "test-broken-1.wav"),
                       ("validation", "validation-broken-0.wav")]
    assert all(item["error"] for item in results["skipped_files"])


def test_a_split_left_without_clips_is_an_error_naming_it(tmp_path, encoder_dir, monkeypatch):
    data = write_folder(tmp_path / "data", {"train": 6, "validation": 0, "test": 3}, {"validation": 2})
    with pytest.raises(ValueError, match="The validation split has no usable clips") as error:
        train_genre(monkeypatch, tmp_path, encoder_dir, data, tmp_path / "run", "frozen")
    assert "validation-broken-0.wav" in str(error.value)


@pytest.mark.parametrize("mode", ["frozen", "unfrozen", "lora"])
def test_a_run_resumed_from_a_mid_epoch_checkpoint_ends_where_an_uninterrupted_one_ends(tmp_path, encoder_dir, mode,
                                                                                        monkeypatch, caplog):
    """What a run killed after checkpoint-3 (mid-epoch: 13 clips at batch 4 are 4 steps an epoch) and started again
    has on disk is that checkpoint: training from it ends with the uninterrupted run's weights and metrics."""
    data = write_folder(tmp_path / "data", {"train": 13, "validation": 3, "test": 4})
    extra = ("--save_strategy", "steps", "--save_steps", "3", "--eval_strategy", "no")
    whole = tmp_path / "whole"
    train_genre(monkeypatch, tmp_path, encoder_dir, data, whole, mode, *extra)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-3", resumed / "checkpoint-3")
    caplog.set_level(logging.INFO)
    train_genre(monkeypatch, tmp_path, encoder_dir, data, resumed, mode, *extra)
    assert f"Resuming from {resumed / 'checkpoint-3'}" in caplog.text
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (whole, resumed))
    assert ra["test"] == rb["test"] and ra["validation"] == rb["validation"]


def skipped_names(results: dict) -> list[tuple[str, str]]:
    return sorted((item["split"], Path(item["file"]).name) for item in results["skipped_files"])


def test_caption_training_on_unequal_splits_with_broken_files(tmp_path, encoder_dir, monkeypatch):
    """9 training clips at batch size 4 (a last batch of one, for the captions and the attribute head), 3 validation
    and 7 test clips, broken files in two splits."""
    data = write_folder(tmp_path / "data", {"train": 9, "validation": 3, "test": 7}, {"validation": 1, "test": 1})
    out = tmp_path / "run"
    run_script(
        monkeypatch, "train_caption", "--encoder_name_or_path", str(encoder_dir),
        "--encoder_mode", "unfrozen", "--text_model_name_or_path", "scratch", "--scratch_vocab_size", "300",
        "--scratch_d_model", "32", "--scratch_layers", "1", "--dataset_name", str(data), "--max_length_seconds", "1.0",
        "--output_dir", str(out), "--num_train_epochs", "1", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--max_new_tokens", "6",
        "--eval_strategy", "epoch", "--save_strategy", "no", "--report_to", "none", "--seed", "0",
        "--attribute_columns", "genre",
    )
    results = json.loads((out / "results.json").read_text())
    assert results["split_sizes"] == {"train": 9, "validation": 3, "test": 7}
    config = json.loads((out / "config.json").read_text())
    assert config["attribute_heads"] == {"genre": {"labels": sorted(GENRES)}}
    assert skipped_names(results) == [("test", "test-broken-0.wav"), ("validation", "validation-broken-0.wav")]


def test_contrastive_training_on_unequal_splits_with_broken_files(tmp_path, monkeypatch):
    data = write_folder(tmp_path / "data", {"train": 9, "validation": 3, "test": 7}, {"train": 1, "test": 2})
    out = tmp_path / "run"
    run_script(
        monkeypatch, "train_contrastive", "--encoder_name_or_path", "audiocap/samplecnn",
        "--encoder_config_overrides", "{hidden_size: 16, num_hidden_layers: 6, sampling_rate: 16000}",
        "--dataset_name", str(data), "--label_column_name", "genre", "--max_length_seconds", "1.0",
        "--crop_seconds", "0.5", "--per_device_train_batch_size", "4", "--num_train_epochs", "1", "--projection_dim", "8",
        "--num_threads", "1",
        "--seed", "3", "--output_dir", str(out),
    )
    results = json.loads((out / "results.json").read_text())
    assert results["split_sizes"] == {"train": 9, "validation": 3, "test": 7}
    assert skipped_names(results) == [("test", "test-broken-0.wav"), ("test", "test-broken-1.wav"),
                                      ("train", "train-broken-0.wav")]
    assert (results["linear_probe"]["pretrained_accuracy"] * 7).is_integer()  # the 7 readable test clips, once each
