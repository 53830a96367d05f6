"""Decode a track in blocks and cut it into windows, in memory bounded by the window and block sizes.

`load_audio` decodes a whole file at once: fine for clips, not for a 30-minute track (its decoded channels alone are
hundreds of MB at 44.1 kHz). `iter_windows` gives the same windows as

    wave = load_audio(source, sampling_rate)            # (optionally peak_normalize(wave))
    [wave[s : s + window] for s in window_starts(len(wave), window, hop)]

but reads the file frame by frame (torchcodec's core `get_next_frame`, front to back) and downmixes each block of
frames. A track of up to `WHOLE_SECONDS` is then resampled in one piece, exactly as `load_audio` resamples it (the
same samples, bit for bit: clips are served as they were trained). A longer one is resampled block by block with
`StreamingResampler`, which computes what `torchaudio.functional.resample` computes on the whole signal (each output
sample sees the same input samples; blocks overlap by the filter's support; equal to within float rounding). Only
`window + block` samples are then held at a time, so memory does not grow with the track's length.

Peak normalisation needs the whole track's peak, so with `normalize=True` the file is streamed twice (the second pass
is cheap next to the encoder).

Sources: file paths and encoded bytes stream; in-memory audio (a `datasets` dict with `array`, an `(array, rate)`
pair) is already decoded and goes through `load_audio`. Every problem with a source raises `AudioDecodingError`.
"""

import itertools
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .audio import (
    TRUNCATION_TOLERANCE_FRACTION,
    TRUNCATION_TOLERANCE_SECONDS,
    AudioDecodingError,
    _ffmpeg_reason,
    _source_name,
    check_bytes,
    check_file,
    load_audio,
    open_decoder,
    peak_normalize,
    resample,
    window_starts,
)

# Seconds of source audio decoded per block.
BLOCK_SECONDS = 30.0
# Tracks up to this long are resampled in one piece, exactly as `load_audio` does; longer ones block by block.
WHOLE_SECONDS = 120.0
# torchaudio.functional.resample's defaults (the package resamples with them everywhere).
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99


class StreamingResampler:
    """`torchaudio.functional.resample(whole_signal, orig, new)` computed block by block.

    torchaudio resamples in units of `o = orig / gcd` input and `n = new / gcd` output samples: output group `t`
    (samples `t * n ... t * n + n - 1`) reads input samples `t * o - width ... t * o + o + width`. Each block is
    resampled with `margin >= width + o` input samples of context on both sides (a multiple of `o`, so output
    indices stay aligned), and only the output groups whose support lies inside are kept; the signal's true ends are
    zero-padded exactly as torchaudio pads the whole signal. Blocks are float32 numpy arrays.
    """

    def __init__(self, orig_rate: int, new_rate: int):
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self.passthrough = self.orig_rate == self.new_rate
        gcd = math.gcd(self.orig_rate, self.new_rate)
        self.o, self.n = self.orig_rate // gcd, self.new_rate // gcd
        width = math.ceil(_LOWPASS_FILTER_WIDTH * self.o / (min(self.o, self.n) * _ROLLOFF))
        self.margin = math.ceil((width + self.o + 1) / self.o) * self.o
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # input index of _buffer[0]
        self._total_in = 0
        self._next_group = 0  # first output group not yet emitted

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed the next input samples; returns the output samples that are now final."""
        if self.passthrough:
            return samples
        self._buffer = np.concatenate([self._buffer, samples])
        self._total_in += samples.shape[0]
        ready = (self._total_in - self.margin) // self.o
        return self._emit(ready, final=False) if ready > self._next_group else np.zeros(0, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """The remaining output samples once the input has ended."""
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        return self._emit(None, final=True)

    def _emit(self, end_group: int | None, final: bool) -> np.ndarray:
        start = max(0, self._next_group * self.o - self.margin)
        stop = self._total_in if final else min(self._total_in, end_group * self.o + self.margin)
        segment = self._buffer[start - self._buffer_start : stop - self._buffer_start]
        if segment.size == 0:
            return segment
        out = resample(torch.from_numpy(segment), self.orig_rate, self.new_rate).numpy()
        offset = (self._next_group * self.o - start) // self.o * self.n
        if final:
            out = out[offset:]
            self._next_group = math.ceil(self._total_in / self.o)
        else:
            out = out[offset : offset + (end_group - self._next_group) * self.n]
            self._next_group = end_group
        keep_from = max(0, self._next_group * self.o - self.margin)
        self._buffer = self._buffer[keep_from - self._buffer_start :].copy()
        self._buffer_start = keep_from
        return out


def _open_decoder(source: Any, name: str):
    """A torchcodec `AudioDecoder` on a path or encoded bytes, after the checks `load_audio` makes."""
    if isinstance(source, (str, os.PathLike)):
        check_file(source)
        return open_decoder(os.fspath(source), name)
    data = bytes(source)
    check_bytes(data, name)
    return open_decoder(data, name)


def _next_frame_reader(decoder) -> Callable[[], np.ndarray | None] | None:
    """A function giving the decoder's next frame `(channels, samples)` (None at the end of the stream), through
    torchcodec's frame-by-frame core API; None where that API is missing (other torchcodec versions)."""
    try:
        from torchcodec import _core as core

        get_next_frame = core.get_next_frame
        handle = decoder._decoder
    except (ImportError, AttributeError):
        return None

    def read() -> np.ndarray | None:
        try:
            return get_next_frame(handle)[0].numpy()
        except IndexError:  # "Requested next frame while there are no more frames left to decode."
            return None

    return read


