"""End to end on files, side by side: a naive loop against `extract_embeddings`, and peak memory on long tracks.

- `run_files`: a folder of 44.1 kHz stereo WAV tracks embedded with wav2vec2-base (random weights) by
  (a) the naive loop: `load_audio` each file whole, cut windows, one window at a time through plain transformers
      with every hidden state kept (`encode_layers` under `torch.no_grad`), mean-pool;
  (b) `extract_embeddings` (decoding in the main process, `num_workers=0`), and
  (c) `extract_embeddings` with one DataLoader decoding worker (decoding overlapping the encoder).
  Audio seconds per wall second, including decoding, resampling and (for the engine) writing the dataset; on a CPU
  peak memory in a fresh process after the timed runs (`cpu_files_peak_memory`).
- `run_long_tracks`: peak memory (RSS high-water mark above the RSS before the run, `/proc/self/status` VmHWM reset
  through `/proc/self/clear_refs`; in a fresh process for each way, glibc returning freed blocks) for a
  3-minute and a 30-minute 44.1 kHz stereo track, `extract_embeddings` (streamed decoding) against the naive way
  (`load_audio` of the whole track, then its windows). A tiny encoder is used here: the encoder's own memory is per
  batch and does not depend on the track's length, and a real-size encoder would take ~10 minutes per 30-minute
  track on a 2-core CPU.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from modeling_audiocap import extract_embeddings, load_audio, resolve_encoder, window_starts
from modeling_audiocap.embedding.runtime import load_encoder
from modeling_audiocap.modeling_audiocap import mean_pool
from modeling_audiocap.encoder_families import encoder_family
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor

from .common import PeakMemory, in_fresh_process, sync
from .configs import wav2vec2_base
from .extraction import music_like

SOURCE_RATE = 44100


def write_track(path: Path, seconds: float, seed: int = 0, rate: int = SOURCE_RATE) -> None:
    """A stereo 16-bit WAV, written a minute at a time (long tracks repeat a few distinct minutes)."""
    minutes = {}
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(rate)
        remaining, chunk = seconds, 0
        while remaining > 0:
            part = min(60.0, remaining)
            key = (chunk % 3, part)
            if key not in minutes:
                mono = music_like(part, rate, seed + chunk)
                minutes[key] = (np.stack([mono, mono[::-1]], axis=1) * 32767).astype("<i2").tobytes()
            f.writeframes(minutes[key])
            remaining -= part
            chunk += 1


def naive_files(files: list[Path], loaded, window_seconds: float, device: torch.device) -> list[np.ndarray]:
    processor = AudioCapFeatureExtractor(loaded.feature_extractor)
    window = int(round(window_seconds * loaded.sampling_rate))
    out = []
    for path in files:
        wave_ = load_audio(str(path), loaded.sampling_rate)
        pooled = []
        for start in window_starts(wave_.shape[0], window):
            features = processor.featurize([wave_[start : start + window]])
            inputs = features.pop("input_values").to(device)
            mask = features.pop("attention_mask", None)
            with torch.no_grad():
                hidden, frame_mask, _ = encoder_family(loaded.config).encode_layers(loaded.model, inputs, mask)
                pooled.append(mean_pool(hidden, frame_mask).cpu())
        out.append(torch.cat(pooled).numpy())
    return out


RUNS = [("naive loop (plain transformers, one window at a time, fp32)", None),
        ("extract_embeddings, num_workers=0", 0),
        ("extract_embeddings, num_workers=1", 1)]


def _files_setup(device: torch.device) -> tuple[object, tuple[int, float, float, int]]:
    """wav2vec2-base (random weights, seed 0) on `device`, and (files, seconds, window, batch) for that device."""
    torch.manual_seed(0)
    loaded = load_encoder(resolve_encoder(wav2vec2_base()))
    loaded.model.eval().to(device)
    return loaded, (6, 8.0, 4.0, 16) if device.type == "cpu" else (64, 30.0, 10.0, 64)


def _embed_files(files: list[Path], loaded, workers: int | None, out: Path, window: float, batch: int,
                 device: torch.device) -> list[np.ndarray]:
    """One way of `RUNS`: the naive loop (`workers` None) or `extract_embeddings` with `workers` decoding workers."""
    if workers is None:
        return naive_files(files, loaded, window, device)
    ds = extract_embeddings(files, loaded, out, window_seconds=window, batch_size=batch, device=device,
                            num_workers=workers, progress=False, dtype="auto").with_format("numpy")
    return list(ds["embeddings"])


def _warm_up_files(files: list[Path], loaded, tmp: Path, window: float, batch: int, device: torch.device) -> None:
    naive_files(files[:1], loaded, window, device)
    extract_embeddings(files[:1], loaded, tmp / "warm", window_seconds=window, batch_size=batch, device=device,
                       num_workers=0, progress=False, dtype="float32")


def cpu_files_peak_memory(folder: str) -> dict[str, float]:
    """Peak memory of each way of `RUNS` over the tracks in `folder`, after a warm-up; run through `in_fresh_process`,
    so that the resident memory follows live memory."""
    device = torch.device("cpu")
    loaded, (_, _, window, batch) = _files_setup(device)
    files = sorted(Path(folder).glob("*.wav"))
    with tempfile.TemporaryDirectory() as tmp:
        _warm_up_files(files, loaded, Path(tmp), window, batch, device)
        peaks = {}
        for label, workers in RUNS:
            with PeakMemory(device) as memory:
                _embed_files(files, loaded, workers, Path(tmp) / f"out{workers}", window, batch, device)
            peaks[label] = memory.peak_mib
    return peaks


def run_files(device: torch.device, deadline: float, rounds: int = 3, log=print) -> dict:
    """Each way of `RUNS` once per round, naive first; a way's rate is its median over the rounds and its speed-up
    the median of its per-round ratios to the naive run of the same round. Rounds stop at `deadline`."""
    loaded, (num_files, seconds, window, batch) = _files_setup(device)
    results = {"encoder": "wav2vec2-base", "files": num_files, "track_seconds": seconds, "window_seconds": window,
               "batch_size": batch, "source": f"{SOURCE_RATE} Hz stereo WAV, resampled to 16 kHz", "rows": []}
    audio = num_files * seconds
    times = {label: [] for label, _ in RUNS}
    peaks, differences = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tracks"
        folder.mkdir()
        files = [folder / f"track{i:03d}.wav" for i in range(num_files)]
        for i, path in enumerate(files):
            write_track(path, seconds, seed=i)
        _warm_up_files(files, loaded, Path(tmp), window, batch, device)
        reference = None
        for round_index in range(rounds):
            if times[RUNS[0][0]] and time.perf_counter() + sum(t[-1] for t in times.values()) * 1.2 > deadline:
                break
            for label, workers in RUNS:
                sync(device)
                start = time.perf_counter()
                with PeakMemory(device) if device.type == "cuda" else nullcontext() as memory:
                    out = Path(tmp) / f"out{workers}-{round_index}"
                    embeddings = _embed_files(files, loaded, workers, out, window, batch, device)
                sync(device)
                times[label].append(time.perf_counter() - start)
                if memory:
                    peaks[label] = max(peaks.get(label, 0.0), memory.peak_mib)
                if workers is None:
                    reference = embeddings
                else:
                    differences[label] = float(max(np.abs(a - b).max() for a, b in zip(reference, embeddings)))
                log(f"    round {round_index + 1}: {label}: {audio / times[label][-1]:.2f} audio s/s")
        if device.type == "cpu":
            peaks = in_fresh_process("bench.pipeline:cpu_files_peak_memory", str(folder))
    naive = times[RUNS[0][0]]
    for label, workers in RUNS:
        ratios = [n / t for n, t in zip(naive, times[label])]
        row = {"run": label, "rounds": len(times[label]), "seconds": float(np.median(times[label])),
               "audio_seconds_per_second": audio / float(np.median(times[label])), "peak_memory_mib": peaks.get(label)}
        if workers is not None:
            row.update(speedup_vs_naive=float(np.median(ratios)), speedup_range=[min(ratios), max(ratios)],
                       max_abs_difference_vs_naive=differences[label])
        results["rows"].append(row)
    loaded.model.to("cpu")
    return results


LONG_TRACK_CHILD = """
import json, os, sys, time
import torch
sys.path.insert(0, {root!r})
from bench.common import peak_mib, reset_peak, rss_mib, set_malloc_mmap_threshold
set_malloc_mmap_threshold()
from transformers import Wav2Vec2Config
from modeling_audiocap import extract_embeddings, load_audio, resolve_encoder, window_starts
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor
mode, folder = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(16, 16, 16), conv_stride=(10, 8, 8), conv_kernel=(10, 8, 8),
                        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=16)
