"""`audiocap-probe`: probe encoders on every task of a list of run configs, and compare them in one table.

    audiocap-probe --encoder m-a-p/MERT-v1-95M --encoder facebook/wav2vec2-base \\
        --task configs/mtt-mert-frozen.yaml --task configs/emo-mert-frozen.yaml --seeds 0,1,2 --output_dir runs/probe

A task is a `train_genre.py` config: its dataset, label column(s), split protocol and windows (arguments after `--`
override every task's config, as on `train_genre.py`'s command line). Each encoder (a Hub id, a folder or a saved
audiocap model) replaces the config's encoder (and its config overrides and revision) and runs frozen: its layer-wise embeddings of the task's clips are
computed once and cached (the config's `embedding_cache_dir`, keyed by encoder, preprocessing and data: a second run
reuses every one), then a probe per layer and the learned layer weighting are fitted per seed (`probe.probe_sweep`),
and `<output_dir>/<encoder>/<task>/probe_layers.{md,png,json}` are written. The comparison:

- `probe_suite.md` / `.json`: per task and encoder, the layer with the best validation score and its test score,
  and the learned weighting's test score, mean ± std over the seeds, in the task's own metric (accuracy, ROC-AUC, R²);
- `probe_suite.png`: the test score of every layer, tasks x layers, an encoder per panel.
"""

import argparse
import logging
from pathlib import Path

import numpy as np
from transformers import TrainingArguments

from ..embedding.output import atomic_write_json
from ..hub import package_versions
from .arguments import AudioDataArguments, EncoderArguments, GenreArguments, parse_with_config
from .clip_runs import sweep_layers, write_probe_report
from .plots import plt
from .probe import cell

logger = logging.getLogger(__name__)
# the task config's settings of its own encoder, which do not apply to the probed ones (set them after `--`)
ENCODER_RESET = ("--encoder_config_overrides", "", "--model_revision", "main")


def slug(name: str) -> str:
    """A folder name for an encoder id or path."""
    return name.strip("/").replace("/", "--")


def probe_task(encoder: str, config: Path, overrides: list[str], seeds: list[int], layers: list[int] | None,
               output_dir: Path) -> dict:
    """One encoder on one task config: the sweep's report (`clip_runs.write_probe_report`)."""
    enc_args, genre_args, data_args, training_args = parse_with_config(
        (EncoderArguments, GenreArguments, AudioDataArguments, TrainingArguments),
        ["--config", str(config), *ENCODER_RESET, *overrides, "--encoder_name_or_path", encoder,
         "--encoder_mode", "frozen", "--output_dir", str(output_dir), "--report_to", "none"],
    )
    task, sweeps = sweep_layers(enc_args, genre_args, data_args, training_args, seeds, layers)
    return write_probe_report(output_dir, task, sweeps, enc_args, data_args)


def best_layer(summary: dict) -> tuple[str, str]:
    """The layer with the best validation score (the test score where there is no validation split), and which
    split chose it."""
    layers = [name for name in summary if name != "weighted"]
    split = "validation" if summary[layers[0]].get("validation_mean") is not None else "test"
    scores = {name: summary[name][f"{split}_mean"] for name in layers if summary[name][f"{split}_mean"] is not None}
    return max(scores, key=scores.get), split


def comparison(reports: dict[str, dict[str, dict]], encoders: list[str]) -> dict:
    """Per task (its metric) and encoder: the best layer, its test score and the weighting's, mean and std."""
    tasks = {}
    for task, by_encoder in reports.items():
        first = next(iter(by_encoder.values()))
        entry = {"metric": first["headline"], "problem_type": first["problem_type"], "dataset": first["dataset"],
                 "encoders": {}}
        for encoder in encoders:
            summary = by_encoder[encoder]["summary"]
            layer, chosen_on = best_layer(summary)
            entry["encoders"][encoder] = {
                "best_layer": layer, "chosen_on": chosen_on,
                "best_layer_test": {k: summary[layer][f"test_{k}"] for k in ("mean", "std")},
                "weighted_test": {k: summary["weighted"][f"test_{k}"] for k in ("mean", "std")},
                "layers_test": {name: row["test_mean"] for name, row in summary.items() if name != "weighted"},
            }
        tasks[task] = entry
    return tasks