def _range_blocks(decoder, rate: int, block: int, name: str) -> Iterator[np.ndarray]:
    """Blocks through the public `get_samples_played_in_range`. Each call after the first seeks back to the stream's
    start (torchcodec decodes audio forward only, and the previous call decoded past the block's end), so this costs
    O(length^2 / block): used only where the frame-by-frame API is missing."""
    # Compressed streams may start after 0 (an MP3's encoder delay): block times are counted from the stream's start.
    origin = float(getattr(decoder.metadata, "begin_stream_seconds", None) or 0.0)
    decoded = 0
    while True:
        start = origin + decoded / rate
        try:
            samples = decoder.get_samples_played_in_range(start, origin + (decoded + block) / rate)
        except Exception as error:
            if "No audio frames were decoded" in _ffmpeg_reason(error) and decoded > 0:
                return  # the previous block ended exactly at the end of the stream
            raise
        data = samples.data.numpy()
        overlap = int(round((start - float(samples.pts_seconds)) * rate))
        if overlap > 0:  # a decoder that starts at a frame boundary before the requested time
            data = data[:, overlap:]
        elif overlap < 0:
            raise AudioDecodingError(name, f"decoding skipped {-overlap} samples at {start:.3f} s")
        if data.shape[-1] > 0:
            decoded += data.shape[-1]
            yield data
        if data.shape[-1] < block:
            return


def _frame_blocks(read: Callable[[], np.ndarray | None], block: int) -> Iterator[np.ndarray]:
    """Frames gathered into blocks of about `block` samples."""
    frames, size = [], 0
    while True:
        frame = read()
        if frame is None:
            break
        frames.append(frame)
        size += frame.shape[-1]
        if size >= block:
            yield np.concatenate(frames, axis=1)
            frames, size = [], 0
    if frames:
        yield np.concatenate(frames, axis=1)


def _decoded_blocks(source: Any, name: str, block_seconds: float) -> tuple[int, Iterator[np.ndarray]]:
    """`(rate, blocks)`: the file's mono samples at its own rate, block by block (float32 numpy arrays; numpy rather
    than torch for the element-wise work, which stays single-threaded and cheap beside the encoder's threads).

    Frames are read one after the other with torchcodec's frame-by-frame API (what `get_all_samples` concatenates),
    so a track is decoded once, front to back."""
    decoder = _open_decoder(source, name)
    rate = int(decoder.metadata.sample_rate or 0)
    if rate <= 0:
        raise AudioDecodingError(name, f"invalid sampling rate {rate}")
    expected = getattr(decoder.metadata, "duration_seconds_from_header", None)
    block = max(1, int(round(block_seconds * rate)))
    read = _next_frame_reader(decoder)

    def blocks() -> Iterator[np.ndarray]:
        decoded = 0
        raw = _frame_blocks(read, block) if read is not None else _range_blocks(decoder, rate, block, name)
        while True:
            try:
                data = next(raw)
            except StopIteration:
                break
            except AudioDecodingError:
                raise
            except Exception as error:
                reason = _ffmpeg_reason(error)
                if "No audio frames were decoded" in reason and decoded == 0:
                    raise AudioDecodingError(name, "empty file: it contains no audio samples") from error
                raise AudioDecodingError(name, f"corrupt or truncated file: decoding failed ({reason})") from error
            if not np.isfinite(data).all():
                raise AudioDecodingError(name, "non-finite samples (NaN or Inf)")
            decoded += data.shape[-1]
            yield data.mean(axis=0, dtype=np.float32)
        if decoded == 0:
            raise AudioDecodingError(name, "empty audio: it contains no samples")
        if expected:
            seconds = decoded / rate
            if expected - seconds > max(TRUNCATION_TOLERANCE_SECONDS, TRUNCATION_TOLERANCE_FRACTION * expected):
                raise AudioDecodingError(
                    name, f"truncated file: decoded {seconds:.2f} s of audio but its header declares {expected:.2f} s"
                )

    return rate, blocks()


