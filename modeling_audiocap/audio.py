"""Audio loading and cutting: any audio source -> mono float32 waveform at a target rate -> windows.

- `load_audio(source, sampling_rate)` decodes a file path (wav, au, flac, mp3, ogg, m4a, ... through torchcodec and
  FFmpeg), encoded bytes, a `datasets` Audio value (a dict with `array` + `sampling_rate` and/or `path` / `bytes`,
  or the torchcodec `AudioDecoder` that `datasets` >= 4 returns for decoded audio) or an `(array, rate)` pair,
  downmixes to mono (mean of the channels) and resamples with `torchaudio.functional.resample`.
- `peak_normalize(wave)` scales a clip to peak 1 (silence stays silent).
- `window_starts` / `cut_windows` cut a clip into fixed-length windows: one random crop for training, or every window
  covering the clip for evaluation.

Anything that is not usable audio (missing, unreadable, corrupt or truncated file, no samples, NaN / Inf samples)
raises `AudioDecodingError`, a `ValueError` whose message names the file and the problem.

This module is a flat file with absolute imports of torch, torchaudio, torchcodec, numpy, soundfile (optional, for
WAV files) and the standard library only, so that saved models and processors can ship it as remote code. torchaudio,
torchcodec and soundfile are imported when first needed: `import modeling_audiocap` (which uses `window_starts`) stays fast and works where FFmpeg is missing.
"""

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Decoded audio shorter than its header's duration by more than this (seconds, and fraction of the header's
# duration) is reported as truncated. Generous, because FFmpeg estimates the duration of some streams (VBR MP3
# without a Xing header) from the bitrate.
TRUNCATION_TOLERANCE_SECONDS = 0.25
TRUNCATION_TOLERANCE_FRACTION = 0.1

# File suffixes the decoders read (libsndfile and FFmpeg): the one list every folder reader uses (`audio_files`).
AUDIO_EXTENSIONS = frozenset(
    {
        ".aac", ".aif", ".aifc", ".aiff", ".alac", ".amr", ".ape", ".au", ".caf", ".flac", ".m4a", ".mka", ".mp2",
        ".mp3", ".oga", ".ogg", ".opus", ".snd", ".wav", ".weba", ".webm", ".wma", ".wv",
    }
)

# What torchcodec says when FFmpeg opens a file that holds no audio stream (a text file, an image, a silent video).
NO_AUDIO_STREAM = "best audio stream is unknown"


class AudioDecodingError(ValueError):
    """A source that does not give usable audio; the message names the source and the problem."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"Cannot load audio {name}: {problem}")


def _audio_decoder_class():
    from torchcodec.decoders import AudioDecoder

    return AudioDecoder


def is_audio_decoder(value: Any) -> bool:
    """Whether `value` is a torchcodec `AudioDecoder` (what `datasets` returns for a decoded Audio value)."""
    # Checked by name first so that a plain array or path never triggers the torchcodec import.
    if not any(cls.__name__ == "AudioDecoder" for cls in type(value).__mro__):
        return False
    return isinstance(value, _audio_decoder_class())


def _ffmpeg_reason(error: Exception) -> str:
    """The useful part of a torchcodec error ("func, file.cpp:123, Could not open input file: x.wav Invalid data")."""
    message = str(error).strip()
    match = re.search(r"\.cpp:\d+, (.*)", message, flags=re.DOTALL)
    return " ".join((match.group(1) if match else message).split())


def _wav_truncation(head: bytes, total_size: int) -> tuple[int, int] | None:
    """`(declared, available)` data bytes when a RIFF/WAVE file's `data` chunk is cut short, else None.

    FFmpeg quietly decodes a WAV file cut at a frame boundary as a shorter clip (its duration comes from the file size),
    so the header's declared size is compared with what the file holds.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(head):
        chunk_id, size = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk_id == b"data":
            available = total_size - (offset + 8)
            if size not in (0, 0xFFFFFFFF) and size > available:  # 0 / 0xFFFFFFFF: written as a stream, size unknown
                return size, available
            return None
        offset += 8 + size + (size & 1)
    return None


