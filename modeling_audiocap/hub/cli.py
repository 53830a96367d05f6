"""`audiocap-push`: publish a finished run directory exactly as `--push_to_hub` would.

    audiocap-push RUN_DIR --hub_model_id user/name [--private] [--revision BRANCH] [--token hf_...]
        [--commit_message TEXT]

Uploads the model, processor, code, card, plots and results.json; never `checkpoint-*`, `runs/` or
`training_args.bin`. Without `--token` the login (`hf auth login`) or `HF_TOKEN` is used.
"""

import argparse
import logging
import sys
from pathlib import Path

from .push import HubSettings, push_folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiocap-push",
        description="Upload a finished audiocap run to the Hugging Face Hub, checkpoints excluded.",
    )
    parser.add_argument("run_dir", type=Path, help="the run's output_dir (holds config.json, results.json, README.md)")
    parser.add_argument("--hub_model_id", required=True, help="the repo to push to, e.g. user/audiocap-genre")
    parser.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    parser.add_argument("--revision", default=None, help="branch to upload to (created from main if missing)")
    parser.add_argument("--token", default=None, help="a Hub token with write access (default: the login or HF_TOKEN)")
    parser.add_argument("--commit_message", default=None, help="default: 'Upload audiocap run RUN_DIR'")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Push `run_dir`; returns the exit status (0 pushed, 1 the push failed and the log says why)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.run_dir / "config.json").is_file():
        parser.error(f"{args.run_dir} is not a finished run: expected {args.run_dir / 'config.json'}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = HubSettings(private=True if args.private else None, revision=args.revision, token=args.token)
    message = args.commit_message or f"Upload audiocap run {args.run_dir.resolve().name}"
    return 0 if push_folder(args.run_dir, args.hub_model_id, message, settings) else 1


if __name__ == "__main__":
    sys.exit(main())
