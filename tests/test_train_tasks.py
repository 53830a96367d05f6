"""train_genre.py beyond one label per clip, end to end on a small built-in set: a tagger (each clip's genre,
instrument, drum pattern and mode as its tags) and a regressor (its tempo in bpm), frozen, unfrozen and LoRA; each
saves, reloads without the package and serves through `pipeline()` the numbers its evaluation reported."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_script
from sklearn.metrics import average_precision_score, r2_score, roc_auc_score

pytestmark = pytest.mark.slow  # whole training runs

TAG_COLUMNS = ("genre", "instrument", "drums", "mode")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("music-set")


def train(monkeypatch, tmp_path, encoder_dir, data_dir, columns: str, mode: str, *extra) -> Path:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / f"run-{mode}"
    run_script(
        monkeypatch, "train_genre",
        "--encoder_name_or_path", str(encoder_dir), "--encoder_mode", mode, "--label_column_name", columns,
        "--dataset_name", "builtin", "--builtin_dir", str(data_dir / "set"),
        "--builtin_clips_per_genre", "6", "--builtin_seconds", "1.5", "--max_length_seconds", "1.0",
        "--embedding_cache_dir", str(data_dir / "cache"), "--head_hidden_size", "16",
        "--output_dir", str(out), "--num_train_epochs", "2", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--eval_strategy", "epoch", "--save_strategy", "epoch", "--load_best_model_at_end", "true",
        # a genre preset's choice: a tagger or regressor logs no accuracy, so the script picks its own score
        "--metric_for_best_model", "accuracy",
        "--logging_strategy", "epoch", "--report_to", "none", "--seed", "1", *extra,
    )
    return out


def split_clips(data_dir: Path) -> list[dict]:
    """The built-in set's test clips, as its metadata lists them."""
    with open(data_dir / "set" / "metadata.csv", newline="", encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if row["split"] == "test"]


def serve_without_package(out: Path, files: list[str], cwd: Path) -> list[dict[str, float]]:
    """Every file's scores from `pipeline()` in a Python without audiocap (the model's shipped code only)."""
    script = (
        "import json, sys; sys.modules['modeling_audiocap'] = None\n"
        "from transformers import pipeline\n"
        f"pipe = pipeline('audio-classification', model={str(out)!r}, trust_remote_code=True)\n"
        f"print(json.dumps([{{r['label']: r['score'] for r in pipe(f, top_k=None)}} for f in {files!r}]))"
    )
    check = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert check.returncode == 0, check.stderr[-3000:]
    return json.loads(check.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["frozen", "unfrozen", "lora"])
def test_tagger_trains_saves_and_serves_its_evaluation(tmp_path, encoder_dir, data_dir, mode, monkeypatch):
    out = train(monkeypatch, tmp_path, encoder_dir, data_dir, ",".join(TAG_COLUMNS), mode)
    results = json.loads((out / "results.json").read_text())
    clips = split_clips(data_dir)
    tags = sorted({clip[c] for clip in clips for c in TAG_COLUMNS})
    assert results["problem_type"] == "multi_label_classification"
    assert set(tags) <= set(results["label_names"]) and results["test_roc_auc"] == results["test"]["roc_auc"]
    assert results["model_selection"] == "best validation roc_auc"
    assert set(results["thresholds"]) == set(results["label_names"])
    for split in ("train", "validation", "test"):
        assert {"roc_auc", "pr_auc", "macro_f1", "micro_f1", "per_tag"} <= set(results[split]), split
    assert (out / "tag_scores.png").exists() and not (out / "confusion_matrix.png").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["target_mean"] is None
    card = (out / "README.md").read_text()
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]
    assert index["task"]["name"] == "Music tagging"
    assert index["metrics"][0]["value"] == round(results["test"]["roc_auc"], 4)
    assert f"| test | {results['test']['roc_auc']:.4f} | {results['test']['pr_auc']:.4f} |" in card
    # chance to beat: each tag's training rate as a constant score ranks nothing (ROC-AUC 0.5)
    assert results["prior_baseline"]["roc_auc"] == 0.5 and "| test, no audio" in card

    if mode != "frozen":
        return
    # Served without the package, every test clip's tag scores give the evaluation's ROC-AUC and PR-AUC.
    served = serve_without_package(out, [str(data_dir / "set" / c["file_name"]) for c in clips], tmp_path)
    names = results["label_names"]
    scores = np.array([[row[name] for name in names] for row in served])
    assert ((scores > 0) & (scores < 1)).all()  # sigmoid per tag, not a softmax over them
    truth = np.array([[name in {clip[c] for c in TAG_COLUMNS} for name in names] for clip in clips])
    defined = [i for i in range(len(names)) if 0 < truth[:, i].sum() < len(clips)]
    assert np.mean([roc_auc_score(truth[:, i], scores[:, i]) for i in defined]) == pytest.approx(
        results["test"]["roc_auc"], abs=1e-6)
    assert np.mean([average_precision_score(truth[:, i], scores[:, i]) for i in defined]) == pytest.approx(
        results["test"]["pr_auc"], abs=1e-6)


@pytest.mark.parametrize("mode", ["frozen", "unfrozen", "lora"])
def test_regressor_trains_saves_and_serves_its_evaluation(tmp_path, encoder_dir, data_dir, mode, monkeypatch):
    out = train(monkeypatch, tmp_path, encoder_dir, data_dir, "tempo_bpm", mode)
    results = json.loads((out / "results.json").read_text())
    assert results["problem_type"] == "regression" and results["label_names"] == ["tempo_bpm"]
    assert results["model_selection"] == "best validation r2" and results["test_r2"] == results["test"]["r2"]
    assert set(results["test"]["per_target"]) == {"tempo_bpm"} and results["test"]["mae"] > 0
    assert (out / "predictions.png").exists()
    config = json.loads((out / "config.json").read_text())
    with open(data_dir / "set" / "metadata.csv", newline="", encoding="utf-8") as f:
        train_bpm = [float(r["tempo_bpm"]) for r in csv.DictReader(f) if r["split"] == "train"]
    assert config["problem_type"] == "regression"
    assert config["target_mean"] == pytest.approx([np.mean(train_bpm)], rel=1e-6)
    assert config["target_std"] == pytest.approx([np.std(train_bpm)], rel=1e-6)
    card = (out / "README.md").read_text()
    assert "| split | R² (mean) | MAE (mean) | R² tempo_bpm | MAE tempo_bpm |" in card
    test_bpm = [float(c["tempo_bpm"]) for c in split_clips(data_dir)]
    assert results["prior_baseline"]["mae"] == pytest.approx(np.abs(np.array(test_bpm) - np.mean(train_bpm)).mean())

    if mode != "lora":
        return
    # Served without the package: the test clips' predicted bpm (in bpm, not standardised) give the evaluation's R².
    clips = split_clips(data_dir)
    served = serve_without_package(out, [str(data_dir / "set" / c["file_name"]) for c in clips], tmp_path)
    predicted = np.array([row["tempo_bpm"] for row in served])
    true = np.array([float(c["tempo_bpm"]) for c in clips])
    assert 40 < predicted.mean() < 200
    assert r2_score(true, predicted) == pytest.approx(results["test"]["r2"], abs=1e-5)
    assert np.abs(true - predicted).mean() == pytest.approx(results["test"]["mae"], rel=1e-5)