encoder = resolve_encoder(config)
if mode == "pipeline":  # a genre model with nothing set but its encoder, served by pipeline()
    from transformers import pipeline
    from modeling_audiocap import AudioEncoderForGenreClassification
    from modeling_audiocap.pipelines import AudioGenreClassificationPipeline
    model_dir = os.path.join(folder, "genre-model")
    AudioEncoderForGenreClassification.from_encoder_pretrained(config, {{0: "a", 1: "b"}}).save_pretrained(model_dir)
    encoder.feature_extractor.save_pretrained(model_dir)
    classify = pipeline("audio-classification", model=model_dir, pipeline_class=AudioGenreClassificationPipeline)
    classify(os.path.join(folder, "warm.wav"))
# warm up decoding, resampling and the encoder on a short file so that their libraries are loaded before measuring
extract_embeddings([os.path.join(folder, "warm.wav")], encoder, os.path.join(folder, "out-warm-" + mode),
                   window_seconds=10.0, batch_size=8, num_workers=0, progress=False, device="cpu")
load_audio(os.path.join(folder, "warm.wav"), 16000)
out = {{}}
for minutes in (3, 30):
    path = os.path.join(folder, f"track-{{minutes}}min.wav")
    base = rss_mib()
    reset_peak()
    start = time.perf_counter()
    if mode == "engine":
        extract_embeddings([path], encoder, os.path.join(folder, f"out-{{minutes}}"), window_seconds=10.0,
                           batch_size=8, num_workers=0, progress=False, device="cpu")
    elif mode == "pipeline":
        classify(path)
    else:
        processor = AudioCapFeatureExtractor(encoder.feature_extractor)
        wave = load_audio(path, 16000)
        with torch.no_grad():
            for s in window_starts(wave.shape[0], 160000):
                f = processor.featurize([wave[s:s + 160000]])
                encoder.model(f["input_values"], output_hidden_states=True)
        del wave
    out[minutes] = {{"peak_mib_above_start": peak_mib() - base,
                     "seconds": time.perf_counter() - start}}