def _check_wav_header(head: bytes, total_size: int, name: str) -> None:
    truncated = _wav_truncation(head, total_size)
    if truncated is not None:
        declared, available = truncated
        raise AudioDecodingError(
            name,
            f"truncated file: the WAV header declares {declared} bytes of audio data but only {available} are present",
        )


def open_decoder(source: Any, name: str):
    """A torchcodec `AudioDecoder` on a path or encoded bytes; FFmpeg's refusal becomes an `AudioDecodingError`."""
    decoder_class = _audio_decoder_class()  # an ImportError here (no FFmpeg) is not the file's fault
    try:
        return decoder_class(source)
    except Exception as error:  # torchcodec raises RuntimeError / ValueError with FFmpeg's reason
        reason = _ffmpeg_reason(error)
        if NO_AUDIO_STREAM in reason:  # FFmpeg opened it (a text file, an image, a silent video): no audio in it
            raise AudioDecodingError(name, "not an audio file: it has no audio stream") from error
        raise AudioDecodingError(name, f"unreadable or corrupt file ({reason})") from error


def _decode(source: Any, name: str) -> tuple[torch.Tensor, int]:
    """Decode a path, bytes or an AudioDecoder with torchcodec: `(channels, samples)` float32 and the rate."""
    decoder = source if is_audio_decoder(source) else open_decoder(source, name)
    try:
        samples = decoder.get_all_samples()
    except Exception as error:
        reason = _ffmpeg_reason(error)
        if "No audio frames were decoded" in reason:
            raise AudioDecodingError(name, "empty file: it contains no audio samples") from error
        raise AudioDecodingError(name, f"corrupt or truncated file: decoding failed ({reason})") from error
    data, rate = samples.data, int(samples.sample_rate)
    expected = getattr(decoder.metadata, "duration_seconds_from_header", None)
    if data.shape[-1] > 0 and expected:
        decoded = data.shape[-1] / rate
        if expected - decoded > max(TRUNCATION_TOLERANCE_SECONDS, TRUNCATION_TOLERANCE_FRACTION * expected):
            raise AudioDecodingError(
                name, f"truncated file: decoded {decoded:.2f} s of audio but its header declares {expected:.2f} s"
            )
    return data, rate


def check_file(path: str | os.PathLike) -> bytes:
    """The first 64 KiB of an audio file, after checking that it exists, is a non-empty file and, for WAV, that its
    data is all there."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise AudioDecodingError(name, "file not found")
    if not os.path.isfile(name):
        raise AudioDecodingError(name, "not a file")
    size = os.path.getsize(name)
    if size == 0:
        raise AudioDecodingError(name, "empty file (0 bytes)")
    with open(name, "rb") as f:
        head = f.read(65536)
    _check_wav_header(head, size, name)
    return head


def check_bytes(data: bytes, name: str) -> None:
    """The checks of `check_file` for encoded bytes."""
    if len(data) == 0:
        raise AudioDecodingError(name, "empty file (0 bytes)")
    _check_wav_header(data[:65536], len(data), name)


def _decode_path(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    name = os.fspath(path)
    head = check_file(name)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        decoded = _decode_wav(name)
        if decoded is not None:
            return decoded
    return _decode(name, name)


def _decode_wav(name: str) -> tuple[torch.Tensor, int] | None:
    """A WAV file through libsndfile (`soundfile`), 3-5x faster than FFmpeg on this plain format and giving the same
    samples; None where soundfile is not installed (FFmpeg decodes it then)."""
    try:
        import soundfile
    except ImportError:
        return None
    try:
        data, rate = soundfile.read(name, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile.LibsndfileError and friends, with libsndfile's reason
        raise AudioDecodingError(name, f"unreadable or corrupt WAV file ({error})") from error
    if data.shape[0] == 0:
        raise AudioDecodingError(name, "empty file: it contains no audio samples")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def _decode_bytes(data: bytes, name: str) -> tuple[torch.Tensor, int]:
    check_bytes(data, name)
    return _decode(bytes(data), name)


def _array_to_channels(array: Any, name: str) -> torch.Tensor:
    """An array of samples -> float32 `(channels, samples)`. 2-D arrays may be `(channels, samples)` or
    `(samples, channels)`: the shorter axis is taken as channels. Integer PCM is scaled to [-1, 1]."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
    else:
        array = np.asarray(array)
        if array.dtype == object:
            raise AudioDecodingError(name, f"not an array of samples (dtype {array.dtype})")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.uint8:  # 8-bit PCM is unsigned, centred on 128
        tensor = (tensor.float() - 128.0) / 128.0
    elif not tensor.is_floating_point():
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise AudioDecodingError(name, f"not an array of samples (dtype {tensor.dtype})")
        tensor = tensor.double() / float(-torch.iinfo(tensor.dtype).min)
    tensor = tensor.to(torch.float32)
    if tensor.dim() == 1:
        return tensor[None]
    if tensor.dim() == 2:
        return tensor if tensor.shape[0] <= tensor.shape[1] else tensor.T
    raise AudioDecodingError(
        name, f"expected 1-D (samples) or 2-D (channels, samples) audio, got shape {tuple(tensor.shape)}"
    )


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, dict) and source.get("path"):
        return str(source["path"])
    if is_audio_decoder(source):
        path = getattr(source.metadata, "path", None) or (getattr(source, "_hf_encoded", None) or {}).get("path")
        return str(path) if path else "<AudioDecoder>"
    return f"<{type(source).__name__}>"


