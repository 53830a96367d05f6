"""What a clip model learns to predict, and how its clips are scored: one class per clip (genre, mode, ...), tags
(any number per clip) or real values (tempo, arousal and valence).

`ClipTask.of` reads the task from a split's `label` feature, in the forms `data.targets.clip_targets` writes; the task
gives the loss its labels (`training_labels`), picks the metric module and the headline score, and scores clips
from the mean of their windows' logits, through the same score function the pipeline serves with.
"""

from dataclasses import dataclass
from types import SimpleNamespace

import datasets
import numpy as np
import torch

from ..configuration_audiocap import problem_score_function
from ..metrics import load_metric
from ..modeling_audiocap import clip_loss
from ..pipelines import clip_scores

SINGLE_LABEL, MULTI_LABEL, REGRESSION = "single_label_classification", "multi_label_classification", "regression"


@dataclass(frozen=True)
class ClipTask:
    """A task: its transformers `problem_type` and the names of its classes, tags or targets."""

    problem_type: str
    names: tuple[str, ...]

    # per problem type: the metric module, the scores the Trainer logs (the first one selects the best epoch), and
    # the headline (key in a split's results, its name)
    METRICS = {
        SINGLE_LABEL: ("genre_classification", ("accuracy", "macro_f1"), ("accuracy", "accuracy")),
        MULTI_LABEL: ("music_tagging", ("roc_auc", "pr_auc"), ("roc_auc", "ROC-AUC")),
        REGRESSION: ("music_regression", ("r2", "mae"), ("r2", "R²")),
    }
    # the scores a probe sweep reports per split: (key in the metrics, suffix of the split's key, name); the first,
    # under the split's own name, is the headline
    PROBE_SCORES = {
        SINGLE_LABEL: (("accuracy", "", "accuracy"), ("map", "_map", "mAP"), ("roc_auc", "_roc_auc", "ROC-AUC")),
        MULTI_LABEL: (("roc_auc", "", "ROC-AUC"), ("pr_auc", "_pr_auc", "PR-AUC")),
        REGRESSION: (("r2", "", "R²"), ("mae", "_mae", "MAE")),
    }

    @classmethod
    def of(cls, feature, target_names: list[str]) -> "ClipTask":
        """The task of a `label` feature: a ClassLabel (classes), `Sequence(ClassLabel)` (tags) or a sequence of
        numbers (regression, one value per column of `target_names`)."""
        if isinstance(feature, datasets.ClassLabel):
            return cls(SINGLE_LABEL, tuple(feature.names))
        inner = getattr(feature, "feature", None)
        if isinstance(inner, datasets.ClassLabel):
            return cls(MULTI_LABEL, tuple(inner.names))
        if isinstance(inner, datasets.Value) and inner.dtype.startswith("float"):
            return cls(REGRESSION, tuple(target_names))
        raise ValueError(f"a label column of {feature} is no class, tag list or number list")

    @property
    def is_classification(self) -> bool:
        return self.problem_type == SINGLE_LABEL

    @property
    def metric_name(self) -> str:
        return self.METRICS[self.problem_type][0]

    @property
    def logged_scores(self) -> tuple[str, ...]:
        """The validation scores the Trainer logs each epoch; the first one selects the best epoch."""
        return self.METRICS[self.problem_type][1]

    @property
    def probe_scores(self) -> tuple[tuple[str, str, str], ...]:
        """What a probe sweep reports per split: `(metric key, suffix of the split's key, name)`, headline first."""
        return self.PROBE_SCORES[self.problem_type]

    @property
    def headline(self) -> tuple[str, str]:
        """`(key, name)` of the score a run is summed up by (its card's first metric, its log line)."""
        return self.METRICS[self.problem_type][2]

    def load_metric(self):
        return load_metric(self.metric_name)

    def training_labels(self, splits: datasets.DatasetDict) -> datasets.DatasetDict:
        """`splits` with `label` as the loss reads it: tags as a multi-hot `float32` row (one column per tag);
        classes and values as they are."""
        if self.problem_type != MULTI_LABEL:
            return splits
        width = len(self.names)

        def multi_hot(labels: list[list[int]]) -> dict:
            rows = np.zeros((len(labels), width), dtype=np.float32)
            for row, tags in zip(rows, labels):
                row[list(tags)] = 1.0
            return {"label": rows}

        return datasets.DatasetDict({
            split: ds.map(multi_hot, input_columns="label", batched=True, desc="multi-hot tags",
                          features=datasets.Features({**ds.features, "label": datasets.Sequence(datasets.Value("float32"), length=width)}))
            for split, ds in splits.items()
        })

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The model's loss for this task (`clip_loss`), of logits against labels in `training_labels`' form."""
        settings = SimpleNamespace(problem_type=self.problem_type, num_labels=len(self.names), target_std=None)
        return clip_loss(settings, logits, labels)

    def config_kwargs(self, train: datasets.Dataset) -> dict:
        """The model config's task settings: `problem_type`, and a regressor's targets' mean and standard deviation
        over the training clips (`AudioGenreConfig.target_mean` / `target_std`; a constant target's std is 1)."""
        if self.problem_type != REGRESSION:
            return {"problem_type": self.problem_type}
        values = np.asarray(train.with_format("numpy")["label"], dtype=np.float64).reshape(len(train), len(self.names))
        std = values.std(0)
        return {"problem_type": self.problem_type, "target_mean": values.mean(0).tolist(),
                "target_std": np.where(std > 1e-8, std, 1.0).tolist()}

    def prior_logits(self, train_labels: np.ndarray) -> np.ndarray:
        """The logits of a model that ignores the audio and predicts the training clips' prior: the log class
        frequencies (the majority class), each tag's log-odds (its rate as its score) or the mean values."""
        labels = np.asarray(train_labels, dtype=np.float64)
        if self.problem_type == SINGLE_LABEL:
            return np.log(np.bincount(labels.astype(np.int64), minlength=len(self.names)) / len(labels) + 1e-12)
        if self.problem_type == MULTI_LABEL:
            rate = labels.mean(0).clip(1e-6, 1 - 1e-6)
            return np.log(rate / (1 - rate))
        return labels.mean(0)

    def scores(self, clip_logits: np.ndarray) -> np.ndarray:
        """Clip scores from clip logits, as the pipeline gives them: class probabilities, tag probabilities, values."""
        function = problem_score_function(self.problem_type, len(self.names))
        return clip_scores(torch.from_numpy(np.asarray(clip_logits, dtype=np.float64)), function).numpy()

    def clip_metrics(self, metric, clip_logits: np.ndarray, clip_labels: np.ndarray, thresholds=0.5) -> dict:
        """The task's metrics of clips from their logits (`score_metrics` of their `scores`)."""
        return self.score_metrics(metric, self.scores(clip_logits), clip_labels, thresholds)

    def score_metrics(self, metric, scores: np.ndarray, clip_labels: np.ndarray, thresholds=0.5) -> dict:
        """The task's metrics of clips from their scores (`metric`: `load_metric()`'s module). Classes: accuracy and
        F1 of the best-scored class, mAP and ROC-AUC of the probabilities; tags: ROC-AUC and PR-AUC, F1 at
        `thresholds`; regression: R² and MAE."""
        if self.problem_type == SINGLE_LABEL:
            return metric.compute(predictions=scores.argmax(-1), references=clip_labels,
                                  label_names=list(self.names), prediction_scores=scores)
        if self.problem_type == MULTI_LABEL:
            return metric.compute(predictions=scores, references=clip_labels.astype(np.int64),
                                  tag_names=list(self.names), thresholds=thresholds)
        return metric.compute(predictions=scores, references=clip_labels, target_names=list(self.names))


__all__ = ["ClipTask", "MULTI_LABEL", "REGRESSION", "SINGLE_LABEL"]
