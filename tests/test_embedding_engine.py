"""extract_embeddings / audiocap-embed: exact batching, streaming decode, resumption, bad inputs, bounded memory,
several processes, output format and the command line."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf
import pytest
import torch
from conftest import WAVEFORM_KWARGS, encode_layers, tiny_encoder_config, tone

from modeling_audiocap import (
    AudioEncoderForGenreClassification,
    MERTConfig,
    extract_embeddings,
    load_audio,
    mean_pool,
    resolve_encoder,
    window_starts,
)
from modeling_audiocap.embedding import (
    ExtractionInterrupted,
    choose_dtype,
    cpu_has_fast_bf16,
    inference_ready,
    iter_windows,
    pool_frames,
)
from modeling_audiocap import audio_stream as stream
from modeling_audiocap.embedding.cli import main as cli_main
from modeling_audiocap.embedding.fftconv import FFTConv1d
from modeling_audiocap.embedding.convgemm import GemmFeatureEncoder
from modeling_audiocap.embedding.inplace import InPlaceGELU
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
# Clip lengths (seconds) with 1-second windows: full windows (the last one end-aligned), clips shorter than a window
# of one shared length (0.6 s, batched together) and of lengths of their own (0.4 s, 0.75 s: alone).
LENGTHS = [2.5, 0.6, 2.5, 0.6, 0.4, 1.0, 3.2, 0.75, 0.6]


def write_wav(path: Path, seconds: float, rate: int = RATE, seed: int = 0, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = tone(seconds, rate, freq=220.0 + 40 * seed, seed=seed)
    pcm = (np.repeat(audio[:, None], channels, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for i, seconds in enumerate(LENGTHS):
        write_wav(root / ("sub" if i % 3 == 0 else "") / f"clip{i}.wav", seconds, seed=i)
    return root


@pytest.fixture(scope="module")
def encoders():
    """One tiny randomly initialised encoder per family, built once."""
    cache = {}

    def get(family: str):
        if family not in cache:
            torch.manual_seed(0)
            if family == "mert-330m-style":  # pre-norm transformer, group-norm conv feature encoder
                config = MERTConfig(**{**WAVEFORM_KWARGS, "do_stable_layer_norm": True, "num_hidden_layers": 3})
            else:
                config = tiny_encoder_config(family)
            cache[family] = resolve_encoder(config)
        return cache[family]

    return get


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, encoders) -> Path:
    path = tmp_path_factory.mktemp("encoder")
    resolved = encoders("wav2vec2")
    resolved.model.save_pretrained(path)
    resolved.feature_extractor.save_pretrained(path)
    return path


def reference_windows(resolved, path: str, starts_seconds, window_seconds: float, layers=None, pooling="mean"):
    """Each window alone through plain `encode_layers`, as the package's processor feeds it (no batching)."""
    rate = resolved.sampling_rate
    wave_ = load_audio(path, rate)
    processor = AudioCapFeatureExtractor(resolved.feature_extractor)
    window = int(round(window_seconds * rate))
    out = []
    resolved.model.eval()
    for start in starts_seconds:
        begin = int(round(start * rate))
        features = processor.featurize([wave_[begin : begin + window]])
        with torch.no_grad():
            hidden, mask, _ = encode_layers(resolved.model, resolved.config, features.pop("input_values"),
                                         features.pop("attention_mask", None))
        if layers is not None:
            hidden = hidden[:, layers]
        pooled = mean_pool(hidden, mask) if pooling == "mean" else pool_frames(hidden, mask, pooling)
        out.append((pooled[0] if pooling != "frames" else pooled[0]).numpy())
    return np.stack(out)


def run(inputs, encoder, out, **kwargs):
    """The engine in float32 unless asked otherwise: "auto" is bfloat16 on a CPU with bf16 units (AVX512-BF16, AMX),
    and the equivalence tests compare with float32 references."""
    kwargs = {"window_seconds": 1.0, "batch_size": 3, "shard_size": 4, "device": "cpu", "progress": False,
              "dtype": "float32", **kwargs}
    return extract_embeddings(inputs, encoder, out, **kwargs).with_format("numpy")


