"""A saved genre model is served exactly as it was trained: `pipeline("audio-classification")` decodes with
`load_audio`, featurises with the model's `AudioCapFeatureExtractor`, takes every evaluation window, averages the logits."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import WITHOUT_PACKAGE, ffmpeg, tiny_encoder_config, tone, write_float_wav, write_wav
from transformers import pipeline

from modeling_audiocap import (
    AudioCapFeatureExtractor,
    AudioDecodingError,
    AudioEncoderForGenreClassification,
    AudioGenreConfig,
    average_windows,
    load_audio,
    peak_normalize,
    resolve_encoder,
    window_starts,
)
from modeling_audiocap.pipelines import AudioGenreClassificationPipeline

LABELS = {0: "rock", 1: "jazz", 2: "ambient"}
RATES = (22050, 44100, 48000)
FORMATS = {"wav": None, "flac": [], "mp3": [], "ogg": ["-c:a", "libvorbis"]}
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI makes the test files")


def build_like_train_genre(family: str, window_seconds: float, normalize: bool = False):
    """Model and processor as `train_genre.build_model` makes them (the resolved encoder, built into the model)."""
    resolved = resolve_encoder(tiny_encoder_config(family))
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(resolved, LABELS, window_seconds=window_seconds)
    processor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=window_seconds, normalize=normalize)
    return model.eval(), processor


def training_path(model, processor: AudioCapFeatureExtractor, source) -> tuple[dict, torch.Tensor]:
    """What training's evaluation does with a file: `load_audio` at the processor's rate (peak-normalised when the
    processor says so), every window of `window_starts`, the processor's features, the mean of the windows' logits."""
    wave = load_audio(source, processor.sampling_rate)
    if processor.normalize:
        wave = peak_normalize(wave)
    window = processor.window_samples
    chunks = [wave[s : s + window] for s in window_starts(wave.shape[0], window)]
    features = processor.featurize(chunks)
    with torch.no_grad():
        logits = model(**features).logits
    clip_logits = average_windows(logits, torch.zeros(len(chunks), dtype=torch.long), num_clips=1)
    return features, clip_logits[0].softmax(-1)


def served_windows(classifier, source) -> dict:
    """The features the pipeline gives the model for `source`: its blocks of windows, joined."""
    blocks = list(classifier.preprocess(source))
    assert [block.pop("is_last") for block in blocks] == [False] * (len(blocks) - 1) + [True]
    return {key: torch.cat([block[key] for block in blocks]) for key in blocks[0]}


def as_scores(result: list[dict]) -> dict[str, float]:
    return {item["label"]: item["score"] for item in result}


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """1.2 s clips, mono and stereo (two different tones), at 22.05 / 44.1 / 48 kHz, as WAV, FLAC, MP3 and Ogg."""
    root = tmp_path_factory.mktemp("serving_audio")
    out = {}
    for rate in RATES:
        left, right = tone(1.2, rate, 440.0, seed=1), tone(1.2, rate, 660.0, seed=2) * 0.5
        for channels, audio in (("mono", left), ("stereo", np.stack([left, right], axis=1))):
            wav = root / f"{channels}_{rate}.wav"
            write_wav(wav, audio, rate)
            out[("wav", channels, rate)] = wav
            if shutil.which("ffmpeg"):
                for ext, args in FORMATS.items():
                    if args is not None:
                        out[(ext, channels, rate)] = root / f"{channels}_{rate}.{ext}"
                        ffmpeg(wav, out[(ext, channels, rate)], *args)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny genre model saved as train_genre.py saves it, and `pipeline()` over the saved folder."""
    model, processor = build_like_train_genre("wav2vec2", window_seconds=0.5, normalize=True)
    folder = tmp_path_factory.mktemp("genre_model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    classifier = pipeline("audio-classification", model=str(folder), pipeline_class=AudioGenreClassificationPipeline)
    return folder, model, processor, classifier


def test_saved_model_carries_its_pipeline(served):
    folder, model, _, classifier = served
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["audio-classification"]["impl"] == "pipelines.AudioGenreClassificationPipeline"
    assert config["custom_pipelines"]["audio-classification"]["pt"] == ["AutoModelForAudioClassification"]
    assert all((folder / f).exists() for f in ("pipelines.py", "audio.py", "processing_audiocap.py"))
    assert classifier.audio_processor.window_seconds == 0.5 and classifier.audio_processor.normalize
    made = AudioEncoderForGenreClassification.from_encoder_pretrained(tiny_encoder_config("wav2vec2"), LABELS)
    assert "audio-classification" in made.config.custom_pipelines


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", ("mono", "stereo"))
@pytest.mark.parametrize("ext", list(FORMATS))
def test_pipeline_sees_and_scores_what_training_sees(served, audio_files, ext, channels, rate):
    if (ext, channels, rate) not in audio_files:
        pytest.skip("the ffmpeg CLI makes the compressed files")
    path = audio_files[(ext, channels, rate)]
    _, _, processor, classifier = served
    # the saved model as it is served (loading picks SDPA attention; the in-memory one built by hand is eager)
    expected_features, expected_scores = training_path(classifier.model, processor, path)
    served_features = served_windows(classifier, str(path))
    assert served_features.keys() == expected_features.keys()
    assert len(next(iter(served_features.values()))) == 3  # 1.2 s in 0.5 s windows
    for key, value in expected_features.items():
        assert torch.equal(served_features[key], value), key
    scores = as_scores(classifier(str(path)))
    assert scores == {LABELS[i]: float(s) for i, s in enumerate(expected_scores)}
    assert len(classifier(str(path), top_k=2)) == 2


def test_every_kind_of_input_gives_the_same_scores(served, audio_files):
    from torchcodec.decoders import AudioDecoder

    classifier = served[3]
    path = audio_files[("wav", "stereo", 44100)]
    expected = classifier(str(path))
    same_file = [path.read_bytes(), {"path": str(path)}, {"bytes": path.read_bytes(), "path": None}, AudioDecoder(str(path))]
    for source in same_file:
        assert classifier(source) == expected
    mono = load_audio(path, 44100).numpy()
    by_array = classifier((mono, 44100))
    assert classifier({"array": mono, "sampling_rate": 44100}) == by_array
    assert classifier({"raw": mono, "sampling_rate": 44100}) == by_array
    assert classifier(mono, sampling_rate=44100) == by_array
    with pytest.raises(ValueError, match="sampling_rate"):
        classifier(mono)


@pytest.mark.parametrize("family", ("mert", "whisper", "ast", "clap"))
def test_every_family_is_served_over_the_evaluation_windows(family):
    model, processor = build_like_train_genre(family, window_seconds=1.0)
    classifier = AudioGenreClassificationPipeline(model=model, processor=processor)
    clip = (tone(2.5, 44100, 330.0), 44100)
    expected_features, expected_scores = training_path(model, processor, clip)
    served_features = served_windows(classifier, clip)
    assert len(next(iter(served_features.values()))) == 3
    for key, value in expected_features.items():
        assert torch.equal(served_features[key], value), key
    assert as_scores(classifier(clip)) == {LABELS[i]: float(s) for i, s in enumerate(expected_scores)}


def broken_inputs(root, good_wav) -> dict[str, tuple]:
    """name -> (source, text its error message must hold)."""
    rng = np.random.default_rng(0)
    (root / "a_directory.wav").mkdir()
    (root / "empty.wav").write_bytes(b"")
    (root / "random.mp3").write_bytes(rng.bytes(4000))
    (root / "notes.txt").write_text("Not audio: a text file. " * 200)
    good = good_wav.read_bytes()
    (root / "truncated.wav").write_bytes(good[: len(good) // 2])
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        samples = tone(0.5, 16000)
        samples[100] = value
        write_float_wav(root / name, samples, 16000)
    cases = {name: (root / name, words) for name, words in (
        ("missing.wav", "not found"), ("a_directory.wav", "not a file"), ("empty.wav", "empty"),
        ("random.mp3", "corrupt"), ("notes.txt", "no audio stream"), ("truncated.wav", "truncated"),
        ("nan.wav", "non-finite"), ("inf.wav", "non-finite"),
    )}
    cases["<bytes>"] = (rng.bytes(3000), "corrupt")
    nan_array = tone(0.5, 16000)
    nan_array[5] = np.nan
    cases["<array>"] = ((nan_array, 16000), "non-finite")
    return cases


def test_unusable_audio_raises_naming_the_source(served, audio_files, tmp_path):
    _, _, processor, classifier = served
    for name, (source, words) in broken_inputs(tmp_path, audio_files[("wav", "mono", 22050)]).items():
        source = str(source) if isinstance(source, os.PathLike) else source
        for run in (classifier, processor):
            with pytest.raises(AudioDecodingError) as info:
                run(source)
            assert name in str(info.value) and words in str(info.value), f"{name}: {info.value}"


def test_a_long_track_is_windowed_by_the_family_default(tmp_path):
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(tiny_encoder_config("wav2vec2"), LABELS)
    assert model.config.window_seconds == 10.0  # wav2vec2's default: nothing was set
    model.save_pretrained(tmp_path)
    resolve_encoder(tiny_encoder_config("wav2vec2")).feature_extractor.save_pretrained(tmp_path)  # no window saved
    reloaded = json.loads((tmp_path / "config.json").read_text())
    assert reloaded["window_seconds"] == 10.0
    classifier = pipeline("audio-classification", model=str(tmp_path), pipeline_class=AudioGenreClassificationPipeline)
    lengths = []  # of every waveform the encoder is given
    classifier.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.extend([kwargs["input_values"].shape[-1]] * len(kwargs["input_values"])),
        with_kwargs=True,
    )
    track = (tone(180.0, 16000, 220.0), 16000)  # three minutes
    result = classifier(track)
    assert lengths == [160000] * len(window_starts(180 * 16000, 160000)) == [160000] * 18
    _, expected = training_path(model.eval(), classifier.audio_processor, track)
    torch.testing.assert_close(torch.tensor([as_scores(result)[LABELS[i]] for i in range(3)]), expected)


def test_configs_without_a_window_get_their_familys_default(tmp_path):
    defaults = {"mert": 5.0, "clap": 10.0, "wav2vec2": 10.0, "whisper": 30.0, "ast": 1.28}  # tiny AST: 128 frames
    for family, seconds in defaults.items():
        assert AudioGenreConfig(encoder=tiny_encoder_config(family)).window_seconds == pytest.approx(seconds)
    config = AudioGenreConfig(encoder=tiny_encoder_config("mert"))
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["window_seconds"] = None  # as saved before windows had defaults
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert AudioGenreConfig.from_pretrained(tmp_path).window_seconds == 5.0
    with pytest.raises(ValueError, match="window_seconds"):
        AudioGenreConfig(encoder=tiny_encoder_config("mert"), window_seconds=0)


SCRIPT = WITHOUT_PACKAGE + r"""
from transformers import pipeline

model_dir, audio_path, broken_path, out_path = sys.argv[1:5]
classifier = pipeline("audio-classification", model=model_dir, trust_remote_code=True)
result = {"pipeline_module": type(classifier).__module__, "scores": classifier(audio_path)}
try:
    classifier(broken_path)
except ValueError as error:
    result["error"] = [type(error).__name__, str(error)]
json.dump(result, open(out_path, "w"))
"""


@needs_ffmpeg
def test_remote_code_serves_the_same_scores_without_the_package(served, audio_files, tmp_path):
    folder, _, processor, classifier = served
    path = audio_files[("mp3", "stereo", 44100)]
    _, expected = training_path(classifier.model, processor, path)
    broken = tmp_path / "notes.txt"
    broken.write_text("not audio " * 300)
    out_path = tmp_path / "result.json"
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(path), str(broken), str(out_path)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out_path.read_text())
    assert result["pipeline_module"].startswith("transformers_modules")
    assert as_scores(result["scores"]) == {LABELS[i]: float(s) for i, s in enumerate(expected)}
    assert result["error"][0] == "AudioDecodingError" and "notes.txt" in result["error"][1]


def test_clip_lists_are_served_one_clip_at_a_time(served, audio_files):
    classifier = served[3]
    paths = [str(audio_files[("wav", "mono", rate)]) for rate in RATES]
    assert classifier(paths) == [classifier(path) for path in paths]
    with pytest.raises(ValueError, match="window_batch_size"):
        classifier(paths, batch_size=2)
    narrow = AudioGenreClassificationPipeline(model=served[1], processor=served[2], window_batch_size=1)
    torch.testing.assert_close(  # window by window instead of all three at once: the same scores
        torch.tensor([s["score"] for s in narrow(paths[0])]), torch.tensor([s["score"] for s in classifier(paths[0])])
    )


LONG_TRACK_SCRIPT = r"""
import json, resource, sys, time
from transformers import pipeline
from modeling_audiocap.pipelines import AudioGenreClassificationPipeline

model_dir, audio_path, out_path = sys.argv[1:4]
classifier = pipeline("audio-classification", model=model_dir, pipeline_class=AudioGenreClassificationPipeline)
windows = []
classifier.model.register_forward_pre_hook(lambda module, args, kwargs: windows.append(len(kwargs["input_values"])),
                                           with_kwargs=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
scores = classifier(audio_path)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
json.dump({"windows": sum(windows), "extra_mib": (peak - before) / 1024, "seconds": seconds, "scores": scores},
          open(out_path, "w"))
"""


def write_flac_track(path, minutes: float, rate: int = 44100) -> None:
    """A stereo 16-bit FLAC track of `minutes`, written a minute at a time (a tune whose pitch moves every second)."""
    import soundfile

    with soundfile.SoundFile(str(path), "w", samplerate=rate, channels=2, format="FLAC", subtype="PCM_16") as f:
        for minute in range(int(minutes)):
            t = np.arange(60 * rate) / rate
            pitch = 220.0 * 2 ** (((np.floor(t) + minute) % 12) / 12)
            left = 0.4 * np.sin(2 * np.pi * pitch * t)
            f.write(np.stack([left, 0.5 * left], axis=1).astype(np.float32))


@pytest.mark.slow
def test_a_thirty_minute_track_is_served_in_memory_bounded_by_the_window(tmp_path):
    """`pipeline()` on a model made with `from_encoder_pretrained` and nothing else set: a 30-minute stereo 44.1 kHz
    track (635 MB once decoded) is read block by block, so its peak memory is about that of a 3-minute one (what
    grows is glibc heap fragmentation, a few MB per 10 minutes; flat with a fixed MALLOC_MMAP_THRESHOLD_), and every
    10-s window is scored."""
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(tiny_encoder_config("wav2vec2"), LABELS)
    model.save_pretrained(tmp_path / "model")
    resolve_encoder(tiny_encoder_config("wav2vec2")).feature_extractor.save_pretrained(tmp_path / "model")
    results = {}
    for minutes in (3, 30):
        track = tmp_path / f"{minutes}min.flac"
        write_flac_track(track, minutes)
        out = tmp_path / f"{minutes}.json"
        proc = subprocess.run(
            [sys.executable, "-c", LONG_TRACK_SCRIPT, str(tmp_path / "model"), str(track), str(out)],
            capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[minutes] = json.loads(out.read_text())
    assert results[30]["windows"] == 30 * 6 and results[3]["windows"] == 3 * 6
    assert results[30]["extra_mib"] < results[3]["extra_mib"] + 128, results
    assert len(results[30]["scores"]) == len(LABELS)
