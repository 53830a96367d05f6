"""`make demo-tags`, last step (`python -m modeling_audiocap.demo.tasks`): load the trained tagger and tempo regressor
like any Hub model; tag held-out clips and predict their tempo; print the test scores beside a model without audio."""

import argparse
import json
import logging
from pathlib import Path

from transformers import pipeline

from . import held_out_clips

logger = logging.getLogger("audiocap.demo")
TAG_COLUMNS = ("genre", "instrument", "drums", "mode")


def score_table(tagger_dir: Path, regressor_dir: Path) -> list[str]:
    """The test split's scores of both models beside their no-audio baselines (`prior_baseline`), as markdown."""
    tags = json.loads((tagger_dir / "results.json").read_text())
    tempo = json.loads((regressor_dir / "results.json").read_text())
    lines = ["| model (test clips) | ROC-AUC | PR-AUC | micro-F1 | R² | MAE (bpm) |", "| --- | --- | --- | --- | --- | --- |"]
    for name, row in (("tagger", tags["test"]), ("tags without audio (training rates)", tags["prior_baseline"])):
        lines.append(f"| {name} | {row['roc_auc']:.3f} | {row['pr_auc']:.3f} | {row['micro_f1']:.3f} | | |")
    for name, row in (("tempo regressor", tempo["test"]), ("tempo without audio (training mean)", tempo["prior_baseline"])):
        lines.append(f"| {name} | | | | {row['r2']:.3f} | {row['mae']:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m modeling_audiocap.demo.tasks", description=__doc__)
    parser.add_argument("--tagger_dir", default="runs/demo-tags")
    parser.add_argument("--regressor_dir", default="runs/demo-tempo")
    parser.add_argument("--data_dir", default="runs/data/music-set")
    parser.add_argument("--count", type=int, default=6)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tagger = pipeline("audio-classification", model=args.tagger_dir, trust_remote_code=True)
    regressor = pipeline("audio-classification", model=args.regressor_dir, trust_remote_code=True)
    logger.info("Tagger (%s) and tempo regressor (%s) on held-out clips:", args.tagger_dir, args.regressor_dir)
    for clip in held_out_clips(Path(args.data_dir), args.count):
        true_tags = [clip[c] for c in TAG_COLUMNS]
        top = tagger(str(clip["path"]), top_k=len(true_tags))
        bpm = regressor(str(clip["path"]))[0]["score"]
        logger.info("%-28s tags %-45s predicted %s\n%28s tempo %.0f bpm, predicted %.0f", clip["path"].name,
                    ", ".join(true_tags), ", ".join(f"{t['label']} {t['score']:.2f}" for t in top), "",
                    float(clip["tempo_bpm"]), bpm)
    logger.info("\n%s", "\n".join(score_table(Path(args.tagger_dir), Path(args.regressor_dir))))


if __name__ == "__main__":
    main()
