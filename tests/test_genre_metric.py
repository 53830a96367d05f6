"""The genre metric: classification scores and, from class scores, mAP and macro ROC-AUC checked against
scikit-learn's own macro averages, with the edge cases (absent class, one class, two classes, bad scores)."""

import logging
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import label_binarize

from modeling_audiocap.metrics import load_metric
from modeling_audiocap.metrics.ranking import ranking_metrics


@pytest.fixture(scope="module")
def genre():
    return load_metric("genre_classification")


def noisy_scores(labels: np.ndarray, classes: int, seed: int = 0) -> np.ndarray:
    """Softmax scores that favour the true class without always ranking it first."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), classes))
    logits[np.arange(len(labels)), labels] += 1.0
    exp = np.exp(logits)
    return exp / exp.sum(1, keepdims=True)


def test_every_class_present_matches_sklearn_macro_averages(genre):
    labels = np.arange(40) % 4
    scores = noisy_scores(labels, 4)
    result = genre.compute(predictions=scores.argmax(1), references=labels, prediction_scores=scores,
                           label_names=["blues", "jazz", "rock", "pop"])
    assert result["map"] == pytest.approx(average_precision_score(label_binarize(labels, classes=range(4)), scores))
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, scores, multi_class="ovr"))
    assert 0.4 < result["map"] < 0.95 and 0.5 < result["roc_auc"] < 0.95  # informative scores, not perfect
    assert result["per_class"]["jazz"]["average_precision"] == pytest.approx(
        average_precision_score(labels == 1, scores[:, 1]))
    assert result["accuracy"] == pytest.approx(float((scores.argmax(1) == labels).mean()))


def test_a_class_absent_from_the_references_is_left_out(genre, caplog):
    labels = np.arange(30) % 3  # class 3 has a column but no clip
    scores = noisy_scores(labels, 4, seed=1)
    with caplog.at_level(logging.WARNING, logger="modeling_audiocap.metrics.ranking"):
        result = genre.compute(predictions=scores.argmax(1), references=labels, prediction_scores=scores)
    assert "1 of 4 classes have no reference clip" in caplog.text
    assert set(result["per_class"]) == {"0", "1", "2", "3"}
    assert result["per_class"]["3"]["average_precision"] is None and result["per_class"]["3"]["roc_auc"] is None
    present = [(labels == c, scores[:, c]) for c in range(3)]
    assert result["map"] == pytest.approx(np.mean([average_precision_score(y, s) for y, s in present]))
    assert result["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y, s) for y, s in present]))


def test_a_single_class_has_no_roc_auc():
    labels = np.zeros(6, dtype=int)
    result = ranking_metrics(labels, noisy_scores(labels, 3, seed=2))
    assert result["roc_auc"] is None and result["map"] == 1.0
    assert not any(math.isnan(v) for entry in result["per_class"] for v in entry.values() if v is not None)


def test_two_classes_score_both_columns(genre):
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
    scores = noisy_scores(labels, 2, seed=3)
    result = genre.compute(predictions=scores.argmax(1), references=labels, prediction_scores=scores.tolist())
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, scores[:, 1]))  # both columns: the same AUC
    assert result["map"] == pytest.approx(
        (average_precision_score(labels == 0, scores[:, 0]) + average_precision_score(labels, scores[:, 1])) / 2)


def test_without_scores_the_classification_results_are_unchanged(genre):
    result = genre.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    assert "map" not in result and "roc_auc" not in result
    assert result["per_class"]["0"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}


@pytest.mark.parametrize("scores, message", [
    ([[0.5, 0.5], [np.nan, 1.0]], "finite"),
    ([0.2, 0.8], r"\(clips, classes\)"),
    ([[0.2, 0.8]], r"\(clips, classes\)"),
    ([[0.2, 0.8, 0.0], [0.1, 0.1, 0.8]], "3 class columns for 2 labels"),
])
def test_bad_scores_are_refused(genre, scores, message):
    with pytest.raises(ValueError, match=message):
        genre.compute(predictions=[0, 1], references=[0, 1], prediction_scores=scores, label_names=["a", "b"])


def test_labels_outside_the_score_columns_are_refused():
    with pytest.raises(ValueError, match=r"class ids in \[0, 2\)"):
        ranking_metrics([0, 2], [[0.5, 0.5], [0.5, 0.5]])
