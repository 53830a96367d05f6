"""`make demo`, last step: load the trained genre model like any Hub model and classify held-out clips."""

import argparse
import csv
import logging
from pathlib import Path

from transformers import pipeline

logger = logging.getLogger("audiocap.demo")


def held_out_clips(data_dir: Path, count: int) -> list[tuple[Path, str]]:
    """The first `count` test clips of the built-in set, one genre after another."""
    with open(data_dir / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    by_genre: dict[str, list[dict]] = {}
    for row in rows:
        by_genre.setdefault(row["genre"], []).append(row)
    picked = [group[i] for i in range(max(map(len, by_genre.values()))) for group in by_genre.values() if i < len(group)]
    return [(data_dir / r["file_name"], r["genre"]) for r in picked[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", default="runs/demo-genre")
    parser.add_argument("--data_dir", default="runs/data/music-set")
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    classifier = pipeline("audio-classification", model=args.model_dir, trust_remote_code=True)
    clips = held_out_clips(Path(args.data_dir), args.count)
    correct = 0
    for path, genre in clips:
        top = classifier(str(path), top_k=2)
        correct += top[0]["label"] == genre
        logger.info(
            "%-28s true: %-10s predicted: %-10s (%.2f; next %s %.2f)",
            path.name, genre, top[0]["label"], top[0]["score"], top[1]["label"], top[1]["score"],
        )
    logger.info("%d of %d held-out clips right (full test results: %s/results.json)", correct, len(clips), args.model_dir)


if __name__ == "__main__":
    main()