def _to_channels(source: Any) -> tuple[torch.Tensor, int, str]:
    """Any supported source -> `(channels, samples)` float32, its rate, and its name for error messages."""
    name = _source_name(source)
    if isinstance(source, (str, os.PathLike)):
        return (*_decode_path(source), name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return (*_decode_bytes(bytes(source), "<bytes>"), "<bytes>")
    if is_audio_decoder(source):
        return (*_decode(source, name), name)
    if isinstance(source, dict):
        if source.get("array") is not None:
            if source.get("sampling_rate") is None:
                raise AudioDecodingError(name, "an audio dict with 'array' also needs 'sampling_rate'")
            return _array_to_channels(source["array"], name), int(source["sampling_rate"]), name
        if source.get("bytes") is not None:
            return (*_decode_bytes(source["bytes"], name), name)
        if source.get("path") is not None:
            return (*_decode_path(source["path"]), name)
        raise AudioDecodingError(
            name, f"an audio dict needs 'array' + 'sampling_rate', 'bytes' or 'path'; got keys {sorted(source)}"
        )
    if isinstance(source, (tuple, list)) and len(source) == 2 and isinstance(source[1], (int, np.integer)):
        return _array_to_channels(source[0], name), int(source[1]), "<array>"
    raise TypeError(
        "Audio source must be a file path, bytes, a datasets Audio value (dict or torchcodec AudioDecoder) or an "
        f"(array, sampling_rate) pair; got {type(source).__name__}"
    )


@functools.lru_cache(maxsize=16)
def _resampler(orig_rate: int, new_rate: int, dtype: torch.dtype) -> torch.nn.Module:
    import torchaudio.transforms

    return torchaudio.transforms.Resample(orig_rate, new_rate, dtype=dtype)


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis, as `torchaudio.functional.resample` with its defaults.

    The sinc kernel is built once per rate pair (`torchaudio.transforms.Resample`, cached); a no-op at equal rates.
    """
    if int(orig_rate) == int(new_rate):
        return wave
    with torch.no_grad():
        return _resampler(int(orig_rate), int(new_rate), wave.dtype)(wave)


def load_audio(source: Any, sampling_rate: int) -> torch.Tensor:
    """Decode `source` to a mono float32 waveform `(samples,)` at `sampling_rate`.

    Args:
        source: a file path (`str` / `os.PathLike`), encoded bytes, a `datasets` Audio value (a dict with `array` and
            `sampling_rate`, or `path` and/or `bytes`; or the torchcodec `AudioDecoder` `datasets` returns), or an
            `(array, rate)` pair. Multichannel audio is averaged to mono.
        sampling_rate: the rate to resample to.

    Raises:
        AudioDecodingError: missing, unreadable, corrupt or truncated file, no samples, or non-finite samples.
    """
    channels, rate, name = _to_channels(source)
    if rate <= 0:
        raise AudioDecodingError(name, f"invalid sampling rate {rate}")
    if channels.shape[-1] == 0:
        raise AudioDecodingError(name, "empty audio: it contains no samples")
    if not torch.isfinite(channels).all():
        raise AudioDecodingError(name, "non-finite samples (NaN or Inf)")
    wave = channels.mean(dim=0)
    return resample(wave, rate, sampling_rate).contiguous()


def peak_normalize(wave: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Scale `wave` so its largest absolute sample is `peak`; silence (all zeros) stays zeros, never NaN."""
    if not isinstance(wave, torch.Tensor):
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    current = wave.abs().max() if wave.numel() else wave.new_zeros(())
    if current == 0:
        return torch.zeros_like(wave)
    return wave * (peak / current)


def window_starts(num_samples: int, window: int, hop: int | None = None) -> list[int]:
    """Starts of windows of `window` samples every `hop` samples (back to back when `hop` is None) covering
    `num_samples`; the last window is aligned to the end (no padding). A clip no longer than a window is one window."""
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    hop = window if hop is None else hop
    if not 0 < hop <= window:
        raise ValueError(f"hop must be in (0, window={window}] so that the windows cover the clip, got {hop}")
    if num_samples <= window:
        return [0]
    starts = list(range(0, num_samples - window + 1, hop))
    if starts[-1] + window < num_samples:
        starts.append(num_samples - window)
    return starts


def cut_windows(
    wave: torch.Tensor,
    window_samples: int,
    hop_samples: int | None = None,
    random_crop: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cut a mono clip `(samples,)` into windows `(num_windows, window_samples)`.

    `random_crop=True` (training): one window at a uniformly random start (`generator` makes it reproducible).
    Otherwise (evaluation): every window of `window_starts(samples, window_samples, hop_samples)`. Either way a clip
    shorter than the window gives one window, zero-padded at the end.
    """
    if wave.dim() != 1:
        raise ValueError(f"cut_windows expects a mono clip (samples,), got shape {tuple(wave.shape)}")
    num_samples = wave.shape[0]
    if num_samples < window_samples:
        return torch.nn.functional.pad(wave, (0, window_samples - num_samples))[None]
    if random_crop:
        start = int(torch.randint(0, num_samples - window_samples + 1, (1,), generator=generator).item())
        return wave[start : start + window_samples][None].clone()
    starts = window_starts(num_samples, window_samples, hop_samples)
    return torch.stack([wave[s : s + window_samples] for s in starts])


def iter_audio_files(folder: str | os.PathLike) -> Iterator[Path]:
    """Audio files under `folder` (recursively, by `AUDIO_EXTENSIONS`, hidden files and folders skipped) in the order
    of their path relative to `folder`, walked lazily: only the folders on the way down are listed at any time.

    A folder's entries are taken in the order of their names, a sub-folder's as `name/` (every path under it starts
    so), which is exactly the sorted order of the relative paths. Symlinked folders are not entered and unreadable
    ones are skipped, as `os.walk` does."""

    def walk(directory: Path) -> Iterator[Path]:
        try:
            with os.scandir(directory) as scan:
                entries = [(e.name + "/" if e.is_dir() else e.name, e.is_symlink()) for e in scan
                           if not e.name.startswith(".")]
        except OSError:
            return
        for key, link in sorted(entries):
            if key.endswith("/"):
                if not link:
                    yield from walk(directory / key[:-1])
            elif os.path.splitext(key)[1].lower() in AUDIO_EXTENSIONS:
                yield directory / key

    yield from walk(Path(folder))


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """`iter_audio_files` as a list."""
    return list(iter_audio_files(folder))


__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioDecodingError",
    "audio_files",
    "cut_windows",
    "is_audio_decoder",
    "iter_audio_files",
    "load_audio",
    "peak_normalize",
    "resample",
    "window_starts",
]
