"""Music auto-tagging metrics, as MagnaTagATune and MTG-Jamendo results are reported: macro ROC-AUC and PR-AUC over
tags (threshold-free), per-tag scores, and F1 at thresholds (0.5, or per-tag ones chosen on validation)."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import f1_score

from modeling_audiocap.metrics.ranking import column_ranking

_DESCRIPTION = """Tagging metrics of per-tag scores against multi-hot references: `roc_auc` and `pr_auc`, the macro
averages over tags of scikit-learn's `roc_auc_score` and `average_precision_score` of each tag's score column (a tag
no reference has, or every reference has, is left out where undefined, and shows as None in `per_tag`), and
`macro_f1` / `micro_f1` of the tags a clip gets at `thresholds` (one per tag, or one for all; 0.5 by default).
`modeling_audiocap.metrics.ranking.best_thresholds(scores, references)` gives the per-tag thresholds that maximise
each tag's F1, to choose on a validation split and pass for the test split."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): per clip, a score per tag (sigmoid probabilities, or logits with thresholds
        to match).
    references (`list[list[int]]`): per clip, 0/1 per tag.
    tag_names (`list[str]`, optional): names for `per_tag`; defaults to the column numbers.
    thresholds (`float` or `list[float]`, optional): the score from which a clip has a tag; 0.5 by default.
Returns:
    roc_auc, pr_auc (floats, or None when no tag qualifies), macro_f1, micro_f1 (floats), per_tag
    ({name: {roc_auc, pr_auc, f1, support}}).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MusicTagging(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("float64")),
                "references": datasets.Sequence(datasets.Value("int64")),
            }),
        )

    def _compute(self, predictions, references, tag_names=None, thresholds=0.5):
        scores, targets = np.asarray(predictions, dtype=np.float64), np.asarray(references).astype(bool)
        ranking = column_ranking(targets, scores)
        names = list(tag_names) if tag_names else [str(i) for i in range(scores.shape[1])]
        if len(names) != scores.shape[1]:
            raise ValueError(f"{len(names)} tag names for {scores.shape[1]} score columns")
        cuts = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (scores.shape[1],))
        tagged = scores >= cuts[None, :]
        per_tag_f1 = f1_score(targets, tagged, average=None, zero_division=0)
        per_tag = {
            name: {"roc_auc": entry["roc_auc"], "pr_auc": entry["average_precision"], "f1": float(f1),
                   "support": int(targets[:, i].sum())}
            for i, (name, entry, f1) in enumerate(zip(names, ranking["per_class"], per_tag_f1))
        }
        return {
            "roc_auc": ranking["roc_auc"],
            "pr_auc": ranking["map"],
            "macro_f1": float(f1_score(targets, tagged, average="macro", zero_division=0)),
            "micro_f1": float(f1_score(targets, tagged, average="micro", zero_division=0)),
            "per_tag": per_tag,
        }
