"""The catalogue command side by side with what a user does without it, and its scaling over processes.

- `run`: a folder of 10-s 44.1 kHz stereo WAV tracks through a genre model and a captioner (random weights: the
  demo's mel-CNN encoder, 3-s windows; the captioner at the published t5-small shape, greedy, every caption forced
  to 24 tokens so both ways do the same work) by
  (a) a loop of `pipeline("audio-classification")` and `pipeline("music-captioning")` calls, one file at a time;
  (b) `audiocap-predict` (both models in one pass), as one process and as two (`torchrun`), one thread each.
  Tracks per second once the models are loaded (the loop's pipelines are built before its clock starts; the
  command's start-up, imports and loading, is reported apart); the answers of (a) and (b) are compared file by
  file.
- `run_memory`: parquet datasets of 2,000 and 20,000 one-second clips (8 kHz WAV bytes in their rows, row groups of
  100) labelled by `audiocap-predict --streaming` (the genre model only), each in a fresh process: its peak memory
  (`ru_maxrss`, which the libraries' import sets), the peak of the resident memory sampled during the run above
  its value at the start (what the catalogue's size could change), and what it wrote to disk besides the output
  dataset.
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

ROOT = Path(__file__).resolve().parents[1]
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


MEMORY_SCRIPT = """
import json, resource, sys
import datasets, torch
from bench.common import PeakMemory
from modeling_audiocap.catalogue import predict_catalogue
datasets.config.HF_DATASETS_CACHE = sys.argv[4]
with PeakMemory(torch.device("cpu")) as run:
    predict_catalogue(sys.argv[1], [sys.argv[2]], sys.argv[3], streaming=True, batch_size=32, num_workers=0,
                      device="cpu", progress=False)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "run_peak_mib": run.peak_mib}))
"""


def write_parquet_clips(path: Path, clips: int, seconds: float = 1.0, rate: int = 8000, group: int = 100) -> None:
    """`clips` WAV clips as a parquet dataset's `audio` column (`{"bytes", "path"}`), written a row group at a time."""
    import io
    import wave

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .extraction import music_like

    sounds = []
    for seed in range(8):  # a few distinct clips, repeated: the content does not matter to memory
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(rate)
            f.writeframes((np.clip(music_like(seconds, rate, seed), -1, 1) * 32767).astype("<i2").tobytes())
        sounds.append(buffer.getvalue())
    writer = None
    try:
        for start in range(0, clips, group):
            rows = [{"bytes": sounds[i % len(sounds)], "path": f"clip{i:06d}.wav"} for i in range(start, min(clips, start + group))]
            table = pa.table({"audio": pa.array(rows)})
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_memory(sizes: tuple[int, ...] = (2000, 20000), log=print) -> dict:
    results = {"clips": list(sizes), "clip_seconds": 1.0, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        genre, _ = save_models(root, tokens=1, window_seconds=1.0)
        for size in sizes:
            data = root / f"clips-{size}.parquet"
            write_parquet_clips(data, size)
            out, cache = root / f"out-{size}", root / f"cache-{size}"
            env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(data), str(genre), str(out), str(cache)],
                                  check=True, capture_output=True, text=True, env=env, timeout=3600, cwd=ROOT)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row.update(clips=size, seconds=time.perf_counter() - start, input_mib=data.stat().st_size / 2**20,
                       output_mib=_folder_bytes(out) / 2**20,
                       cache_mib=_folder_bytes(cache) / 2**20 if cache.exists() else 0.0)
            results["rows"].append(row)
            log(f"  {size} clips: peak {row['peak_rss_mib']:.0f} MiB, during the run +{row['run_peak_mib']:.0f} MiB, "
                f"{row['seconds']:.0f} s, cache {row['cache_mib']:.1f} MiB")
    first, last = results["rows"][0], results["rows"][-1]
    results["peak_memory_ratio"] = last["peak_rss_mib"] / first["peak_rss_mib"]
    results["run_peak_memory_ratio"] = last["run_peak_mib"] / first["run_peak_mib"]
    return results


if __name__ == "__main__":
    print(json.dumps({"speed": run(), "memory": run_memory()}, indent=2))
