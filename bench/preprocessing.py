"""Preprocessing throughput: audiocap's decode + resample + normalise against `librosa.load(path, sr=...)`.

The same files (44.1 kHz stereo music-like tracks written as WAV, FLAC and MP3) are loaded both ways, in one run,
to mono at 24 kHz (MERT's rate) and peak-normalised: audiocap through `load_audio` (WAV through soundfile, other
formats through torchcodec / FFmpeg; `torchaudio.functional.resample`) and `peak_normalize`; librosa through `librosa.load` (soundfile decoding, soxr
resampling, its default) and `librosa.util.normalize`. Reported: audio seconds per wall second for each format,
the ratio, and how far apart the two outputs are (signal-to-difference ratio in dB).

`run_serving`: a saved genre model (MERT-95M-shaped encoder, random weights, 5 s windows) classifies the same kind
of files through `pipeline("audio-classification", ...)` and by hand (`load_audio` -> the saved `AudioCapFeatureExtractor`
-> the model -> mean logits over the windows), side by side: the largest score difference (0 when serving feeds the
model what training fed it) and the pipeline's time over the hand-fed time.
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from modeling_audiocap import load_audio, peak_normalize

from .extraction import music_like

SOURCE_RATE = 44100
TARGET_RATE = 24000
FORMATS = ("wav", "flac", "mp3")


def _write(folder: Path, fmt: str, files: int, seconds: float) -> list[Path]:
    import soundfile

    paths = []
    for i in range(files):
        mono = music_like(seconds, SOURCE_RATE, seed=i)
        path = folder / f"track-{i}.{fmt}"
        soundfile.write(path, np.stack([mono, mono[::-1]], axis=1), SOURCE_RATE)
        paths.append(path)
    return paths


def _audiocap(path: Path) -> np.ndarray:
    return peak_normalize(load_audio(path, TARGET_RATE)).numpy()


def _librosa(path: Path) -> np.ndarray:
    import librosa

    return librosa.util.normalize(librosa.load(path, sr=TARGET_RATE, mono=True)[0])


def _timed_side_by_side(loads: dict, paths: list[Path], rounds: int) -> tuple[dict, dict]:
    """Best time over `rounds` of loading every file, each way, the ways alternating within each round (so that load
    from other processes falls on both); the outputs of the last round."""
    for load in loads.values():
        load(paths[0])  # warm-up: libraries and resampling kernels loaded before timing
    best = {name: float("inf") for name in loads}
    outputs = {}
    for _ in range(rounds):
        for name, load in loads.items():
            start = time.perf_counter()
            outputs[name] = [load(p) for p in paths]
            best[name] = min(best[name], time.perf_counter() - start)
    return best, outputs


def _agreement_db(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    return float(10 * np.log10(np.sum(a**2) / max(np.sum((a - b) ** 2), 1e-20)))


def run(files: int = 6, seconds: float = 30.0, rounds: int = 5, log=print) -> dict:
    results = {"files": files, "track_seconds": seconds, "source": f"{SOURCE_RATE} Hz stereo",
               "target_rate": TARGET_RATE, "rounds": rounds, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            try:
                paths = _write(Path(tmp), fmt, files, seconds)
            except Exception as error:  # libsndfile built without this format
                results["rows"].append({"format": fmt, "skipped": f"cannot write {fmt}: {error}"})
                continue
            best, outputs = _timed_side_by_side({"audiocap": _audiocap, "librosa": _librosa}, paths, rounds)
            ours, theirs, ours_out, theirs_out = best["audiocap"], best["librosa"], outputs["audiocap"], outputs["librosa"]
            audio = files * seconds
            row = {
                "format": fmt,
                "audiocap_audio_seconds_per_second": audio / ours,
                "librosa_audio_seconds_per_second": audio / theirs,
                "speedup_vs_librosa": theirs / ours,
                "agreement_db": min(_agreement_db(a, b) for a, b in zip(theirs_out, ours_out)),
            }
            results["rows"].append(row)
            log(f"  {fmt}: audiocap {row['audiocap_audio_seconds_per_second']:.0f} audio s/s, librosa "
                f"{row['librosa_audio_seconds_per_second']:.0f}, x{row['speedup_vs_librosa']:.2f}")
    return results


def _genre_model_dir(folder: Path) -> Path:
    """A MERT-95M-shaped genre model with its processor, saved as train_genre.py saves one."""
    from modeling_audiocap import AudioCapFeatureExtractor, AudioEncoderForGenreClassification, MERTConfig
    from modeling_audiocap.encoders import resolve_encoder

    resolved = resolve_encoder(MERTConfig(sampling_rate=TARGET_RATE))
    labels = dict(enumerate(("blues", "classical", "jazz", "metal", "pop")))
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(resolved, labels, window_seconds=5.0).eval()
    model.save_pretrained(folder)
    AudioCapFeatureExtractor(feature_extractor=resolved.feature_extractor, window_seconds=5.0).save_pretrained(folder)
    return folder


def run_serving(files: int = 2, seconds: float = 20.0, rounds: int = 2, log=print) -> dict:
    """pipeline() on files against the same model fed by hand (see the module docstring)."""
    import torch
    from transformers import pipeline

    from modeling_audiocap import AudioCapFeatureExtractor, AudioEncoderForGenreClassification, average_windows
    from modeling_audiocap.pipelines import AudioGenreClassificationPipeline

    results = {"files": files, "track_seconds": seconds, "source": f"{SOURCE_RATE} Hz stereo", "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _genre_model_dir(Path(tmp) / "model")
        classify = pipeline("audio-classification", model=str(model_dir), pipeline_class=AudioGenreClassificationPipeline)
        model = AudioEncoderForGenreClassification.from_pretrained(model_dir).eval()
        processor = AudioCapFeatureExtractor.from_pretrained(model_dir)

        @torch.inference_mode()
        def by_hand(path: Path) -> dict[str, float]:
            features = dict(processor(load_audio(path, processor.sampling_rate).numpy(),
                                      sampling_rate=processor.sampling_rate, return_tensors="pt"))
            clip_index = features.pop("window_clip_index")
            logits = average_windows(model(**features).logits, clip_index, num_clips=1)[0]
            return {model.config.id2label[i]: float(p) for i, p in enumerate(logits.softmax(-1))}

        def served(path: Path) -> dict[str, float]:
            return {row["label"]: row["score"] for row in classify(str(path))}

        for fmt in FORMATS:
            paths = _write(Path(tmp), fmt, files, seconds)
            best, outputs = _timed_side_by_side({"pipeline": served, "by_hand": by_hand}, paths, rounds)
            difference = max(abs(a[k] - b[k]) for a, b in zip(outputs["pipeline"], outputs["by_hand"]) for k in a)
            row = {"format": fmt, "max_score_difference": difference,
                   "pipeline_over_by_hand_time": best["pipeline"] / best["by_hand"]}
            results["rows"].append(row)
            log(f"  {fmt}: max score difference {difference:.2e}, pipeline time x{row['pipeline_over_by_hand_time']:.2f}")
    return results


if __name__ == "__main__":
    print(run())
    print(run_serving())
