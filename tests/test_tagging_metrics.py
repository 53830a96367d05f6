"""The tagging and regression metrics agree with scikit-learn's on the same scores, and say where a tag's score is
undefined."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, mean_absolute_error, r2_score, roc_auc_score

from modeling_audiocap.metrics import load_metric


def tag_set(clips: int = 40, tags: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    references = (rng.random((clips, tags)) < 0.4).astype(int)
    references[:, 3] = 0  # a tag no clip has
    references[:, 4] = 1  # a tag every clip has
    scores = np.clip(references * 0.3 + rng.random((clips, tags)) * 0.7, 0, 1)
    return scores, references


def test_tagging_metrics_agree_with_scikit_learn():
    from modeling_audiocap.metrics.ranking import best_thresholds

    scores, references = tag_set()
    names = ["rock", "piano", "drums", "choir", "loud"]
    result = load_metric("music_tagging").compute(predictions=scores.tolist(), references=references.tolist(),
                                                  tag_names=names)
    both = [0, 1, 2]  # tags with positive and negative clips
    assert result["roc_auc"] == pytest.approx(roc_auc_score(references[:, both], scores[:, both], average="macro"))
    positive = [0, 1, 2, 4]
    assert result["pr_auc"] == pytest.approx(np.mean([average_precision_score(references[:, i], scores[:, i])
                                                      for i in positive]))
    assert result["per_tag"]["choir"]["roc_auc"] is None and result["per_tag"]["choir"]["pr_auc"] is None
    assert result["per_tag"]["loud"]["roc_auc"] is None and result["per_tag"]["loud"]["pr_auc"] == 1.0
    tagged = scores >= 0.5
    assert result["macro_f1"] == pytest.approx(f1_score(references, tagged, average="macro", zero_division=0))
    assert result["micro_f1"] == pytest.approx(f1_score(references, tagged, average="micro", zero_division=0))
    cuts = best_thresholds(scores, references)
    chosen = load_metric("music_tagging").compute(predictions=scores.tolist(), references=references.tolist(),
                                                  thresholds=cuts)
    assert chosen["macro_f1"] >= result["macro_f1"] and cuts[3] == 0.5
    for i, name in enumerate(names):
        assert chosen["per_tag"][str(i)]["f1"] >= result["per_tag"][name]["f1"] - 1e-12


def test_regression_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(1)
    references = rng.normal(size=(30, 2)) * [20.0, 0.3] + [110.0, 0.5]  # tempo in bpm, valence
    predictions = references + rng.normal(size=(30, 2)) * [8.0, 0.2]
    result = load_metric("music_regression").compute(predictions=predictions.tolist(), references=references.tolist(),
                                                      target_names=["tempo", "valence"])
    for i, name in enumerate(["tempo", "valence"]):
        assert result["per_target"][name]["r2"] == pytest.approx(r2_score(references[:, i], predictions[:, i]))
        assert result["per_target"][name]["mae"] == pytest.approx(mean_absolute_error(references[:, i], predictions[:, i]))
    assert result["r2"] == pytest.approx(np.mean([r2_score(references[:, i], predictions[:, i]) for i in range(2)]))
    mean_only = load_metric("music_regression").compute(
        predictions=np.broadcast_to(references.mean(0), references.shape).tolist(), references=references.tolist())
    assert mean_only["r2"] == pytest.approx(0.0, abs=1e-12)  # predicting the mean scores 0