print("RESULT", json.dumps(out))
"""


def run_long_tracks(log=print) -> dict:
    """Peak memory and time for 3- and 30-minute tracks: naive decoding, the engine and `pipeline()` on a genre model
    (each in its own process)."""
    root = str(Path(__file__).resolve().parents[1])
    results = {"encoder": "tiny wav2vec2 (decoding path only matters here)", "source": f"{SOURCE_RATE} Hz stereo WAV"}
    with tempfile.TemporaryDirectory() as tmp:
        write_track(Path(tmp) / "warm.wav", 12.0, seed=9)
        for minutes in (3, 30):
            write_track(Path(tmp) / f"track-{minutes}min.wav", minutes * 60.0, seed=minutes)
        script = Path(tmp) / "child.py"
        script.write_text(LONG_TRACK_CHILD.format(root=root))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for mode in ("naive", "engine", "pipeline"):
            proc = subprocess.run([sys.executable, str(script), mode, tmp], capture_output=True, text=True, env=env,
                                  timeout=900)
            if proc.returncode != 0:
                results[mode] = {"error": proc.stderr[-2000:]}
                continue
            line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
            results[mode] = {f"{k}min": v for k, v in json.loads(line[len("RESULT "):]).items()}
            log(f"  {mode}: " + ", ".join(f"{k}: {v['peak_mib_above_start']:.0f} MiB" for k, v in results[mode].items()))
    return results
