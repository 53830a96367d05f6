"""Audio loading: formats, rates, channels, datasets values, normalisation, windows and clear errors on bad input."""

import shutil

import numpy as np
import pytest
import torch

from conftest import ffmpeg, write_float_wav, write_wav

from modeling_audiocap.audio import (
    AudioDecodingError,
    cut_windows,
    load_audio,
    peak_normalize,
    window_starts,
)

RATES = (8000, 22050, 44100, 48000)
FFMPEG_FORMATS = {"flac": [], "mp3": [], "ogg": ["-c:a", "libvorbis"], "au": [], "m4a": ["-c:a", "aac"]}
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI makes the test files")


def sine(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wave: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy() * np.hanning(wave.shape[0])))
    return float(np.fft.rfftfreq(wave.shape[0], 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """1 s 440 Hz sines: mono wav at every rate, a stereo wav, and each compressed format made from a 44.1 kHz wav."""
    root = tmp_path_factory.mktemp("audio")
    out = {}
    for rate in RATES:
        out[f"wav{rate}"] = root / f"mono_{rate}.wav"
        write_wav(out[f"wav{rate}"], sine(1.0, rate), rate)
    left, right = sine(1.0, 48000), sine(1.0, 48000, freq=440.0, amplitude=0.25)
    out["stereo"] = root / "stereo_48000.wav"
    write_wav(out["stereo"], np.stack([left, -right], axis=1), 48000)
    stereo_44k = root / "stereo_44100.wav"
    write_wav(stereo_44k, np.stack([sine(1.0, 44100), sine(1.0, 44100)], axis=1), 44100)
    if shutil.which("ffmpeg"):
        for ext, args in FFMPEG_FORMATS.items():
            out[ext] = root / f"clip.{ext}"
            ffmpeg(stereo_44k, out[ext], *args)
    return out


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("target", (16000, 24000, 48000))
def test_wav_at_any_rate_resamples_and_keeps_its_pitch(files, rate, target):
    wave_ = load_audio(files[f"wav{rate}"], target)
    assert wave_.dtype == torch.float32 and wave_.dim() == 1
    assert wave_.shape[0] == target  # 1 s
    assert abs(peak_frequency(wave_, target) - 440.0) <= 1.0
    assert 0.45 < wave_.abs().max() < 0.55


@needs_ffmpeg
@pytest.mark.parametrize("ext", sorted(FFMPEG_FORMATS))
def test_every_format_decodes_to_mono_440hz(files, ext):
    wave_ = load_audio(files[ext], 16000)
    assert wave_.dim() == 1 and wave_.dtype == torch.float32
    # lossy codecs round the length to their frames (AAC pads to 1024-sample frames, Vorbis may end a little early)
    assert abs(wave_.shape[0] - 16000) <= 0.05 * 16000
    assert abs(peak_frequency(wave_, 16000) - 440.0) <= 1.0
    assert torch.isfinite(wave_).all()


def test_stereo_is_the_mean_of_its_channels(files):
    wave_ = load_audio(files["stereo"], 48000)  # no resampling: compare sample by sample
    expected = (sine(1.0, 48000) - sine(1.0, 48000, amplitude=0.25)) / 2
    np.testing.assert_allclose(wave_.numpy(), expected, atol=2 / 32767)


@pytest.mark.parametrize("writer", [write_wav, write_float_wav], ids=["pcm16", "float32"])
def test_wav_files_read_by_libsndfile_give_ffmpegs_samples(tmp_path, writer):
    """WAV paths take the soundfile (libsndfile) route, the rest FFmpeg's: both give the same samples for WAV."""
    from modeling_audiocap.audio import _decode, _decode_path

    path = tmp_path / "clip.wav"
    stereo = writer is write_wav  # the float writer writes mono
    audio = np.stack([sine(0.5, 22050), sine(0.5, 22050, 330.0, 0.3)], axis=1) if stereo else sine(0.5, 22050)
    writer(path, audio, 22050)
    channels, rate = _decode_path(path)
    via_ffmpeg, ffmpeg_rate = _decode(str(path), str(path))
    assert rate == ffmpeg_rate == 22050 and channels.shape == via_ffmpeg.shape == (2 if stereo else 1, 11025)
    torch.testing.assert_close(channels, via_ffmpeg, rtol=0, atol=1e-7)


def test_arrays_dicts_bytes_and_datasets_values(files):
    path = files["wav22050"]
    reference = load_audio(path, 16000)
    audio = sine(1.0, 22050)
    torch.testing.assert_close(load_audio((audio, 22050), 16000), reference, atol=1e-3, rtol=0)
    as_dict = {"array": audio, "sampling_rate": 22050}
    torch.testing.assert_close(load_audio(as_dict, 16000), reference, atol=1e-3, rtol=0)
    torch.testing.assert_close(load_audio({"path": str(path), "bytes": None}, 16000), reference)
    torch.testing.assert_close(load_audio({"path": "clip.wav", "bytes": path.read_bytes()}, 16000), reference)
    torch.testing.assert_close(load_audio(path.read_bytes(), 16000), reference)
    # (channels, samples) and (samples, channels) arrays, integer PCM
    stereo = np.stack([audio, audio])
    torch.testing.assert_close(load_audio((stereo, 22050), 16000), load_audio((audio, 22050), 16000))
    torch.testing.assert_close(load_audio((stereo.T, 22050), 16000), load_audio((audio, 22050), 16000))
    pcm = (audio * 32767).astype(np.int16)
    torch.testing.assert_close(load_audio((pcm, 22050), 22050), torch.from_numpy(audio), atol=1e-4, rtol=0)


def test_datasets_audio_feature_values(files):
    """datasets >= 4 decodes an Audio column to a torchcodec AudioDecoder (with `["array"]` / `["sampling_rate"]`)."""
    datasets = pytest.importorskip("datasets")
    column = [str(files["wav44100"]), str(files["stereo"])]
    ds = datasets.Dataset.from_dict({"audio": column}).cast_column("audio", datasets.Audio())
    decoded = ds[0]["audio"]
    from torchcodec.decoders import AudioDecoder

    assert isinstance(decoded, AudioDecoder)
    torch.testing.assert_close(load_audio(decoded, 16000), load_audio(files["wav44100"], 16000))
    torch.testing.assert_close(load_audio(ds[1]["audio"], 16000), load_audio(files["stereo"], 16000))
    undecoded = ds.cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    torch.testing.assert_close(load_audio(undecoded, 16000), load_audio(files["wav44100"], 16000))


def test_peak_normalize():
    wave_ = torch.tensor([0.1, -0.4, 0.2])
    torch.testing.assert_close(peak_normalize(wave_), torch.tensor([0.25, -1.0, 0.5]))
    silence = peak_normalize(torch.zeros(100))
    assert torch.equal(silence, torch.zeros(100)) and not torch.isnan(silence).any()
    assert peak_normalize(torch.zeros(0)).shape == (0,)
    assert peak_normalize(np.array([0.0, 0.5], dtype=np.float32)).tolist() == [0.0, 1.0]


def test_window_starts_without_hop_are_back_to_back_and_end_aligned():
    assert window_starts(100, 100) == [0]
    assert window_starts(50, 100) == [0]
    assert window_starts(300, 100) == [0, 100, 200]
    assert window_starts(250, 100) == [0, 100, 150]
    assert window_starts(20000, 8000) == [0, 8000, 12000]  # as the model's windowing of long inputs


@pytest.mark.parametrize("num_samples", (1, 99, 100, 101, 250, 1000, 1037))
@pytest.mark.parametrize("hop", (None, 25, 50, 100))
def test_windows_cover_the_clip(num_samples, hop):
    window = 100
    starts = window_starts(num_samples, window, hop)
    covered = np.zeros(num_samples, dtype=bool)
    for start in starts:
        assert 0 <= start and (start + window <= num_samples or num_samples < window)
        covered[start : start + window] = True
    assert covered.all()
    assert starts == sorted(set(starts))
    if num_samples > window:
        assert starts[-1] == num_samples - window
        if hop is not None:
            assert all(b - a <= hop for a, b in zip(starts, starts[1:]))


def test_window_starts_rejects_gaps():
    with pytest.raises(ValueError, match="hop"):
        window_starts(1000, 100, 150)
    with pytest.raises(ValueError, match="window"):
        window_starts(1000, 0)


def test_cut_windows_for_evaluation():
    wave_ = torch.arange(250, dtype=torch.float32)
    windows = cut_windows(wave_, 100)
    assert windows.shape == (3, 100)
    for row, start in zip(windows, [0, 100, 150]):
        assert torch.equal(row, wave_[start : start + 100])
    overlapping = cut_windows(wave_, 100, hop_samples=50)
    assert [int(r[0]) for r in overlapping] == [0, 50, 100, 150]
    short = cut_windows(torch.ones(30), 100)
    assert short.shape == (1, 100) and short[0, :30].eq(1).all() and short[0, 30:].eq(0).all()


def test_random_crop_is_a_reproducible_slice():
    wave_ = torch.arange(10_000, dtype=torch.float32)
    crops = [cut_windows(wave_, 1000, random_crop=True, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert crops[0].shape == (1, 1000) and torch.equal(crops[0], crops[1])
    start = int(crops[0][0, 0])
    assert torch.equal(crops[0][0], wave_[start : start + 1000])
    seeds = [torch.Generator().manual_seed(s) for s in range(8)]
    starts = {int(cut_windows(wave_, 1000, random_crop=True, generator=g)[0, 0]) for g in seeds}
    assert len(starts) > 1
    short = cut_windows(torch.ones(300), 1000, random_crop=True, generator=torch.Generator().manual_seed(0))
    assert short.shape == (1, 1000) and short[0, :300].eq(1).all() and short[0, 300:].eq(0).all()


def test_the_model_windows_with_the_same_function():
    from modeling_audiocap import modeling_audiocap

    assert modeling_audiocap.window_starts is window_starts


def _bad_files(root, files):
    """name -> (path, expected words in the message)."""
    good = files["wav44100"].read_bytes()
    cases = {}

    def make(name, data, words):
        path = root / name
        path.write_bytes(data)
        cases[name] = (path, words)

    cases["missing.wav"] = (root / "missing.wav", "not found")
    make("garbage.wav", b"RIFF\x00\x00\x00\x00WAVEgarbage" * 20, "corrupt")
    make("noise.mp3", np.random.default_rng(0).bytes(4000), "corrupt")
    make("cut_at_frame.wav", good[: 44 + 2 * 10_000], "truncated")
    make("cut_mid_frame.wav", good[: 44 + 2 * 10_000 + 1], "truncated")
    make("zero_bytes.wav", b"", "empty")
    no_samples = root / "no_samples.wav"
    write_wav(no_samples, np.zeros(0, dtype=np.float32), 16000)
    cases["no_samples.wav"] = (no_samples, "empty")
    nan = np.zeros(1600, dtype=np.float32)
    nan[100] = np.nan
    write_float_wav(root / "nan.wav", nan, 16000)
    cases["nan.wav"] = (root / "nan.wav", "non-finite")
    if "mp3" in files:
        mp3 = files["mp3"].read_bytes()
        make("cut.mp3", mp3[: len(mp3) // 2], "truncated")
        flac = files["flac"].read_bytes()
        make("cut.flac", flac[: len(flac) // 2], "truncated")
    return cases


def test_bad_input_raises_an_error_naming_the_file(files, tmp_path):
    for name, (path, words) in _bad_files(tmp_path, files).items():
        with pytest.raises(AudioDecodingError) as info:
            load_audio(path, 16000)
        message = str(info.value)
        assert isinstance(info.value, ValueError)
        assert name in message, message
        assert words in message, f"{name}: {message!r} should say {words!r}"


def test_bad_arrays_raise_clear_errors():
    with pytest.raises(AudioDecodingError, match="non-finite"):
        load_audio({"array": np.array([0.0, np.inf], dtype=np.float32), "sampling_rate": 16000, "path": "x.wav"}, 16000)
    with pytest.raises(AudioDecodingError, match="empty"):
        load_audio((np.zeros(0, dtype=np.float32), 16000), 16000)
    with pytest.raises(AudioDecodingError, match="sampling_rate"):
        load_audio({"array": np.zeros(10, dtype=np.float32)}, 16000)
    with pytest.raises(TypeError):
        load_audio(3.5, 16000)
