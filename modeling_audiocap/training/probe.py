"""Per-layer probes on cached layer-wise embeddings: which encoder layer knows the task best?

For each layer a linear probe on standardised features (scikit-learn) is fitted on the training windows: a logistic
regression for classes, one per tag for tags, a ridge regression for values. Beside them, a learned layer weighting
with a linear layer trains on all layers with the task's own loss (`ClipTask.loss`). Clips are scored by the mean of
their windows' scores, with the task's metrics (`ClipTask.probe_scores`: accuracy, mAP and ROC-AUC; ROC-AUC and
PR-AUC; R² and MAE) per split. Run over several seeds, each layer gets a mean and a standard deviation.
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..modeling_audiocap import LayerWeighting
from .clip_tasks import MULTI_LABEL, REGRESSION, ClipTask
from .genre_data import clip_level
from .plots import plt


def class_scores(probe, x: np.ndarray, num_classes: int) -> np.ndarray:
    """A fitted scikit-learn classifier's `predict_proba(x)` (rows, classes_) placed at the class ids' columns of a
    (rows, num_classes) matrix; classes the probe never saw in training score 0."""
    scores = np.zeros((len(x), num_classes))
    scores[:, probe.classes_] = probe.predict_proba(x)
    return scores


def layer_probe(task: ClipTask, seed: int):
    """A linear probe on standardised features for the task: logistic regression (one per tag for tags), or ridge."""
    if task.problem_type == REGRESSION:
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    classifier = LogisticRegression(max_iter=2000, random_state=seed)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(classifier) if task.problem_type == MULTI_LABEL else classifier)


def window_scores(task: ClipTask, probe, x: np.ndarray) -> np.ndarray:
    """A fitted probe's window scores: class probabilities, tag probabilities or values, `(windows, len(names))`."""
    if task.problem_type == REGRESSION:
        return probe.predict(x).reshape(len(x), len(task.names))
    if task.problem_type == MULTI_LABEL:
        return probe.predict_proba(x)
    return class_scores(probe, x, len(task.names))


def split_scores(task: ClipTask, metric, split: str, scores: np.ndarray, labels: np.ndarray, clips: np.ndarray) -> dict:
    """The task's probe scores of the clips' mean window scores, keyed `split` (headline), `split_<suffix>`, ..."""
    clip_scores, clip_labels, _ = clip_level(scores, labels, clips)
    result = task.score_metrics(metric, clip_scores, clip_labels)
    return {f"{split}{suffix}": result[key] for key, suffix, _ in task.probe_scores}


def _arrays(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.stack(rows["layer_embeddings"]).astype(np.float32), np.asarray(rows["label"]), np.asarray(rows["clip_index"]))


