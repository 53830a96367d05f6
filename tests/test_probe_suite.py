"""`audiocap-probe`: two encoders probed on a classification, a tagging and a regression task write one comparison
table; a second run reuses every cached embedding and gives the same table."""

import json
from pathlib import Path

import pytest

from modeling_audiocap.training.probe_suite import main

pytestmark = pytest.mark.slow  # embeds a small set with two encoders

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"demo": "accuracy", "demo-tags": "ROC-AUC", "demo-tempo": "R²"}


def test_two_encoders_on_three_tasks_write_one_table_and_reuse_their_embeddings(tmp_path, encoder_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    encoders = [str(encoder_dir), "audiocap/melcnn"]
    argv = [item for e in encoders for item in ("--encoder", e)]
    argv += [item for t in TASKS for item in ("--task", str(ROOT / "configs" / f"{t}.yaml"))]
    argv += ["--seeds", "0,1", "--layers", "0,1", "--output_dir", str(tmp_path / "suite"), "--",
             "--builtin_dir", str(tmp_path / "set"), "--builtin_clips_per_genre", "6", "--builtin_seconds", "1.5",
             "--max_length_seconds", "1.0", "--embedding_cache_dir", str(tmp_path / "cache")]
    tasks = main(argv)

    assert {task: entry["metric"] for task, entry in tasks.items()} == TASKS
    table = (tmp_path / "suite" / "probe_suite.md").read_text()
    for task, metric in TASKS.items():
        assert f"| {task} | {metric} |" in table
        for encoder in encoders:
            report = json.loads((tmp_path / "suite" / encoder.strip("/").replace("/", "--") / task /
                                 "probe_layers.json").read_text())
            row = tasks[task]["encoders"][encoder]
            summary = report["summary"]
            assert report["seeds"] == [0, 1] and len(report["runs"]) == 2
            # the best layer is chosen on validation and reported on test
            layers = [name for name in summary if name != "weighted"]
            assert layers == ["0", "1"]
            assert row["best_layer"] == max(layers, key=lambda n: summary[n]["validation_mean"])
            assert row["best_layer_test"]["mean"] == summary[row["best_layer"]]["test_mean"]
            assert row["weighted_test"]["mean"] == summary["weighted"]["test_mean"]
    assert json.loads((tmp_path / "suite" / "probe_suite.json").read_text())["tasks"] == tasks
    assert (tmp_path / "suite" / "probe_suite.png").exists()
    tempo = json.loads((tmp_path / "suite" / encoders[1].replace("/", "--") / "demo-tempo" / "probe_layers.json").read_text())
    assert tempo["problem_type"] == "regression" and tempo["summary"]["weighted"]["test_mae_mean"] > 0

    cached = sorted((tmp_path / "cache").glob("embeddings-*.arrow"))
    assert len(cached) == 2 * 3 * 3  # per encoder and task, its three splits
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert main(argv) == tasks
    assert sorted((tmp_path / "cache").glob("embeddings-*.arrow")) == cached
    assert [p.stat().st_mtime_ns for p in cached] == stamps
