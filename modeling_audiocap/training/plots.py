"""Plots and embedding statistics for results people would rather see than read."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402


def mean_pairwise_cosine(embeddings: np.ndarray) -> float:
    """Average cosine similarity over all distinct pairs of rows (1.0 = all embeddings point the same way)."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    sims = unit @ unit.T
    n = len(unit)
    return float((sims.sum() - np.trace(sims)) / max(n * (n - 1), 1))


def plot_confusion_matrix(matrix: list[list[int]], label_names: list[str], path: Path, title: str) -> Path:
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(label_names), 0.8 + 0.6 * len(label_names)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pca(panels: dict[str, np.ndarray], labels: np.ndarray, label_names: list[str], path: Path) -> Path:
    """Side-by-side 2-D PCA scatter plots of embeddings (e.g. before and after training), coloured by class."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (title, embeddings) in zip(axes[0], panels.items()):
        points = PCA(n_components=2).fit_transform(embeddings)
        for k, name in enumerate(label_names):
            chosen = labels == k
            ax.scatter(points[chosen, 0], points[chosen, 1], s=12, color=cmap(k % 10), label=name)
        ax.set_title(f"{title} (mean cosine {mean_pairwise_cosine(embeddings):.3f})")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_loss_curve(steps: list[int], losses: list[float], epoch_losses: list[float], steps_per_epoch: int, path: Path,
                    ylabel: str) -> Path:
    """A logged training loss over optimiser steps, and its mean per epoch (`epoch_losses`, one per epoch of
    `steps_per_epoch` steps) at each epoch's last step."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, alpha=0.4, label="logged")
    if len(epoch_losses) > 1:
        ends = steps_per_epoch * np.arange(1, len(epoch_losses) + 1)
        ax.plot(ends, epoch_losses, marker="o", label="epoch mean")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training_curves(log_history: list[dict], path: Path, metric: str) -> Path:
    """Training and validation loss, and the validation `metric` (logged as `eval_<metric>`), over optimiser steps,
    from `Trainer.state.log_history`; a run without a validation split has its training loss only."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [e for e in log_history if "eval_loss" in e]
    scores = [(e["step"], e[f"eval_{metric}"]) for e in evals if f"eval_{metric}" in e]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        left.plot(*zip(*train), label="train loss")
    if evals:
        left.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], marker="o", label="validation loss")
    if scores:
        right.plot(*zip(*scores), marker="o")
    else:
        right.text(0.5, 0.5, "no validation", ha="center", va="center", transform=right.transAxes)
    left.set_xlabel("step")
    if left.lines:
        left.legend()
    right.set_xlabel("step")
    right.set_ylabel(f"validation {metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_tag_scores(per_tag: dict[str, dict], path: Path, title: str) -> Path:
    """Each tag's ROC-AUC and PR-AUC as bars (a tag where they are undefined shows none), tags sorted by ROC-AUC."""
    order = sorted(per_tag, key=lambda tag: -(per_tag[tag]["roc_auc"] if per_tag[tag]["roc_auc"] is not None else -1))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(order) + 1.5), 4))
    positions = np.arange(len(order))
    for offset, key, name in ((-0.2, "roc_auc", "ROC-AUC"), (0.2, "pr_auc", "PR-AUC")):
        values = [per_tag[tag][key] if per_tag[tag][key] is not None else np.nan for tag in order]
        ax.bar(positions + offset, values, width=0.4, label=name)
    ax.set_xticks(positions, order, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_predictions(predicted: np.ndarray, true: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    """Predicted against true values, a panel per target, with the identity line."""
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4.2), squeeze=False)
    for column, (ax, name) in enumerate(zip(axes[0], names)):
        x, y = true[:, column], predicted[:, column]
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
        ax.scatter(x, y, s=12)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
