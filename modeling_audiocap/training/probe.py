"""Per-layer probe sweep on cached layer-wise embeddings: which encoder layer knows the genre best?

For each layer a logistic-regression probe (standardised features, scikit-learn) is fitted on the training windows;
beside them, a learned layer weighting with a linear classifier trains on all layers. Clips are scored by the mean
of their windows' probabilities: accuracy, mAP and macro ROC-AUC (`modeling_audiocap.metrics.ranking`) per split. Run
over several seeds, each layer gets a mean and a standard deviation.
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from .plots import plt
from ..metrics.ranking import ranking_metrics
from ..modeling_audiocap import LayerWeighting
from .genre_data import clip_level

SCORES = ("", "_map", "_roc_auc")  # a split's accuracy, mAP and ROC-AUC keys: "test", "test_map", "test_roc_auc"


def class_scores(probe, x: np.ndarray, num_classes: int) -> np.ndarray:
    """A fitted scikit-learn classifier's `predict_proba(x)` (rows, classes_) placed at the class ids' columns of a
    (rows, num_classes) matrix; classes the probe never saw in training score 0."""
    scores = np.zeros((len(x), num_classes))
    scores[:, probe.classes_] = probe.predict_proba(x)
    return scores


def _clip_scores(split: str, scores: np.ndarray, labels: np.ndarray, clips: np.ndarray) -> dict[str, float | None]:
    """Accuracy, mAP and macro ROC-AUC of the clips' mean window scores, keyed `split`, `split_map`, `split_roc_auc`."""
    clip_scores, clip_labels, _ = clip_level(scores, labels, clips)
    ranking = ranking_metrics(clip_labels, clip_scores)
    return {
        split: float((clip_scores.argmax(-1) == clip_labels).mean()),
        f"{split}_map": ranking["map"],
        f"{split}_roc_auc": ranking["roc_auc"],
    }


def _arrays(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.stack(rows["layer_embeddings"]).astype(np.float32), np.asarray(rows["label"]), np.asarray(rows["clip_index"]))


def _weighted_probe(train, evals: dict, num_labels: int, seed: int, epochs: int = 200) -> dict:
    """LayerWeighting + Linear on standardised per-layer features, full-batch Adam."""
    x, y, _ = train
    mean, std = x.mean(0, keepdims=True), x.std(0, keepdims=True) + 1e-6
    torch.manual_seed(seed)
    weighting, linear = LayerWeighting(x.shape[1]), nn.Linear(x.shape[2], num_labels)
    with torch.no_grad():
        weighting.weight.fill_(1.0 / x.shape[1])
        weighting.bias.zero_()
    params = list(weighting.parameters()) + list(linear.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-4)
    inputs, targets = torch.from_numpy((x - mean) / std), torch.from_numpy(y).long()
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(linear(weighting(inputs.unsqueeze(2)).squeeze(1)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = {}
    with torch.no_grad():
        for split, (ex, ey, eclips) in evals.items():
            logits = linear(weighting(torch.from_numpy((ex - mean) / std).unsqueeze(2)).squeeze(1))
            out.update(_clip_scores(split, logits.softmax(-1).numpy(), ey, eclips))
        out["layer_weights"] = weighting.weight.flatten().tolist()
    return out


def probe_sweep(windows: dict, num_labels: int, seed: int, layers: list[int] | None = None) -> dict:
    """Validation and test clip accuracy, mAP and macro ROC-AUC of a probe on each layer, and of the learned
    weighting of all layers."""
    train = _arrays(windows["train"])
    evals = {split: _arrays(windows[split]) for split in ("validation", "test")}
    layers = list(range(train[0].shape[1])) if layers is None else layers
    result: dict = {"layers": {}}
    for layer in layers:
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        probe.fit(train[0][:, layer], train[1])
        result["layers"][layer] = {}
        for split, (x, y, clips) in evals.items():
            result["layers"][layer].update(_clip_scores(split, class_scores(probe, x[:, layer], num_labels), y, clips))
    result["weighted"] = _weighted_probe(train, evals, num_labels, seed)
    return result


def summarize_sweeps(sweeps: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every score (`test_mean`: accuracy, `test_map_mean`, ...) for every
    layer and for the weighting; a score undefined in a run (None) is left out, None if undefined in all."""
    names = [str(layer) for layer in sweeps[0]["layers"]] + ["weighted"]
    summary = {}
    for name in names:
        runs = [s["weighted"] if name == "weighted" else s["layers"][int(name)] for s in sweeps]
        summary[name] = {}
        for key in (f"{split}{score}" for split in ("validation", "test") for score in SCORES):
            values = [r[key] for r in runs if r[key] is not None]
            summary[name][f"{key}_mean"] = float(np.mean(values)) if values else None
            summary[name][f"{key}_std"] = float(np.std(values)) if values else None
    return summary


def write_sweep_report(summary: dict, seeds: list[int], output_dir: Path) -> tuple[Path, Path]:
    """`probe_layers.md` (a table) and `probe_layers.png` (accuracy per layer with seed std as error bars)."""
    columns = (("validation", "validation accuracy"), ("test", "test accuracy"), ("test_map", "test mAP"),
               ("test_roc_auc", "test ROC-AUC"))
    lines = [f"Per-layer probes (clip scores), mean ± std over seeds {seeds}.", "",
             "| layer | " + " | ".join(title for _, title in columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for name, row in summary.items():
        cells = ["n/a" if row[f"{key}_mean"] is None else f"{row[f'{key}_mean']:.4f} ± {row[f'{key}_std']:.4f}"
                 for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = output_dir / "probe_layers.md"
    table.write_text("\n".join(lines) + "\n")
    layer_names = [n for n in summary if n != "weighted"]
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(layer_names)), 4))
    positions = np.arange(len(layer_names))
    for offset, split in ((-0.15, "validation"), (0.15, "test")):
        ax.errorbar(positions + offset, [summary[n][f"{split}_mean"] for n in layer_names],
                    yerr=[summary[n][f"{split}_std"] for n in layer_names], fmt="o", capsize=3, label=split)
        ax.axhline(summary["weighted"][f"{split}_mean"], linestyle="--", linewidth=1,
                   color="C0" if split == "validation" else "C1", label=f"learned weighting ({split})")
    ax.set_xticks(positions, layer_names)
    ax.set_xlabel("layer (0 = feature projection)")
    ax.set_ylabel("clip accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plot = output_dir / "probe_layers.png"
    fig.savefig(plot, dpi=120)
    plt.close(fig)
    return table, plot
