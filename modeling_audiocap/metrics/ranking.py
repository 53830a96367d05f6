"""Ranking metrics of class scores, one class against the rest: mean average precision and macro ROC-AUC.

Shared by the `genre_classification` metric and the linear probes, so every genre score is computed one way.
"""

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

logger = logging.getLogger(__name__)


def _macro(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def ranking_metrics(references: Sequence[int] | np.ndarray, scores: Sequence[Sequence[float]] | np.ndarray) -> dict:
    """`map` and `roc_auc`: scikit-learn's average precision and ROC-AUC of each class's column of `scores`
    (clips, classes) against the rest, macro-averaged over the classes where they are defined.

    A class no reference has (no positive) is left out of both averages; a class every reference has (no negative)
    is left out of `roc_auc` (its average precision is 1). An average over no class is None, never NaN; left-out
    classes are counted in a warning. `per_class` holds each class's `average_precision` and `roc_auc` (None where
    left out), in column order.
    """
    labels = np.asarray(references)
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != labels.shape[0] or labels.ndim != 1 or labels.size == 0:
        raise ValueError(
            f"class scores must be (clips, classes) for {labels.shape[0] if labels.ndim else 0} clips with one label "
            f"each, got scores of shape {values.shape} and labels of shape {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= values.shape[1]:
        raise ValueError(f"labels must be class ids in [0, {values.shape[1]}), got {labels.min()}..{labels.max()}")
    return column_ranking(labels[:, None] == np.arange(values.shape[1])[None, :], values)


def column_ranking(targets: np.ndarray, scores: Sequence[Sequence[float]] | np.ndarray) -> dict:
    """`ranking_metrics` of each column of `scores` (clips, columns) against the same column of boolean `targets`
    (a class one-vs-rest, or a tag of a multi-label set)."""
    targets = np.asarray(targets, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or targets.shape != values.shape or values.size == 0:
        raise ValueError(f"scores {values.shape} and targets {targets.shape} must both be (clips, columns)")
    if not np.isfinite(values).all():
        raise ValueError(f"class scores must be finite; {int((~np.isfinite(values)).sum())} are NaN or infinite")
    per_class = []
    for column in range(values.shape[1]):
        positive = targets[:, column]
        has_both = positive.any() and not positive.all()
        column_scores = values[:, column]
        per_class.append({
            "average_precision": float(average_precision_score(positive, column_scores)) if positive.any() else None,
            "roc_auc": float(roc_auc_score(positive, column_scores)) if has_both else None,
        })
    absent = sum(entry["average_precision"] is None for entry in per_class)
    if absent:
        logger.warning("%d of %d classes have no reference clip: left out of map and roc_auc", absent, len(per_class))
    if all(entry["roc_auc"] is None for entry in per_class):
        logger.warning("every reference clip has the same class: roc_auc is undefined (None)")
    return {
        "map": _macro([entry["average_precision"] for entry in per_class]),
        "roc_auc": _macro([entry["roc_auc"] for entry in per_class]),
        "per_class": per_class,
    }


def best_thresholds(scores, references) -> list[float]:
    """Per tag, the score threshold with the best F1 on these clips (0.5 for a tag with no positive clip)."""
    scores, references = np.asarray(scores, dtype=np.float64), np.asarray(references).astype(bool)
    thresholds = []
    for column in range(scores.shape[1]):
        if not references[:, column].any():
            thresholds.append(0.5)
            continue
        precision, recall, cuts = precision_recall_curve(references[:, column], scores[:, column])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        thresholds.append(float(cuts[int(np.argmax(f1[:-1]))]))
    return thresholds