def _resampled_blocks(
    source: Any, name: str, sampling_rate: int, block_seconds: float, whole_seconds: float
) -> Iterator[np.ndarray]:
    """The track's mono samples at `sampling_rate`, block by block. A track of at most `whole_seconds` is resampled
    in one piece, as `load_audio` resamples it (the same samples, bit for bit); a longer one block by block."""
    rate, blocks = _decoded_blocks(source, name, block_seconds)
    head, size, limit = [], 0, int(whole_seconds * rate)
    for block in blocks:
        head.append(block)
        size += block.shape[0]
        if size > limit:
            break
    else:
        yield resample(torch.from_numpy(np.concatenate(head)), rate, sampling_rate).numpy()
        return
    resampler = StreamingResampler(rate, sampling_rate)
    for block in itertools.chain(head, blocks):
        out = resampler.push(block)
        if out.size:
            yield out
    tail = resampler.finish()
    if tail.size:
        yield tail


def _cut(blocks: Iterator[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """`(start, samples)` of every window of `window_starts(total, window, hop)`, read from a stream of blocks."""
    buffer, buffer_start, total, next_start, emitted = np.zeros(0, dtype=np.float32), 0, 0, 0, 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        total += block.shape[0]
        while next_start + window <= total:
            yield next_start, buffer[next_start - buffer_start : next_start - buffer_start + window].copy()
            next_start += hop
            emitted += 1
        # keep what the next regular window or a final end-aligned one can need
        keep_from = max(buffer_start, min(next_start, total - window))
        buffer = buffer[keep_from - buffer_start :]
        buffer_start = keep_from
    if total == 0:
        return
    if emitted == 0:  # shorter than one window: the clip itself
        yield 0, buffer.copy()
    elif next_start - hop + window < total:
        yield total - window, buffer[total - window - buffer_start :].copy()


def stream_source(source: Any) -> bool:
    """Whether `source` is read block by block (paths and encoded bytes) rather than decoded at once."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return True
    if isinstance(source, dict) and source.get("array") is None:
        return source.get("bytes") is not None or source.get("path") is not None
    return False


def _stream_target(source: Any) -> Any:
    if isinstance(source, dict):
        return source["bytes"] if source.get("bytes") is not None else source["path"]
    return source


def iter_windows(
    source: Any,
    sampling_rate: int,
    window: int,
    hop: int | None = None,
    normalize: bool = False,
    block_seconds: float = BLOCK_SECONDS,
    whole_seconds: float = WHOLE_SECONDS,
) -> Iterator[tuple[int, torch.Tensor]]:
    """`(start_sample, samples)` for each window of a track, as `load_audio` + `window_starts` would cut it.

    Args:
        source: a path, encoded bytes, or a `datasets` Audio value / `(array, rate)` pair (in memory).
        sampling_rate: the encoder's rate.
        window: window length in samples; `hop`: hop in samples (`None`: back-to-back windows). The last window is
            aligned to the end of the track; a track shorter than a window is one short window.
        normalize: peak-normalise the whole track first (as `AudioCapFeatureExtractor(normalize=True)` does).
        block_seconds: seconds of the source decoded at a time.
        whole_seconds: a track up to this long is resampled in one piece, giving exactly `load_audio`'s samples; a
            longer one is resampled block by block (equal to within float rounding, about 1e-7).

    Raises:
        AudioDecodingError: the source is missing, unreadable, corrupt, truncated, empty or not finite (possibly after
            some windows were given: the caller drops the track).
    """
    hop = window if hop is None else hop
    if not 0 < hop <= window:
        raise ValueError(f"hop must be in (0, window={window}], got {hop}")
    if not stream_source(source):
        try:
            wave = load_audio(source, sampling_rate)
        except TypeError as error:  # not an audio source at all
            raise AudioDecodingError(_source_name(source), str(error)) from error
        if normalize:
            wave = peak_normalize(wave)
        for start in window_starts(wave.shape[0], window, hop):
            yield start, wave[start : start + window]
        return
    name, target = _source_name(source), _stream_target(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "<bytes>"
    scale = None
    if normalize:
        peak = np.float32(0.0)
        for block in _resampled_blocks(target, name, sampling_rate, block_seconds, whole_seconds):
            peak = max(peak, np.abs(block).max())
        scale = None if peak == 0 else np.float32(1.0) / np.float32(peak)  # as peak_normalize, in float32
    for start, samples in _cut(_resampled_blocks(target, name, sampling_rate, block_seconds, whole_seconds), window, hop):
        if normalize:
            samples = samples * scale if scale is not None else np.zeros_like(samples)
        yield start, torch.from_numpy(samples)


__all__ = ["BLOCK_SECONDS", "StreamingResampler", "iter_windows", "stream_source"]
