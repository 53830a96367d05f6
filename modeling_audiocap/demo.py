"""`make demo`, last step: load the trained models like any Hub model; classify and caption held-out clips."""

import argparse
import csv
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
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


if __name__ == "__main__":
    main()