# -- exactness -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["wav2vec2", "mert", "wav2vec2-layernorm"])
def test_batched_windows_equal_single_clip_results(tmp_path, clip_dir, encoders, family):
    """Group-norm (wav2vec2-base style, MERT) and layer-norm (with attention masks) encoders: bucketed batches give
    what each window gives alone."""
    resolved = encoders(family)
    ds = run(str(clip_dir), resolved, tmp_path / "out")
    assert len(ds) == len(LENGTHS)
    for row in ds:
        ref = reference_windows(resolved, row["path"], row["window_starts"], 1.0)
        np.testing.assert_allclose(row["embeddings"], ref, rtol=1e-4, atol=1e-5)
    if family == "wav2vec2":
        # why windows are bucketed by length: zero-padding a short clip to a longer one changes what a group-norm
        # encoder gives for it, even pooled over its own frames only
        processor = AudioCapFeatureExtractor(resolved.feature_extractor)
        short, long_ = load_audio(str(clip_dir / "clip4.wav"), RATE), load_audio(str(clip_dir / "clip5.wav"), RATE)
        features = processor.featurize([short, long_])
        with torch.no_grad():
            hidden, _, _ = encode_layers(resolved.model, resolved.config, features["input_values"], None)
        valid = int(resolved.model._get_feat_extract_output_lengths(torch.tensor(short.shape[0])))
        padded = hidden[0, :, :valid].mean(dim=1).numpy()
        row = ds[list(ds["id"]).index("clip4.wav")]
        assert not np.allclose(padded, row["embeddings"][0], atol=1e-3)


def test_compressed_formats_rates_and_channels_embed_as_load_audio_decodes_them(tmp_path, encoders):
    """FLAC, MP3, Ogg Vorbis and AAC files at 44.1 / 48 / 22.05 kHz, stereo and mono, of different lengths: each is
    streamed and resampled block by block to what `load_audio` gives for the whole file, window by window."""
    from torchcodec.encoders import AudioEncoder

    folder = tmp_path / "formats"
    folder.mkdir()
    specs = [("a.flac", 44100, 2, 2.6), ("b.mp3", 48000, 2, 1.7), ("c.ogg", 22050, 1, 3.1), ("d.m4a", 44100, 1, 0.8)]
    for name, rate, channels, seconds in specs:
        t = torch.arange(int(rate * seconds)) / rate
        tone_ = 0.3 * torch.sin(2 * torch.pi * 330.0 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 2.0 * t))
        AudioEncoder(tone_.repeat(channels, 1), sample_rate=rate).to_file(str(folder / name))
    resolved = encoders("wav2vec2")
    ds = run(str(folder), resolved, tmp_path / "out", hop_seconds=0.5)
    assert sorted(ds["id"]) == [name for name, *_ in specs]
    for row in ds:
        ref = reference_windows(resolved, row["path"], row["window_starts"], 1.0)
        np.testing.assert_allclose(row["embeddings"], ref, rtol=1e-4, atol=1e-5)


def test_layers_subset_pooling_and_hop(tmp_path, clip_dir, encoders):
    """Chosen layers (the top ones are then not run), mean+std and frame-level outputs, overlapping windows."""
    resolved = encoders("wav2vec2")
    ds = run(str(clip_dir), resolved, tmp_path / "frames", layers=[1], pooling="frames", hop_seconds=0.5)
    row = ds[list(ds["id"]).index("sub/clip6.wav")]  # 3.2 s: windows at 0, 0.5, ..., 2.0 and 2.2 (end-aligned)
    np.testing.assert_allclose(row["window_starts"], [0.0, 0.5, 1.0, 1.5, 2.0, 2.2])
    ref = reference_windows(resolved, row["path"], row["window_starts"], 1.0, layers=[1], pooling="frames")
    assert row["embeddings"].shape == ref.shape == (6, 1, ref.shape[2], 32)
    np.testing.assert_allclose(row["embeddings"], ref, rtol=1e-4, atol=1e-5)

    ds = run(str(clip_dir), resolved, tmp_path / "std", layers=[0, -1], pooling="mean+std")
    row = ds[list(ds["id"]).index("clip2.wav")]  # 2.5 s
    frames = reference_windows(resolved, row["path"], row["window_starts"], 1.0, layers=[0, 2], pooling="frames")
    expected = np.concatenate([frames.mean(axis=2), frames.std(axis=2)], axis=-1)
    assert row["embeddings"].shape == (3, 2, 64)
    np.testing.assert_allclose(row["embeddings"], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["wav2vec2", "wav2vec2-layernorm"])