def _weighted_probe(task: ClipTask, metric, train, evals: dict, seed: int, epochs: int = 200) -> dict:
    """LayerWeighting + Linear on standardised per-layer features, full-batch Adam, the task's loss (a regressor's
    targets standardised)."""
    x, y, _ = train
    mean, std = x.mean(0, keepdims=True), x.std(0, keepdims=True) + 1e-6
    regression = task.problem_type == REGRESSION
    y_mean, y_std = (y.mean(0), y.std(0) + 1e-6) if regression else (0.0, 1.0)
    torch.manual_seed(seed)
    weighting, linear = LayerWeighting(x.shape[1]), nn.Linear(x.shape[2], len(task.names))
    with torch.no_grad():
        weighting.weight.fill_(1.0 / x.shape[1])
        weighting.bias.zero_()
    params = list(weighting.parameters()) + list(linear.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-4)
    inputs = torch.from_numpy((x - mean) / std)
    targets = torch.from_numpy(np.asarray((y - y_mean) / y_std, dtype=np.float32) if regression else y)
    for _ in range(epochs):
        loss = task.loss(linear(weighting(inputs.unsqueeze(2)).squeeze(1)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = {}
    with torch.no_grad():
        for split, (ex, ey, eclips) in evals.items():
            logits = linear(weighting(torch.from_numpy((ex - mean) / std).unsqueeze(2)).squeeze(1)).double().numpy()
            out.update(split_scores(task, metric, split, task.scores(logits * y_std + y_mean), ey, eclips))
        out["layer_weights"] = weighting.weight.flatten().tolist()
    return out


def probe_sweep(windows: dict, task: ClipTask, seed: int, layers: list[int] | None = None) -> dict:
    """Validation and test clip scores (`ClipTask.probe_scores`) of a probe on each layer, and of the learned
    weighting of all layers."""
    metric = task.load_metric()
    train = _arrays(windows["train"])
    evals = {split: _arrays(windows[split]) for split in ("validation", "test") if split in windows}
    layers = list(range(train[0].shape[1])) if layers is None else layers
    result: dict = {"layers": {}}
    for layer in layers:
        probe = layer_probe(task, seed)
        probe.fit(train[0][:, layer], train[1].astype(np.int64) if task.problem_type == MULTI_LABEL else train[1])
        result["layers"][layer] = {}
        for split, (x, y, clips) in evals.items():
            result["layers"][layer].update(split_scores(task, metric, split, window_scores(task, probe, x[:, layer]), y, clips))
    result["weighted"] = _weighted_probe(task, metric, train, evals, seed)
    return result


def summarize_sweeps(sweeps: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every score (`test_mean`: the headline, `test_map_mean`, ...) for
    every layer and for the weighting; a score undefined in a run (None) is left out, None if undefined in all."""
    names = [str(layer) for layer in sweeps[0]["layers"]] + ["weighted"]
    summary = {}
    for name in names:
        runs = [s["weighted"] if name == "weighted" else s["layers"][int(name)] for s in sweeps]
        summary[name] = {}
        for key in (k for k in runs[0] if k != "layer_weights"):
            values = [r[key] for r in runs if r[key] is not None]
            summary[name][f"{key}_mean"] = float(np.mean(values)) if values else None
            summary[name][f"{key}_std"] = float(np.std(values)) if values else None
    return summary


def sweep_columns(task: ClipTask) -> list[tuple[str, str]]:
    """A sweep table's columns, `(key, title)`: the validation headline, then every test score."""
    _, _, headline = task.probe_scores[0]
    return [("validation", f"validation {headline}")] + [(f"test{suffix}", f"test {name}") for _, suffix, name in task.probe_scores]


def cell(row: dict, key: str) -> str:
    """A summary's `key` as `mean ± std`, or n/a."""
    mean = row.get(f"{key}_mean")
    return "n/a" if mean is None else f"{mean:.4f} ± {row[f'{key}_std']:.4f}"


def write_sweep_report(summary: dict, seeds: list[int], output_dir: Path, task: ClipTask) -> tuple[Path, Path]:
    """`probe_layers.md` (a table) and `probe_layers.png` (the headline score per layer with seed std as error
    bars)."""
    columns = sweep_columns(task)
    lines = [f"Per-layer probes ({task.problem_type}; clip scores), mean ± std over seeds {seeds}.", "",
             "| layer | " + " | ".join(title for _, title in columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for name, row in summary.items():
        lines.append(f"| {name} | " + " | ".join(cell(row, key) for key, _ in columns) + " |")
    table = Path(output_dir) / "probe_layers.md"
    table.write_text("\n".join(lines) + "\n")
    layer_names = [n for n in summary if n != "weighted"]
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(layer_names)), 4))
    positions = np.arange(len(layer_names))
    for offset, split, color in ((-0.15, "validation", "C0"), (0.15, "test", "C1")):
        if summary["weighted"].get(f"{split}_mean") is None:
            continue
        means = [np.nan if summary[n][f"{split}_mean"] is None else summary[n][f"{split}_mean"] for n in layer_names]
        stds = [0.0 if summary[n][f"{split}_std"] is None else summary[n][f"{split}_std"] for n in layer_names]
        ax.errorbar(positions + offset, means, yerr=stds, fmt="o", capsize=3, label=split, color=color)
        ax.axhline(summary["weighted"][f"{split}_mean"], linestyle="--", linewidth=1, color=color,
                   label=f"learned weighting ({split})")
    ax.set_xticks(positions, layer_names)
    ax.set_xlabel("layer (0 = feature projection)")
    ax.set_ylabel(f"clip {task.probe_scores[0][2]}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plot = Path(output_dir) / "probe_layers.png"
    fig.savefig(plot, dpi=120)
    plt.close(fig)
    return table, plot
