"""Genre classification metrics: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

_DESCRIPTION = """Accuracy, macro-F1, per-class precision / recall / F1 and the confusion matrix of class predictions.
Pass `label_names` to `compute` to key the per-class results by name."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    label_names (`list[str]`, optional): name of each class id; defaults to the ids as strings.
Returns:
    accuracy, macro_f1 (floats), per_class ({name: {precision, recall, f1, support}}),
    confusion_matrix (rows: true class, columns: predicted class).
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

    def _compute(self, predictions, references, label_names=None):
        ids = list(range(len(label_names))) if label_names else sorted(set(references) | set(predictions))
        names = list(label_names) if label_names else [str(i) for i in ids]
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=ids, zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, labels=ids, average="macro", zero_division=0)),
            "per_class": {
                name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                for name, p, r, f, s in zip(names, precision, recall, f1, support)
            },
            "confusion_matrix": confusion_matrix(references, predictions, labels=ids).tolist(),
        }