def test_the_feature_encoder_as_matrix_products_equals_the_convolutions(encoders, family):
    """Group-norm and layer-norm (with conv bias) feature encoders, windows of unequal content in one batch: the same
    frames as the module it wraps; under autocast or with gradients the wrapped module itself runs."""
    encoder = encoders(family).model.eval().feature_extractor
    gemm = GemmFeatureEncoder.wrap(encoder)
    waves = torch.stack([torch.from_numpy(tone(0.7, 16000, f, seed=i)) for i, f in enumerate((220.0, 330.0, 495.0))])
    with torch.inference_mode():
        expected = encoder(waves)
        got = gemm(waves)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():
        assert gemm(waves).dtype == torch.bfloat16  # the original convolutions, under autocast
    assert GemmFeatureEncoder.wrap(torch.nn.Linear(2, 2)) is None


@pytest.mark.parametrize("family", ["wav2vec2", "wav2vec2-layernorm", "mert", "mert-330m-style", "whisper", "ast"])
def test_dropping_top_layers_and_folding_weight_norm_keep_lower_layers(encoders, family):
    """Only the layers up to the deepest one asked for run; the hidden states below are unchanged (also where the last
    hidden state is taken after a final norm: Whisper, pre-norm MERT-v1-330M)."""
    resolved = encoders(family)
    model, config = resolved.model.eval(), resolved.config
    processor = AudioCapFeatureExtractor(resolved.feature_extractor)
    features = processor.featurize([torch.from_numpy(tone(1.0, resolved.sampling_rate))])
    inputs = features.pop("input_values" if "input_values" in features else "input_features")
    mask = features.pop("attention_mask", None)
    with torch.no_grad():
        full, _, _ = encode_layers(model, config, inputs, mask)
        with inference_ready(model, config, max_layer=1) as kept:
            assert kept == 2
            if family in ("wav2vec2", "wav2vec2-layernorm", "mert", "mert-330m-style"):
                conv = model.encoder.pos_conv_embed.conv
                assert isinstance(conv, FFTConv1d)  # weight norm folded, then computed by FFT
                assert isinstance(model.feature_extractor, GemmFeatureEncoder)
                first = model.feature_extractor.original.conv_layers[0]
                assert isinstance(first.activation, InPlaceGELU)  # the largest activations overwrite their input
                assert isinstance(model.encoder.layers[0].feed_forward.intermediate_act_fn, InPlaceGELU)
            truncated, _, _ = encode_layers(model, config, inputs, mask)
        again, _, _ = encode_layers(model, config, inputs, mask)
    assert truncated.shape[1] == 2
    torch.testing.assert_close(truncated, full[:, :2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(again, full)  # the model is restored
    if family == "wav2vec2":
        assert hasattr(model.encoder.pos_conv_embed.conv, "parametrizations")


@pytest.mark.parametrize("channels,taps,groups,frames", [(768, 128, 16, 301), (32, 16, 2, 5), (24, 31, 3, 40)])
def test_fft_positional_conv_equals_the_direct_convolution(channels, taps, groups, frames):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(channels, channels, taps, padding=taps // 2, groups=groups)
    fft = FFTConv1d.from_conv(conv)
    x = torch.randn(3, channels, frames)
    with torch.no_grad():
        torch.testing.assert_close(fft(x), conv(x), rtol=1e-4, atol=2e-5)
        assert fft(x.bfloat16()).dtype == torch.bfloat16  # computed in float32, returned in the input's dtype
    with pytest.raises(ValueError, match="stride-1"):
        FFTConv1d.from_conv(torch.nn.Conv1d(4, 4, 3, stride=2))


@pytest.mark.parametrize("frame_api", [True, False])
def test_streamed_decoding_matches_whole_file_decoding(tmp_path, monkeypatch, frame_api):
    """A 44.1 kHz stereo file read block by block and resampled to 16 kHz gives load_audio's windows (frame by frame
    through torchcodec's core API, or range by range where that API is missing)."""
    if not frame_api:
        monkeypatch.setattr(stream, "_next_frame_reader", lambda decoder: None)
    path = write_wav(tmp_path / "long.wav", 23.3, rate=44100, channels=2)
    whole = load_audio(str(path), RATE)
    window, hop = 5 * RATE, 3 * RATE
    expected = [(s, whole[s : s + window]) for s in window_starts(whole.shape[0], window, hop)]
    streamed = list(iter_windows(str(path), RATE, window, hop, block_seconds=2.7, whole_seconds=0))
    assert [s for s, _ in streamed] == [s for s, _ in expected]
    for (_, a), (_, b) in zip(streamed, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# -- output format and inputs ----------------------------------------------------------------------------------------


def test_output_format(tmp_path, clip_dir, encoders):
    out = tmp_path / "out"
    ds = run(str(clip_dir), encoders("wav2vec2"), out, shard_size=4, dtype="auto")
    assert ds.column_names == ["id", "path", "duration", "window_starts", "embeddings"]
    files = sorted(p.relative_to(clip_dir).as_posix() for p in clip_dir.rglob("*.wav"))
    assert list(ds["id"]) == files
    by_id = {row["id"]: row for row in ds}
    row = by_id["sub/clip6.wav"]  # 3.2 s
    assert row["duration"] == pytest.approx(3.2)
    np.testing.assert_allclose(row["window_starts"], [0.0, 1.0, 2.0, 2.2])
    assert row["embeddings"].shape == (4, 3, 32) and row["embeddings"].dtype == np.float32
    assert by_id["clip4.wav"]["embeddings"].shape == (1, 3, 32)  # shorter than a window: one short window
    assert Path(row["path"]).is_absolute()
    assert sorted(p.name for p in out.glob("data-*.arrow")) == [f"data-0000{k}-of-00003.arrow" for k in range(3)]
    reloaded = datasets.load_from_disk(str(out))
    assert reloaded.features["embeddings"].shape == (None, 3, 32)
    config = json.loads((out / "embedding_config.json").read_text())
    assert config["layers"] == [0, 1, 2] and config["clips"] == len(LENGTHS) and config["skipped"] == 0
    assert config["dtype"] == ("bfloat16" if cpu_has_fast_bf16() else "float32")
    assert json.loads((out / "skipped.json").read_text()) == []


def test_file_list_dataset_and_saved_model_inputs(tmp_path, clip_dir, encoders, encoder_dir):
    files = sorted(str(p) for p in clip_dir.rglob("*.wav"))[:4]
    by_folder = run(files, str(encoder_dir), tmp_path / "files")
    assert list(by_folder["id"]) == files

    table = datasets.Dataset.from_dict({"audio": files, "id": [f"track-{i}" for i in range(4)], "genre": ["a"] * 4})
    table = table.cast_column("audio", datasets.Audio())
    by_dataset = run(table, str(encoder_dir), tmp_path / "dataset")
    assert list(by_dataset["id"]) == [f"track-{i}" for i in range(4)]
    assert list(by_dataset["path"]) == files
    table.save_to_disk(str(tmp_path / "saved"))
    by_saved = run(str(tmp_path / "saved"), str(encoder_dir), tmp_path / "from-disk")
    # a saved audiocap model: its encoder and processor
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(str(encoder_dir), id2label={0: "a", 1: "b"})
    model.save_pretrained(tmp_path / "genre-model")
    AudioCapFeatureExtractor(encoders("wav2vec2").feature_extractor).save_pretrained(tmp_path / "genre-model")
    by_model = run(files, str(tmp_path / "genre-model"), tmp_path / "model")
    for other in (by_dataset, by_saved, by_model):
        for a, b in zip(by_folder["embeddings"], other["embeddings"]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bfloat16_autocast_runs_and_auto_dtype(tmp_path, clip_dir, encoders):
    assert choose_dtype("auto", "cpu") == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    assert choose_dtype("bfloat16", "cpu") == torch.bfloat16
    files = sorted(str(p) for p in clip_dir.rglob("*.wav"))[:2]
    fp32 = run(files, encoders("wav2vec2"), tmp_path / "fp32", dtype="float32")
    bf16 = run(files, encoders("wav2vec2"), tmp_path / "bf16", dtype="bfloat16")
    for a, b in zip(fp32["embeddings"], bf16["embeddings"]):
        assert b.dtype == np.float32
        assert np.abs(a - b).max() < 0.1 * np.abs(a).max() + 0.05


# -- resumption and bad inputs ---------------------------------------------------------------------------------------


def test_killed_run_resumes_from_the_last_finished_shard(tmp_path, clip_dir, encoders):
    resolved = encoders("wav2vec2")
    out = tmp_path / "out"
    with pytest.raises(ExtractionInterrupted):
        run(str(clip_dir), resolved, out, shard_size=2, _stop_after_shards=2)
    finished = sorted(p.name for p in out.glob("data-*.arrow"))
    assert len(finished) == 2 and not (out / "state.json").exists()
    stamps = {name: (out / name).stat().st_mtime_ns for name in finished}
    resumed = run(str(clip_dir), resolved, out, shard_size=2)
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == stamps  # not recomputed
    fresh = run(str(clip_dir), resolved, tmp_path / "fresh", shard_size=2)
    assert list(resumed["id"]) == list(fresh["id"]) and len(resumed) == len(LENGTHS)
    for a, b in zip(resumed["embeddings"], fresh["embeddings"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="other settings"):
        run(str(clip_dir), resolved, out, shard_size=2, pooling="mean+std")
    again = run(str(clip_dir), resolved, out, shard_size=2, pooling="mean+std", overwrite=True)
    assert again[list(again["id"]).index("clip2.wav")]["embeddings"].shape == (3, 3, 64)


def test_bad_files_are_skipped_counted_and_listed(tmp_path, encoders, caplog):
    folder = tmp_path / "in"
    write_wav(folder / "good1.wav", 1.5, seed=1)
    write_wav(folder / "good2.wav", 0.8, seed=2)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really audio")
    (folder / "empty.flac").write_bytes(b"")
    (folder / "text.mp3").write_text("this is not an mp3")
    good = (folder / "good1.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(good[: len(good) // 2])
    write_wav(folder / "tiny.wav", 0.002, seed=3)  # 32 samples: shorter than the encoder's receptive field
    (folder / "noise.ogg").write_bytes(np.random.default_rng(0).bytes(4096))
    nan = np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 0.1
    nan[[10, 5000]] = [np.nan, np.inf]
    sf.write(folder / "nan.wav", nan, RATE, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="modeling_audiocap.embedding.engine"):
        ds = run(str(folder), encoders("wav2vec2"), tmp_path / "out", shard_size=3)
    assert list(ds["id"]) == ["good1.wav", "good2.wav"]
    skipped = {item["id"]: item["error"] for item in json.loads((tmp_path / "out" / "skipped.json").read_text())}
    names = ["corrupt.wav", "empty.flac", "nan.wav", "noise.ogg", "text.mp3", "tiny.wav", "truncated.wav"]
    assert sorted(skipped) == names
    assert "truncated" in skipped["truncated.wav"] and "too short" in skipped["tiny.wav"]
    assert "non-finite" in skipped["nan.wav"] and "empty" in skipped["empty.flac"]
    assert all(skipped.values())
    assert json.loads((tmp_path / "out" / "embedding_config.json").read_text())["skipped"] == 7
    logged = caplog.text
    assert all(name in logged for name in names) and "skipped 7" in logged


# -- memory, processes, command line ---------------------------------------------------------------------------------


MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, wave
    import numpy as np, torch
    from transformers import Wav2Vec2Config
    sys.path.insert(0, {tests!r})
    from conftest import WAVEFORM_KWARGS
    from modeling_audiocap import extract_embeddings, resolve_encoder

    def write(path, minutes):
        rng = np.random.default_rng(0)
        with wave.open(path, "wb") as f:
            f.setnchannels(1); f.setsampwidth(2); f.setframerate(16000)
            for _ in range(minutes):
                f.writeframes((rng.standard_normal(16000 * 60) * 3000).astype("<i2").tobytes())

    torch.manual_seed(0)
    torch.set_num_threads(1)
    # a tiny wav2vec2 with 25 frames per second, so that 35 minutes of audio take seconds
    encoder = resolve_encoder(Wav2Vec2Config(**{{**WAVEFORM_KWARGS, "conv_stride": (10, 8, 8), "conv_kernel": (10, 8, 8)}}))
    def peak_mib():  # this process's RSS high-water mark (ru_maxrss would include the parent's, from before exec)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

    peaks = []
    for minutes in (5, 30):
        path = f"{{sys.argv[1]}}/track-{{minutes}}.wav"
        write(path, minutes)
        ds = extract_embeddings([path], encoder, f"{{sys.argv[1]}}/out-{{minutes}}", window_seconds=10.0,
                                batch_size=8, device="cpu", num_workers=0, progress=False)
        assert ds[0]["duration"] == minutes * 60 and len(ds[0]["window_starts"]) == minutes * 6
        peaks.append(peak_mib())
    print("PEAKS_MB", peaks[0], peaks[1])
    """
)


@pytest.mark.slow
def test_thirty_minute_track_runs_in_bounded_memory(tmp_path):
    """Peak RSS after a 30-minute track is about that after a 5-minute one (measured: +9 MB); decoding the track whole,
    as `load_audio` does, adds ~300 MB (its float32 channels, then the mono mix: 115 MB each at 16 kHz).
    glibc is told to give large blocks back to the system (MALLOC_MMAP_THRESHOLD_), so that RSS follows live memory."""
    script = tmp_path / "memory.py"
    script.write_text(MEMORY_SCRIPT.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("PEAKS_MB"))
    peak5, peak30 = map(float, line.split()[1:])
    assert peak30 - peak5 < 40, (peak5, peak30)


@pytest.mark.slow
def test_two_processes_embed_each_clip_once(tmp_path, clip_dir, encoder_dir):
    """`torchrun --nproc_per_node 2 -m modeling_audiocap.embedding.cli` (two CPU processes): shards split between
    the two processes, one dataset with every clip exactly once, equal to a one-process run."""
    out = tmp_path / "two"
    args = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
        "modeling_audiocap.embedding.cli", str(clip_dir), "--encoder", str(encoder_dir), "--output_dir", str(out),
        "--window_seconds", "1", "--batch_size", "3", "--shard_size", "2", "--num_workers", "0", "--no_progress", "--dtype", "float32",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((out / "embedding_config.json").read_text())["processes_that_wrote_shards"] == 2
    two = datasets.load_from_disk(str(out)).with_format("numpy")
    files = sorted(p.relative_to(clip_dir).as_posix() for p in clip_dir.rglob("*.wav"))
    assert list(two["id"]) == files  # each clip once, in input order
    one = run(str(clip_dir), str(encoder_dir), tmp_path / "one", shard_size=2)
    for a, b in zip(one["embeddings"], two["embeddings"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_command_line(tmp_path, clip_dir, encoder_dir, capsys):
    files = [str(p) for p in sorted(clip_dir.rglob("*.wav"))[:3]]
    out = tmp_path / "cli"
    code = cli_main([*files, "--encoder", str(encoder_dir), "--output_dir", str(out), "--layers", "0,-1",
                     "--pooling", "mean+std", "--window_seconds", "0.5", "--hop_seconds", "0.25", "--batch_size", "4",
                     "--dtype", "float32", "--device", "cpu", "--num_workers", "1", "--no_progress"])
    assert code == 0 and "3 clips" in capsys.readouterr().out
    ds = datasets.load_from_disk(str(out)).with_format("numpy")
    assert list(ds["id"]) == files
    assert ds[0]["embeddings"].shape[1:] == (2, 64)
    np.testing.assert_allclose(ds[0]["window_starts"], [0.0, 0.1])  # 0.6 s: the second window is end-aligned
    np.testing.assert_allclose(ds[1]["window_starts"][:3], [0.0, 0.25, 0.5])  # 2.5 s
    setup = (ROOT / "setup.py").read_text()
    assert "audiocap-embed = modeling_audiocap.embedding.cli:main" in setup


def test_shards_are_claimed_at_run_time_once_each(tmp_path):
    """Readers claim shards one at a time as they get free: a slow reader holds only the shard it is on, no shard is
    claimed twice in a run, written shards are skipped, and a new run (after a kill) claims again what the killed
    run had claimed but not written."""
    from modeling_audiocap.embedding.engine import ShardClaims

    slow, fast = ShardClaims(tmp_path, 5, "run1", rank=0), ShardClaims(tmp_path, 5, "run1", rank=1)
    assert slow.claim() == 0  # ... and stalls on it
    assert [fast.claim() for _ in range(5)] == [1, 2, 3, 4, None]
    assert slow.claim() is None
    (tmp_path / "shard-00002.json").write_text("{}")  # written before the kill
    again = ShardClaims(tmp_path, 5, "run2", rank=0)
    assert [again.claim() for _ in range(5)] == [0, 1, 3, 4, None]
