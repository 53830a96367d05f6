"""train_genre.py end to end on a small built-in set: frozen (cached), unfrozen and LoRA; results, card, reload."""

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_script

pytestmark = pytest.mark.slow  # whole training runs (in this process, but for torchrun and remote-code serving)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("music-set")


def run_train(monkeypatch, tmp_path, encoder_dir, data_dir, mode, *extra) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / f"run-{mode}"
    run_script(
        monkeypatch, "train_genre",
        "--encoder_name_or_path", str(encoder_dir), "--encoder_mode", mode,
        "--dataset_name", "builtin", "--builtin_dir", str(data_dir / "set"),
        "--builtin_clips_per_genre", "6", "--builtin_seconds", "1.5", "--max_length_seconds", "1.0",
        "--embedding_cache_dir", str(data_dir / "cache"), "--head_hidden_size", "16",
        "--output_dir", str(out), "--num_train_epochs", "2", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--eval_strategy", "epoch", "--save_strategy", "epoch", "--load_best_model_at_end", "true",
        "--logging_strategy", "epoch", "--report_to", "none", "--seed", "1", *extra,
    )
    return out


@pytest.mark.parametrize("mode", ["frozen", "unfrozen", "lora"])
def test_train_genre_writes_a_publishable_model_repo(tmp_path, encoder_dir, data_dir, mode, monkeypatch):
    out = run_train(monkeypatch, tmp_path, encoder_dir, data_dir, mode)
    results = json.loads((out / "results.json").read_text())
    assert results["test"]["accuracy"] == results["test_accuracy"]
    encoder, dataset = results["sources"]["models"]["encoder"], results["sources"]["dataset"]
    assert encoder["path"] == str(encoder_dir.resolve()) and encoder["manifests"]["config.json"]["sha256"]
    metadata = hashlib.sha256((data_dir / "set" / "metadata.csv").read_bytes()).hexdigest()
    assert dataset["manifests"]["metadata.csv"]["sha256"] == metadata and dataset["files"] > 36
    assert results["config"]["encoder"]["model_revision"] == "main" and results["versions"]["torchcodec"]
    assert set(results["test"]["per_class"]) == set(results["label_names"])
    assert sum(results["split_sizes"].values()) == 36 and results["seed"] == 1
    assert results["encoder_mode"] == mode and results["versions"]["transformers"]
    for split in ("train", "validation", "test"):  # train scored on its evaluation windows after training
        assert {"accuracy", "macro_f1", "map", "roc_auc"} <= set(results[split]), split
        assert sum(map(sum, results[split]["confusion_matrix"])) == results["split_sizes"][split]
    assert results["train_accuracy"] == results["train"]["accuracy"]
    assert results["model_selection"] == "best validation loss"  # transformers' default metric_for_best_model
    assert set(results["mean_cosine"]) == {"train", "test"}
    for name in ("confusion_matrix.png", "pca_train_embeddings.png", "pca_test_embeddings.png", "training_curves.png",
                 "model.safetensors", "preprocessor_config.json", "config.json", "modeling_audiocap.py"):
        assert (out / name).exists(), name
    assert not list(out.glob("adapter_*")), "a LoRA run publishes the merged model"
    card = (out / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == round(results["test_accuracy"], 4)
    assert "pipeline" in card and results["split_protocol"] in card
    assert f"| train | {results['train']['accuracy']:.4f} | {results['train']['macro_f1']:.4f} | {results['train']['map']:.4f}" in card

    # The result is a normal model: the pipeline returns the genre names for a real clip.
    script = (
        "import sys; sys.modules['modeling_audiocap'] = None\n"
        "from transformers import pipeline\n"
        f"print(pipeline('audio-classification', model={str(out)!r}, trust_remote_code=True)({str(next((data_dir / 'set').rglob('*.wav')))!r}, top_k=6))"
    )
    check = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-3000:]
    for label in results["label_names"]:
        assert label in check.stdout


