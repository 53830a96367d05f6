"""`audiocap-predict`: the command-line face of `predict_catalogue`.

    audiocap-predict INPUTS... --model runs/demo-genre [--model runs/demo-caption ...] --output_dir predictions/
        [--window_scores] [--embeddings] [--max_new_tokens N] [--num_beams N] [--batch_size 8] [--shard_size 256]
        [--num_workers N] [--device cpu|cuda] [--audio_column audio] [--id_column id] [--split train] [--streaming]
        [--overwrite] [--push_to_hub REPO_ID [--private] [--hub_revision BRANCH]] [--no_progress]

INPUTS: a folder, audio files, a `save_to_disk` directory or a Hub dataset id. Several processes:
`accelerate launch --multi_gpu --num_processes N -m modeling_audiocap.catalogue.cli ...` or, on CPUs, `torchrun
--nproc_per_node N -m modeling_audiocap.catalogue.cli ...` (each process claims the next shard when it gets free).
"""

import argparse
import logging
import sys

from ..embedding.cli import layers_argument, add_run_arguments
from ..hub import HubSettings
from .predict import predict_catalogue


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiocap-predict",
        description="Genre labels and scores, and captions, of every track of a catalogue by saved audiocap models, "
        "in one pass, written as a Hugging Face dataset (resumable: run the same command again to continue).",
    )
    parser.add_argument("inputs", nargs="+", help="a folder, audio files, a save_to_disk directory or a Hub dataset id")
    parser.add_argument("--model", action="append", required=True,
                        help="a saved audiocap genre model or captioner, or an encoder (folder, Hub id or short "
                        "name); repeat for several")
    parser.add_argument("--window_scores", action="store_true", help="also write each window's genre scores")
    parser.add_argument("--embeddings", action="store_true", help="also write each genre model's track embedding")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="captioners: longest caption")
    parser.add_argument("--num_beams", type=int, default=None, help="captioners: beam search width")
    parser.add_argument("--window_seconds", type=float, default=None, help="encoders: window (family default)")
    parser.add_argument("--layers", type=layers_argument, default="-1", help="encoders: 'all' or indices such as 0,6,-1")
    add_run_arguments(parser, batch_size=8)
    parser.add_argument("--push_to_hub", metavar="REPO_ID", default=None,
                        help="publish the dataset, with its card, to this Hub dataset repo")
    parser.add_argument("--private", action="store_true", help="a new Hub repo is private")
    parser.add_argument("--hub_revision", default=None, help="the branch to push to (created from main if missing)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    generation = {key: getattr(args, key) for key in ("max_new_tokens", "num_beams") if getattr(args, key) is not None}
    dataset = predict_catalogue(
        args.inputs[0] if len(args.inputs) == 1 else args.inputs,
        args.model,
        args.output_dir,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        num_workers=args.num_workers,
        device=args.device,
        window_scores=args.window_scores,
        embeddings=args.embeddings,
        generation=generation,
        window_seconds=args.window_seconds,
        layers=args.layers,
        audio_column=args.audio_column,
        id_column=args.id_column,
        split=args.split,
        streaming=args.streaming,
        overwrite=args.overwrite,
        push_to_hub=args.push_to_hub,
        hub=HubSettings(private=args.private or None, revision=args.hub_revision),
        progress=not args.no_progress,
    )
    print(f"{len(dataset)} tracks -> {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