def write_comparison(tasks: dict, encoders: list[str], seeds: list[int], output_dir: Path) -> tuple[Path, Path, Path]:
    """`probe_suite.md`, `probe_suite.json` and `probe_suite.png` in `output_dir`."""
    lines = [f"Frozen probes, test clips, mean ± std over seeds {seeds}: per encoder, the layer with the best validation "
             "score (its test score) and the learned weighting of all layers.", "",
             "| task | metric | " + " | ".join(f"{e}: best layer | {e}: weighting" for e in encoders) + " |",
             "| --- | --- |" + " --- | --- |" * len(encoders)]
    for task, entry in tasks.items():
        cells = []
        for encoder in encoders:
            row = entry["encoders"][encoder]
            best = {"test_mean": row["best_layer_test"]["mean"], "test_std": row["best_layer_test"]["std"]}
            weighted = {"test_mean": row["weighted_test"]["mean"], "test_std": row["weighted_test"]["std"]}
            cells += [f"{cell(best, 'test')} (layer {row['best_layer']})", cell(weighted, "test")]
        lines.append(f"| {task} | {entry['metric']} | " + " | ".join(cells) + " |")
    table = output_dir / "probe_suite.md"
    table.write_text("\n".join(lines) + "\n")
    report = output_dir / "probe_suite.json"
    atomic_write_json(report, {"encoders": encoders, "seeds": seeds, "tasks": tasks, "versions": package_versions()},
                      sort_keys=False)
    fig, axes = plt.subplots(1, len(encoders), figsize=(5.5 * len(encoders), 1.2 + 0.6 * len(tasks)), squeeze=False)
    for ax, encoder in zip(axes[0], encoders):
        names = list(next(iter(tasks.values()))["encoders"][encoder]["layers_test"])
        grid = np.array([[np.nan if (v := entry["encoders"][encoder]["layers_test"][n]) is None else v for n in names]
                         for entry in tasks.values()])
        ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, "" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=7, color="white")
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(tasks)), [f"{task} ({entry['metric']})" for task, entry in tasks.items()])
        ax.set_xlabel("layer (0 = feature projection)")
        ax.set_title(encoder, fontsize=9)
    fig.tight_layout()
    plot = output_dir / "probe_suite.png"
    fig.savefig(plot, dpi=120)
    plt.close(fig)
    return table, report, plot


def run_suite(encoders: list[str], configs: list[Path], seeds: list[int], output_dir: Path,
              layers: list[int] | None = None, overrides: list[str] | None = None) -> dict:
    """Every encoder on every task config; the comparison written to `output_dir` and returned (per task)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict[str, dict]] = {}
    for config in configs:
        for encoder in encoders:
            logger.info("Probing %s on %s", encoder, config.stem)
            reports.setdefault(config.stem, {})[encoder] = probe_task(
                encoder, config, overrides or [], seeds, layers, output_dir / slug(encoder) / config.stem)
    tasks = comparison(reports, encoders)
    table, _, plot = write_comparison(tasks, encoders, seeds, output_dir)
    logger.info("Probe suite written to %s and %s:\n%s", table, plot, table.read_text())
    return tasks


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="audiocap-probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", action="append", required=True, help="An encoder to probe (repeat for several).")
    parser.add_argument("--task", action="append", required=True, type=Path,
                        help="A train_genre.py run config: the task (repeat for several).")
    parser.add_argument("--seeds", default="0", help="Comma-separated seeds (e.g. 0,1,2).")
    parser.add_argument("--layers", default="all", help="'all' or the layers to probe, e.g. 0,4,8.")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/probe-suite"))
    args, overrides = parser.parse_known_args(argv)
    overrides = [value for value in overrides if value != "--"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    layers = None if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    return run_suite(args.encoder, args.task, [int(x) for x in args.seeds.split(",")], args.output_dir, layers, overrides)


if __name__ == "__main__":
    main()