def test_frozen_mode_reuses_the_embedding_cache(tmp_path, encoder_dir, data_dir, monkeypatch):
    run_train(monkeypatch, tmp_path, encoder_dir, data_dir, "frozen")
    cached = sorted((data_dir / "cache").glob("embeddings-*.arrow"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert len(cached) == 3  # train, validation, test
    run_train(monkeypatch, tmp_path / "again", encoder_dir, data_dir, "frozen")
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_two_cpu_processes_count_every_clip_once(tmp_path, encoder_dir, data_dir):
    """`torchrun --nproc_per_node 2 train_genre.py --use_cpu true`: two processes, the same splits, and each
    validation/test clip scored once."""
    out = tmp_path / "two"
    args = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(ROOT / "train_genre.py"), "--use_cpu", "true", "--encoder_name_or_path", str(encoder_dir), "--encoder_mode", "frozen",
        "--dataset_name", "builtin", "--builtin_dir", str(data_dir / "set"), "--builtin_clips_per_genre", "6",
        "--builtin_seconds", "1.5", "--max_length_seconds", "1.0", "--embedding_cache_dir", str(data_dir / "cache"),
        "--head_hidden_size", "16", "--output_dir", str(out), "--num_train_epochs", "2", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "5", "--eval_strategy", "epoch",
        "--save_strategy", "no", "--report_to", "none", "--seed", "1",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2
    for split in ("validation", "test"):
        assert sum(map(sum, results[split]["confusion_matrix"])) == results["split_sizes"][split]
    assert results["split_sizes"] == {"train": 24, "validation": 6, "test": 6}


def test_probe_sweep_reports_every_layer_over_seeds(tmp_path, encoder_dir, data_dir, monkeypatch):
    out = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    run_script(
        monkeypatch, "train_genre", "--encoder_name_or_path", str(encoder_dir),
        "--encoder_mode", "frozen", "--probe_layers", "all", "--seeds", "0,1", "--split_protocol", "random",
        "--dataset_name", "builtin", "--builtin_dir", str(data_dir / "set10"), "--builtin_clips_per_genre", "10",
        "--builtin_seconds", "1.0", "--max_length_seconds", "1.0", "--embedding_cache_dir", str(data_dir / "cache"),
        "--output_dir", str(out), "--report_to", "none",
    )
    report = json.loads((out / "probe_layers.json").read_text())
    assert report["seeds"] == [0, 1] and len(report["runs"]) == 2
    assert set(report["summary"]) == {"0", "1", "2", "weighted"}  # tiny encoder: 2 layers + feature projection
    for name, row in report["summary"].items():
        runs = [run["weighted"] if name == "weighted" else run["layers"][name] for run in report["runs"]]
        assert row["test_mean"] == pytest.approx(np.mean([run["test"] for run in runs]))
        assert row["test_std"] == pytest.approx(np.std([run["test"] for run in runs]))
    assert len(report["runs"][0]["weighted"]["layer_weights"]) == 3
    assert (out / "probe_layers.png").exists() and "| weighted |" in (out / "probe_layers.md").read_text()


def test_interrupted_run_resumes_and_failed_push_keeps_the_result(tmp_path, encoder_dir, data_dir, monkeypatch, caplog):
    out = run_train(monkeypatch, tmp_path, encoder_dir, data_dir, "frozen")
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, "a checkpoint is kept each epoch"
    assert (checkpoints[-1] / "preprocessor_config.json").exists(), "a checkpoint is a complete model folder"
    steps_done = int(checkpoints[-1].name.split("-")[1])
    # Train further in the same output_dir: it resumes from the last checkpoint instead of starting over, and the
    # Hub push fails (offline) without losing the local result.
    caplog.set_level(logging.INFO)
    out = run_train(monkeypatch, tmp_path, encoder_dir, data_dir, "frozen", "--num_train_epochs", "3", "--push_to_hub",
                    "true", "--hub_model_id", "someone/audiocap-test")
    assert f"Resuming from {checkpoints[-1]}" in caplog.text
    state = json.loads((sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == steps_done * 3 // 2
    assert "Could not push" in caplog.text and f"audiocap-push {out} --hub_model_id someone/audiocap-test" in caplog.text
    assert "hf upload" not in caplog.text  # it would upload the checkpoints too
    assert (out / "results.json").exists() and (out / "model.safetensors").exists()
