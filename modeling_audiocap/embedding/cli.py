"""`audiocap-embed`: the command-line face of `extract_embeddings`.

    audiocap-embed INPUTS... --encoder m-a-p/MERT-v1-95M --output_dir embeddings/ [--layers all|0,6,12]
        [--pooling mean|mean+std|frames] [--window_seconds 10] [--hop_seconds 5] [--batch_size 16]
        [--dtype auto|float32|bfloat16|float16] [--shard_size 256] [--num_workers N] [--device cpu|cuda]
        [--audio_column audio] [--id_column id] [--split train] [--streaming] [--overwrite] [--no_progress]

INPUTS: a folder, audio files, a `save_to_disk` directory or a Hub dataset id. Several processes:
`accelerate launch --multi_gpu --num_processes N -m modeling_audiocap.embedding.cli ...` or, on CPUs, `torchrun
--nproc_per_node N -m modeling_audiocap.embedding.cli ...` (each process claims the next shard when it gets free).
"""

import argparse
import logging
import sys

from .engine import DEFAULT_SHARD_SIZE, extract_embeddings
from .runtime import DTYPES, POOLINGS


def layers_argument(value: str):
    value = value.strip()
    if value == "all":
        return "all"
    return [int(part) for part in value.replace(",", " ").split()]


def add_run_arguments(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """The arguments every catalogue-scale command takes: where the tracks are and how they are read, how the run is
    split into shards and processes, and where it writes."""
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=batch_size)
    parser.add_argument("--shard_size", type=int, default=DEFAULT_SHARD_SIZE)
    parser.add_argument("--num_workers", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--audio_column", default="audio")
    parser.add_argument("--id_column", default="id")
    parser.add_argument("--split", default=None)
    parser.add_argument("--streaming", action="store_true",
                        help="read a parquet dataset (a .parquet file, a folder or a Hub id) where it lies, no copy")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in output_dir")
    parser.add_argument("--no_progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiocap-embed",
        description="Layer-wise embeddings of audio tracks with a pretrained encoder, written as a Hugging Face "
        "dataset (resumable: run the same command again to continue).",
    )
    parser.add_argument("inputs", nargs="+", help="a folder, audio files, a save_to_disk directory or a Hub dataset id")
    parser.add_argument("--encoder", required=True, help="Hub id / local checkpoint / audiocap model dir / short name")
    parser.add_argument("--window_seconds", type=float, default=10.0)
    parser.add_argument("--hop_seconds", type=float, default=None)
    parser.add_argument("--layers", type=layers_argument, default="all", help="'all' or indices such as 0,6,-1")
    parser.add_argument("--pooling", choices=POOLINGS, default="mean")
    parser.add_argument("--dtype", choices=DTYPES, default="auto")
    add_run_arguments(parser, batch_size=16)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
    dataset = extract_embeddings(
        inputs,
        args.encoder,
        args.output_dir,
        window_seconds=args.window_seconds,
        hop_seconds=args.hop_seconds,
        layers=args.layers,
        pooling=args.pooling,
        batch_size=args.batch_size,
        dtype=args.dtype,
        shard_size=args.shard_size,
        num_workers=args.num_workers,
        device=args.device,
        audio_column=args.audio_column,
        id_column=args.id_column,
        split=args.split,
        streaming=args.streaming,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(f"{len(dataset)} clips -> {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
