"""Per-layer probe sweep on cached layer-wise embeddings: which encoder layer knows the genre best?

For each layer a logistic-regression probe (standardised features, scikit-learn) is fitted on the training windows;
beside them, a learned layer weighting with a linear classifier trains on all layers. Clips are scored by the mean
of their windows' probabilities. Run over several seeds, each layer gets a mean and a standard deviation.
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..analysis import plt
from ..modeling_audiocap import LayerWeighting
from .genre_data import clip_level


def _clip_accuracy(scores: np.ndarray, labels: np.ndarray, clips: np.ndarray) -> float:
    clip_scores, clip_labels, _ = clip_level(scores, labels, clips)
    return float((clip_scores.argmax(-1) == clip_labels).mean())


def _arrays(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.stack(rows["layer_embeddings"]).astype(np.float32), np.asarray(rows["label"]), np.asarray(rows["clip_index"]))


def _weighted_probe(train, evals: dict, num_labels: int, seed: int, epochs: int = 200) -> dict[str, float]:
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
            out[split] = _clip_accuracy(logits.softmax(-1).numpy(), ey, eclips)
        out["layer_weights"] = weighting.weight.flatten().tolist()
    return out


def probe_sweep(windows: dict, num_labels: int, seed: int, layers: list[int] | None = None) -> dict:
    """Validation and test clip accuracy of a probe on each layer, and of the learned weighting of all layers."""
    train = _arrays(windows["train"])
    evals = {split: _arrays(windows[split]) for split in ("validation", "test")}
    layers = list(range(train[0].shape[1])) if layers is None else layers
    result: dict = {"layers": {}}
    for layer in layers:
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        probe.fit(train[0][:, layer], train[1])
        result["layers"][layer] = {
            split: _clip_accuracy(probe.predict_proba(x[:, layer]), y, clips) for split, (x, y, clips) in evals.items()
        }
    result["weighted"] = _weighted_probe(train, evals, num_labels, seed)
    return result


def summarize_sweeps(sweeps: list[dict]) -> dict:
    """Mean and standard deviation over seeds for every layer and for the weighting."""
    names = [str(layer) for layer in sweeps[0]["layers"]] + ["weighted"]
    summary = {}
    for name in names:
        runs = [s["weighted"] if name == "weighted" else s["layers"][int(name)] for s in sweeps]
        summary[name] = {
            f"{split}_{stat}": float(fn([r[split] for r in runs]))
            for split in ("validation", "test")
            for stat, fn in (("mean", np.mean), ("std", np.std))
        }
    return summary


def write_sweep_report(summary: dict, seeds: list[int], output_dir: Path) -> tuple[Path, Path]:
    """`probe_layers.md` (a table) and `probe_layers.png` (accuracy per layer with seed std as error bars)."""
    lines = [f"Per-layer probes, mean ± std over seeds {seeds}.", "", "| layer | validation | test |", "| --- | --- | --- |"]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {row['validation_mean']:.4f} ± {row['validation_std']:.4f} | {row['test_mean']:.4f} ± {row['test_std']:.4f} |"
        )
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
