"""Genre classification metrics: accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix and, from
class scores, mean average precision and macro ROC-AUC."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from modeling_audiocap.metrics.ranking import ranking_metrics

_DESCRIPTION = """Accuracy, macro-F1, per-class precision / recall / F1 and the confusion matrix of class predictions.
Pass `label_names` to `compute` to key the per-class results by name.

Pass `prediction_scores` (one row of class scores per clip, e.g. the softmax of the clip logits) to also get `map`
(mean average precision) and `roc_auc` (macro ROC-AUC): scikit-learn's `average_precision_score` and
`roc_auc_score` of each class's score column against the rest, averaged over classes. A class absent from the
references has neither score and is left out of both averages; a class that every reference has is left out of
`roc_auc`. So with a single class present `roc_auc` is None (undefined), never NaN; with two classes both columns are
scored. Left-out classes are logged and show as None in `per_class`."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    label_names (`list[str]`, optional): name of each class id; defaults to the ids as strings.
    prediction_scores (`list[list[float]]` or array of shape (clips, classes), optional): class scores of each clip,
        column i for class id i (softmax probabilities or logits: only their order within a column matters).
Returns:
    accuracy, macro_f1 (floats), per_class ({name: {precision, recall, f1, support}}),
    confusion_matrix (rows: true class, columns: predicted class).
    With `prediction_scores` also map and roc_auc (float, or None when no class qualifies) and, in each per_class
    entry, average_precision and roc_auc (None for a left-out class).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GenreClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, label_names=None, prediction_scores=None):
        ranking = None if prediction_scores is None else ranking_metrics(references, prediction_scores)
        if label_names:
            ids = list(range(len(label_names)))
        elif ranking is not None:
            ids = list(range(len(ranking["per_class"])))
        else:
            ids = sorted(set(references) | set(predictions))
        if ranking is not None and len(ranking["per_class"]) != len(ids):
            raise ValueError(f"prediction_scores has {len(ranking['per_class'])} class columns for {len(ids)} labels")
        names = list(label_names) if label_names else [str(i) for i in ids]
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=ids, zero_division=0
        )
        per_class = {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)
        }
        result = {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, labels=ids, average="macro", zero_division=0)),
            "per_class": per_class,
            "confusion_matrix": confusion_matrix(references, predictions, labels=ids).tolist(),
        }
        if ranking is not None:
            result.update(map=ranking["map"], roc_auc=ranking["roc_auc"])
            for name, scores in zip(names, ranking["per_class"]):
                per_class[name].update(scores)
        return result
