"""`make demo`, last step (`python -m modeling_audiocap.demo`): load the trained models like any Hub model; classify
and caption held-out clips."""

import argparse
import csv
import json
import logging
from pathlib import Path

from transformers import pipeline

logger = logging.getLogger("audiocap.demo")


def held_out_clips(data_dir: Path, count: int) -> list[dict]:
    """The first `count` test clips of the built-in set (metadata rows with `path`), one genre after another."""
    with open(data_dir / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    by_genre: dict[str, list[dict]] = {}
    for row in rows:
        by_genre.setdefault(row["genre"], []).append(row)
    picked = [group[i] for i in range(max(map(len, by_genre.values()))) for group in by_genre.values() if i < len(group)]
    return [{**r, "path": data_dir / r["file_name"]} for r in picked[:count]]


def caption_report(genre_dir: Path, caption_dir: Path) -> list[str]:
    """The captioner's attribute accuracy on the test clips beside chance and the classifier's genre accuracy."""
    genre_test = json.loads((genre_dir / "results.json").read_text())["test"]
    test = json.loads((caption_dir / "results.json").read_text())["test"]
    lines = ["", "Caption quality on the test clips (full results: %s/results.json):" % caption_dir,
             f"  {'attribute':<11} {'captions':>8} {'chance':>7}"]
    for name in ("genre", "tempo", "mode", "instrument", "drums"):
        if f"{name}_accuracy" in test:
            lines.append(f"  {name:<11} {test[f'{name}_accuracy']:>8.2f} {test[f'chance_{name}']:>7.2f}")
    lines.append(f"  genre accuracy of the classifier on the same clips: {genre_test['accuracy']:.2f}")
    if test.get("tempo_bpm_error") is not None:
        lines.append(f"  tempo error {test['tempo_bpm_error']:.1f} bpm in the {test['tempo_bpm_stated']:.0%} of captions "
                     "that state one")
    lines.append(f"  distinct captions: {test['distinct_captions']:.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m modeling_audiocap.demo", description=__doc__)
    parser.add_argument("--model_dir", default="runs/demo-genre")
    parser.add_argument("--caption_model_dir", default="runs/demo-caption")
    parser.add_argument("--data_dir", default="runs/data/music-set")
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    classifier = pipeline("audio-classification", model=args.model_dir, trust_remote_code=True)
    clips = held_out_clips(Path(args.data_dir), args.count)
    correct = 0
    logger.info("Genre classifier (%s) on held-out clips:", args.model_dir)
    for clip in clips:
        path, genre = clip["path"], clip["genre"]
        top = classifier(str(path), top_k=2)
        correct += top[0]["label"] == genre
        logger.info(
            "%-28s true: %-10s predicted: %-10s (%.2f; next %s %.2f)",
            path.name, genre, top[0]["label"], top[0]["score"], top[1]["label"], top[1]["score"],
        )
    logger.info("%d of %d held-out clips right (full test results: %s/results.json)", correct, len(clips), args.model_dir)
    if Path(args.caption_model_dir, "config.json").is_file():
        captioner = pipeline("music-captioning", model=args.caption_model_dir, trust_remote_code=True)
        logger.info("\nCaptioner (%s) on the same clips:", args.caption_model_dir)
        for clip in clips:
            logger.info("%s\n  generated: %s\n  reference: %s", clip["path"].name,
                        captioner(str(clip["path"]))[0]["generated_text"], clip["caption"])
        if Path(args.caption_model_dir, "results.json").is_file():
            logger.info("\n".join(caption_report(Path(args.model_dir), Path(args.caption_model_dir))))
