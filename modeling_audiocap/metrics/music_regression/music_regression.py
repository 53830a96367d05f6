"""Regression metrics of music attributes (arousal and valence, tempo, ...), as emotion regression results are
reported: R² and mean absolute error per target, and their means over the targets."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import mean_absolute_error, r2_score

_DESCRIPTION = """Per target (a column of the predictions and references), scikit-learn's `r2_score` (coefficient of
determination: 1 is perfect, 0 is predicting the references' mean) and `mean_absolute_error`; `r2` and `mae` are
their means over the targets."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): per clip, a value per target.
    references (`list[list[float]]`): per clip, the true value per target.
    target_names (`list[str]`, optional): names for `per_target`; defaults to the column numbers.
Returns:
    r2, mae (floats), per_target ({name: {r2, mae}}).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MusicRegression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("float64")),
                "references": datasets.Sequence(datasets.Value("float64")),
            }),
        )

    def _compute(self, predictions, references, target_names=None):
        values, targets = np.asarray(predictions, dtype=np.float64), np.asarray(references, dtype=np.float64)
        if values.shape != targets.shape or values.ndim != 2:
            raise ValueError(f"predictions {values.shape} and references {targets.shape} must both be (clips, targets)")
        names = list(target_names) if target_names else [str(i) for i in range(values.shape[1])]
        per_target = {
            name: {"r2": float(r2_score(targets[:, i], values[:, i])),
                   "mae": float(mean_absolute_error(targets[:, i], values[:, i]))}
            for i, name in enumerate(names)
        }
        return {
            "r2": float(np.mean([row["r2"] for row in per_target.values()])),
            "mae": float(np.mean([row["mae"] for row in per_target.values()])),
            "per_target": per_target,
        }
