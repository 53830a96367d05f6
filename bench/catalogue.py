"""The catalogue command side by side with what a user does without it, and its scaling over processes.

- `run`: a folder of 10-s 44.1 kHz stereo WAV tracks through a genre model and a captioner (random weights: the
  demo's mel-CNN encoder, 3-s windows; the captioner at the published t5-small shape, greedy, every caption forced
  to 24 tokens so both ways do the same work) by
  (a) a loop of `pipeline("audio-classification")` and `pipeline("music-captioning")` calls, one file at a time;
  (b) `audiocap-predict` (both models in one pass), as one process and as two (`torchrun`), one thread each.
  Tracks per second once the models are loaded (the loop's pipelines are built before its clock starts; the
  command's start-up, imports and loading, is reported apart); the answers of (a) and (b) are compared file by
  file.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import pipeline

from modeling_audiocap import (
    AudioCapFeatureExtractor,
    AudioCapProcessor,
    AudioCaptionConfig,
    AudioEncoderForGenreClassification,
    AudioEncoderT5ForCaptioning,
    AudioGenreClassificationPipeline,
    MusicCaptioningPipeline,
    resolve_encoder,
)

from .captioning import T5_SMALL
from .pipeline import write_track

LABELS = ["ambient", "classical", "electronic", "jazz", "reggae", "rock"]


def word_tokenizer(size: int):
    """A word-level tokenizer over the whole T5 vocabulary (pad, end, unknown, then `w3`...), built in code."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(3, size)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def save_models(folder: Path, tokens: int, window_seconds: float = 3.0) -> tuple[Path, Path]:
    torch.manual_seed(0)
    resolved = resolve_encoder("audiocap/melcnn")
    genre = AudioEncoderForGenreClassification.from_encoder_pretrained(
        resolved, dict(enumerate(LABELS)), window_seconds=window_seconds
    )
    genre.save_pretrained(folder / "genre")
    AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=window_seconds).save_pretrained(folder / "genre")
    config = AudioCaptionConfig(encoder=resolved.config, text_config=T5_SMALL, sampling_rate=resolved.sampling_rate,
                                window_seconds=window_seconds)
    captioner = AudioEncoderT5ForCaptioning(config)
    captioner.generation_config.update(min_new_tokens=tokens, max_new_tokens=tokens)
    captioner.save_pretrained(folder / "captioner")
    processor = AudioCapProcessor(resolved.feature_extractor, word_tokenizer(T5_SMALL.vocab_size),
                                  window_seconds=window_seconds)
    processor.save_pretrained(folder / "captioner")
    return folder / "genre", folder / "captioner"


def _pipeline_loop(files: list[Path], genre: Path, captioner: Path) -> tuple[float, dict]:
    torch.set_num_threads(1)
    classify = pipeline("audio-classification", model=str(genre), pipeline_class=AudioGenreClassificationPipeline)
    describe = pipeline("music-captioning", model=str(captioner), pipeline_class=MusicCaptioningPipeline)
    answers = {}
    start = time.perf_counter()
    for path in files:
        answers[str(path)] = (classify(str(path), top_k=1)[0]["label"], describe(str(path))[0]["generated_text"])
    return time.perf_counter() - start, answers


def _command(folder: Path, genre: Path, captioner: Path, out: Path, processes: int) -> tuple[float, float]:
    """The command's wall time, and its run time once the models are loaded (`run_seconds`)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    args = [
        *(launcher if processes > 1 else [sys.executable]), "-m", "modeling_audiocap.catalogue.cli", str(folder),
        "--model", str(genre), "--model", str(captioner), "--output_dir", str(out), "--device", "cpu",
        "--batch_size", "16", "--shard_size", "16", "--num_workers", "0", "--no_progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=1800)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "predict_config.json").read_text())["run_seconds"]


def run(tracks: int = 64, seconds: float = 10.0, tokens: int = 24, log=print) -> dict:
    import datasets

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "music").mkdir()
        files = []
        for i in range(tracks):
            files.append(root / "music" / f"track{i:04d}.wav")
            write_track(files[-1], seconds, seed=i)
        genre, captioner = save_models(root, tokens)
        threads = torch.get_num_threads()
        try:
            loop_seconds, answers = _pipeline_loop(files, genre, captioner)
        finally:
            torch.set_num_threads(threads)
        one = _command(root / "music", genre, captioner, root / "one", 1)
        two = _command(root / "music", genre, captioner, root / "two", 2)
        rows = datasets.load_from_disk(str(root / "one"))
        names = rows.features["genre_label"].names
        agree = sum(
            answers[row["path"]] == (names[row["genre_label"]], row["captioner_caption"]) for row in rows
        ) / len(rows)
        same = rows.to_dict() == datasets.load_from_disk(str(root / "two")).to_dict()
    results = {
        "tracks": tracks,
        "seconds_per_track": seconds,
        "caption_tokens": tokens,
        "pipeline_loop_tracks_per_s": tracks / loop_seconds,
        "catalogue_tracks_per_s": tracks / one[1],
        "catalogue_2_processes_tracks_per_s": tracks / two[1],
        "catalogue_over_pipeline_loop": loop_seconds / one[1],
        "two_processes_over_one": one[1] / two[1],
        "start_up_seconds": {"1 process": one[0] - one[1], "2 processes": two[0] - two[1]},
        "answers_equal_to_the_pipelines": agree,
        "two_processes_equal_one": same,
    }
    log(f"  pipeline loop {results['pipeline_loop_tracks_per_s']:.2f} tracks/s, catalogue "
        f"{results['catalogue_tracks_per_s']:.2f} (x{results['catalogue_over_pipeline_loop']:.2f}), 2 processes "
        f"{results['catalogue_2_processes_tracks_per_s']:.2f} (x{results['two_processes_over_one']:.2f}); answers equal "
        f"{agree:.2f}")
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
