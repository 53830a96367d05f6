"""Configurations of audiocap's from-scratch music encoders (the CLMR / music2vec / spectrogram-baseline systems).

Every one of them reads the raw waveform `input_values` `(batch, samples)` at its own `sampling_rate` and computes its
own front end inside the model (a log-mel spectrogram for the spectrogram models), so to the rest of audiocap it is a
waveform encoder with a trivial feature extractor. Every one gives `num_hidden_layers + 1` hidden states of the same
shape `(batch, frames, hidden_size)`: the front end's (stem's) output, then one per block, as transformers' own
encoders do. The defaults are small (under 1M parameters, width 64) so that they train on a CPU; the docstrings give
the settings of the reference systems.

- [`SampleCNNConfig`] (`audiocap_samplecnn`): SampleCNN on raw samples (CLMR's encoder), 22.05 kHz.
- [`SoundNetConfig`] (`audiocap_soundnet`): SoundNet-style strided 1-D convolutions on raw samples, optionally
  followed by a stacked LSTM, 22.05 kHz.
- [`MelCNNConfig`] (`audiocap_melcnn`): a ResNet-18-style 2-D residual CNN on log-mel, 16 kHz.
- [`CLDNNConfig`] (`audiocap_cldnn`): convolution over frequency, stacked LSTM and dense layers on log-mel, 16 kHz.
- [`SpecLSTMConfig`] (`audiocap_speclstm`): the plain stacked LSTM on log-mel baseline, 16 kHz.
- [`ConvAutoEncoderConfig`] (`audiocap_conv_autoencoder`): a convolutional auto-encoder of the log-mel whose latent
  vector is the embedding; its reconstruction error is a training loss of its own (`auxiliary_loss`), 16 kHz.

`MUSIC2VEC_PRESETS` holds the sizes of the six models of music2vec (Srinivasa & Hebbar, "music2vec: Generating
Vector Embeddings for Genre-Classification Task", 2017: supervised genre classification on FMA-small), which
`resolve_encoder` builds as `audiocap/music2vec-<model>`.
"""

import math
from collections.abc import Callable
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig


def _as_list(value, length: int, name: str) -> list[int]:
    """An int repeated `length` times, or a list/tuple that must have `length` entries."""
    if isinstance(value, int):
        return [value] * length
    if len(value) != length:
        raise ValueError(f"{name} must be an int or have {length} entries, got {list(value)}")
    return list(value)


def _check_positive(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        values = [value] if isinstance(value, (int, float)) else list(value)
        if any(v <= 0 for v in values):
            raise ValueError(f"{type(config).__name__}: {name} must be positive, got {value}")


def _derived_layer_count(count: Callable[[Any], int], fields: str) -> property:
    """A `num_hidden_layers` that follows from other fields (`count(config)`): `PretrainedConfig` may set it to that
    value (from a saved config, say); any other value is refused, naming the `fields` to set instead."""

    def refuse_other_values(config, value: int) -> None:
        if value != count(config):
            raise AttributeError(f"{type(config).__name__}.num_hidden_layers follows from {fields}; set those instead")

    return property(count, refuse_other_values)


@strict
class ScratchEncoderConfig(PretrainedConfig):
    r"""
    Fields shared by audiocap's from-scratch encoders (not a model of its own).

    Args:
        sampling_rate (`int`): rate, in Hz, of the waveforms the model reads.
        hidden_size (`int`): width of every hidden state the model returns (blocks of another width are brought to
            it by a linear projection).
    """

    sampling_rate: int = 16000
    hidden_size: int = 64

    def validate_scratch_encoder(self):
        """Part of `@strict` validation."""
        _check_positive(self, "sampling_rate", "hidden_size")


@strict
class ScratchLogMelConfig(ScratchEncoderConfig):
    r"""
    Fields of the encoders that compute a log-mel spectrogram from the waveform inside the model
    (`torchaudio.transforms.MelSpectrogram`, power 2, then `AmplitudeToDB`, per element, no `top_db` clipping).

    With `frequency_scale="log"` the bands are triangles whose centres are equally spaced in log frequency (a
    constant-Q filterbank over the STFT): the band edges and centres are `n_mels + 2` points from `f_min` to `f_max`,
    `(n_mels + 1) / log2(f_max / f_min)` bands per octave, so that a musical interval is the same shift of bands at
    every pitch, which is what lets a 2-D convolution tell a minor chord from a major one. Bands narrower than an FFT
    bin (`sampling_rate / n_fft`) are widened to one bin on each side of their centre, so every band reads the
    spectrum; for distinct semitones the bins must be finer than a semitone at `f_min` (about `0.06 * f_min` Hz),
    e.g. `n_fft=2048` at 16 kHz from `f_min=130`.

    Args:
        n_fft (`int`): FFT size.
        win_length (`int`): window length in samples (Hann window).
        hop_length (`int`): hop in samples; the spectrogram has `samples // hop_length + 1` frames (centred).
        n_mels (`int`): frequency bands (mel bands, or log-frequency bands with `frequency_scale="log"`).
        f_min (`float`), f_max (`float`, optional): band edges in Hz (`None`: half the sampling rate).
        frequency_scale (`str`, defaults to `"mel"`): `"mel"` (HTK mel scale) or `"log"` (needs `f_min > 0`).
        input_batch_norm (`bool`): normalise each band with a BatchNorm before the network.
    """

    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    f_min: float | int = 0.0
    f_max: float | int | None = None
    frequency_scale: str = "mel"
    input_batch_norm: bool = True

    def validate_log_mel(self):
        """Part of `@strict` validation."""
        _check_positive(self, "n_fft", "win_length", "hop_length", "n_mels")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        f_max = self.f_max if self.f_max is not None else self.sampling_rate / 2
        if not 0 <= self.f_min < f_max <= self.sampling_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sampling_rate / 2, got f_min={self.f_min}, f_max={self.f_max}"
            )
        if self.frequency_scale not in ("mel", "log"):
            raise ValueError(f"frequency_scale must be 'mel' or 'log', got {self.frequency_scale!r}")
        if self.frequency_scale == "log" and self.f_min <= 0:
            raise ValueError("frequency_scale='log' needs f_min > 0 (log-spaced bands start above 0 Hz), e.g. 55.0")


@strict
class SampleCNNConfig(ScratchEncoderConfig):
    r"""
    Configuration of [`SampleCNNModel`]: SampleCNN on raw samples, the encoder of CLMR.

    A strided convolution (the stem) turns samples into frames; each block is Conv1d(`kernel_size`, "same") ->
    BatchNorm -> ReLU -> MaxPool1d(`pool_size`, ceil mode, so short inputs keep at least one frame). With the
    defaults one output frame covers 3^10 = 59049 samples (2.7 s at 22.05 kHz).

    CLMR's encoder (59049-sample input, 10 conv layers after the stem, the last without pooling):
    `SampleCNNConfig(num_hidden_layers=10, conv_dim=[128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512],
    pool_size=[3, 3, 3, 3, 3, 3, 3, 3, 3, 1], hidden_size=512)` (2.4M parameters, plus 1M in the linear maps that
    bring the narrower blocks to width 512 for the hidden states).

    Args:
        sampling_rate (`int`, defaults to 22050), hidden_size (`int`, defaults to 64): see [`ScratchEncoderConfig`].
        num_hidden_layers (`int`, defaults to 9): blocks after the stem.
        conv_dim (`list[int]`, optional): channels of the stem then of each block (`num_hidden_layers + 1`
            entries); `None` gives every one `hidden_size` channels.
        stem_kernel_size (`int`, defaults to 3), stem_stride (`int`, defaults to 3): the stem convolution.
        kernel_size (`int`, defaults to 3): kernel of every block's convolution (odd).
        pool_size (`int` or `list[int]`, defaults to 3): max-pooling of each block (1: none).
    """

    model_type = "audiocap_samplecnn"

    sampling_rate: int = 22050
    hidden_size: int = 64
    num_hidden_layers: int = 9
    conv_dim: list[int] | tuple[int, ...] | None = None
    stem_kernel_size: int = 3
    stem_stride: int = 3
    kernel_size: int = 3
    pool_size: int | list[int] | tuple[int, ...] = 3

    @property
    def channels(self) -> list[int]:
        """Channels of the stem, then of each block."""
        if self.conv_dim is None:
            return [self.hidden_size] * (self.num_hidden_layers + 1)
        return list(self.conv_dim)

    @property
    def pool_sizes(self) -> list[int]:
        return _as_list(self.pool_size, self.num_hidden_layers, "pool_size")

    def validate_samplecnn(self):
        """Part of `@strict` validation."""
        _check_positive(self, "num_hidden_layers", "stem_kernel_size", "stem_stride", "kernel_size", "pool_size")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if len(self.channels) != self.num_hidden_layers + 1:
            raise ValueError(
                f"conv_dim needs num_hidden_layers + 1 = {self.num_hidden_layers + 1} entries (stem, then each "
                f"block), got {len(self.channels)}"
            )
        _check_positive(self, "channels")
        _as_list(self.pool_size, self.num_hidden_layers, "pool_size")


@strict
class SoundNetConfig(ScratchEncoderConfig):
    r"""
    Configuration of [`SoundNetModel`]: SoundNet-style strided 1-D convolutions on raw samples, optionally followed
    by a stacked LSTM over the last convolution's frames.

    Each convolution is Conv1d(`conv_kernel[i]`, stride `conv_stride[i]`, padding `conv_padding[i]`) -> BatchNorm ->
    ReLU -> MaxPool1d(`pool_size[i]`, ceil mode; 1: none). With the defaults one output frame covers 4096 samples
    (5.4 frames per second at 22.05 kHz).

    SoundNet's 8-layer network, without its class-prediction conv8:
    `SoundNetConfig(conv_dim=[16, 32, 64, 128, 256, 512, 1024], conv_kernel=[64, 32, 16, 8, 4, 4, 4],
    conv_stride=[2, 2, 2, 2, 2, 2, 2], pool_size=[8, 8, 1, 1, 4, 1, 1], hidden_size=1024)`.

    Args:
        sampling_rate (`int`, defaults to 22050), hidden_size (`int`, defaults to 64): see [`ScratchEncoderConfig`].
        conv_dim, conv_kernel, conv_stride, pool_size (`list[int]`): one entry per convolution.
        conv_padding (`list[int]`, optional): zero padding of each convolution on each side; `None`: half its
            kernel (`conv_kernel[i] // 2`).
        lstm_layers (`int`, defaults to 0): LSTM layers after the convolutions (0: none), each giving a hidden
            state of width `hidden_size`.
        lstm_bidirectional (`bool`): bidirectional LSTM layers (`hidden_size // 2` per direction).
        lstm_dropout (`float`): dropout between LSTM layers.
    """

    model_type = "audiocap_soundnet"

    sampling_rate: int = 22050
    hidden_size: int = 64
    conv_dim: list[int] | tuple[int, ...] = (16, 32, 64, 64, 64)
    conv_kernel: list[int] | tuple[int, ...] = (64, 32, 16, 8, 4)
    conv_stride: list[int] | tuple[int, ...] = (2, 2, 2, 2, 2)
    pool_size: list[int] | tuple[int, ...] = (8, 8, 1, 1, 2)
    conv_padding: list[int] | tuple[int, ...] | None = None
    lstm_layers: int = 0
    lstm_bidirectional: bool = False
    lstm_dropout: float | int = 0.0

    # Hidden states beyond the first convolution's: the other convolutions, then the LSTM layers.
    num_hidden_layers = _derived_layer_count(
        lambda self: len(self.conv_dim) - 1 + self.lstm_layers, "conv_dim and lstm_layers"
    )

    @property
    def paddings(self) -> list[int]:
        """Zero padding of each convolution on each side."""
        if self.conv_padding is None:
            return [kernel // 2 for kernel in self.conv_kernel]
        return list(self.conv_padding)

    def validate_soundnet(self):
        """Part of `@strict` validation."""
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) == len(self.pool_size) > 0:
            raise ValueError(
                "conv_dim, conv_kernel, conv_stride and pool_size need one (and the same number of) entries per "
                f"convolution, got {len(self.conv_dim)}, {len(self.conv_kernel)}, {len(self.conv_stride)}, "
                f"{len(self.pool_size)}"
            )
        _check_positive(self, "conv_dim", "conv_kernel", "conv_stride", "pool_size")
        if len(self.paddings) != len(self.conv_dim) or any(p < 0 for p in self.paddings):
            raise ValueError(
                f"conv_padding needs one entry >= 0 per convolution ({len(self.conv_dim)}), got {list(self.paddings)}"
            )
        _check_lstm(self, self.lstm_layers)


@strict
class MelCNNConfig(ScratchLogMelConfig):
    r"""
    Configuration of [`MelCNNModel`]: a ResNet-18-style residual 2-D CNN on log-mel.

    Stem: Conv2d(`stem_kernel_size`, stride `stem_stride`) -> BatchNorm -> ReLU (-> MaxPool2d(3, stride 2) when
    `stem_pool`); then stages of basic residual blocks (two 3x3 convolutions; a 1x1 convolution on the shortcut
    where the shape changes), the first block of each stage strided by `stage_strides` over frequency and time.
    With the defaults the frame rate is 100 / 32 (about 3 frames per second).

    ResNet-18 widths: `MelCNNConfig(stage_channels=[64, 128, 256, 512], hidden_size=512)` (about 11M parameters).

    Args:
        sampling_rate (`int`, defaults to 16000), n_mels (`int`, defaults to 64) and the other log-mel fields: see
            [`ScratchLogMelConfig`]; hidden_size (`int`, defaults to 64): see [`ScratchEncoderConfig`].
        stage_channels (`list[int]`): channels of each stage (the stem has the first stage's).
        layers_per_stage (`list[int]`): residual blocks of each stage.
        stage_strides (`list[int]`): stride of each stage's first block.
        stem_kernel_size (`int`, defaults to 7), stem_stride (`int`, defaults to 2), stem_pool (`bool`).
    """

    model_type = "audiocap_melcnn"

    stage_channels: list[int] | tuple[int, ...] = (16, 32, 64, 64)
    layers_per_stage: list[int] | tuple[int, ...] = (2, 2, 2, 2)
    stage_strides: list[int] | tuple[int, ...] = (1, 2, 2, 2)
    stem_kernel_size: int = 7
    stem_stride: int = 2
    stem_pool: bool = True

    # Residual blocks (the stem's output is the first hidden state).
    num_hidden_layers = _derived_layer_count(lambda self: sum(self.layers_per_stage), "layers_per_stage")

    def validate_melcnn(self):
        """Part of `@strict` validation."""
        if not len(self.stage_channels) == len(self.layers_per_stage) == len(self.stage_strides) > 0:
            raise ValueError(
                "stage_channels, layers_per_stage and stage_strides need one entry per stage, got "
                f"{len(self.stage_channels)}, {len(self.layers_per_stage)}, {len(self.stage_strides)}"
            )
        _check_positive(self, "stage_channels", "layers_per_stage", "stage_strides", "stem_kernel_size", "stem_stride")


@strict
class CLDNNConfig(ScratchLogMelConfig):
    r"""
    Configuration of [`CLDNNModel`]: convolution over frequency, stacked LSTM, dense layers (CLDNN) on log-mel.

    Each convolution is Conv2d over (frequency, time) with kernel (`conv_freq_kernel[i]`, `conv_time_kernel[i]`),
    `conv_freq_padding` over frequency and "same" over time -> BatchNorm -> ReLU -> MaxPool over frequency only
    (`conv_freq_pool[i]`); the remaining (channels x frequency) features of each frame are projected linearly to
    `hidden_size` (CLDNN's dimensionality-reduction layer; with `reduction_layer=False` they go to the LSTM as they
    are), then go through the LSTM layers and the dense (Linear -> ReLU) layers, all of width `hidden_size`. The frame
    rate is the spectrogram's (100 per second).

    The CLDNN paper's sizes (40 mels, 2 convolutions of 256 maps with 9x9 and 4x3 kernels, 2 LSTMP layers of 832
    cells projected to 512, a dense layer): `CLDNNConfig(n_mels=40, conv_channels=[256, 256], hidden_size=512,
    lstm_cells=832)`.

    Args:
        sampling_rate (`int`, defaults to 16000), n_mels (`int`, defaults to 40) and the other log-mel fields: see
            [`ScratchLogMelConfig`]; hidden_size (`int`, defaults to 64): see [`ScratchEncoderConfig`].
        conv_channels, conv_freq_kernel, conv_time_kernel (odd), conv_freq_pool (`list[int]`): one entry per
            convolution.
        conv_freq_padding (`str`, defaults to `"valid"`): `"valid"` (no padding over frequency) or `"same"` (as
            many bins out as in, before pooling).
        reduction_layer (`bool`, defaults to `True`): project each frame's (channels x frequency) features linearly
            to `hidden_size` before the LSTM; `False` feeds them to the LSTM unchanged (the first hidden state is then
            those features, brought to `hidden_size` by a linear map of their own where the widths differ).
        num_lstm_layers (`int`, defaults to 2), num_dense_layers (`int`, defaults to 1).
        lstm_cells (`int`, optional): LSTM cells per direction; when larger than the output width, the LSTM
            projects down to it (LSTMP). `None`: as many as the output width.
        lstm_bidirectional (`bool`): bidirectional LSTM layers (`hidden_size // 2` per direction).
        lstm_dropout (`float`): dropout between LSTM layers.
    """

    model_type = "audiocap_cldnn"

    n_mels: int = 40
    conv_channels: list[int] | tuple[int, ...] = (16, 16)
    conv_freq_kernel: list[int] | tuple[int, ...] = (9, 4)
    conv_time_kernel: list[int] | tuple[int, ...] = (9, 3)
    conv_freq_pool: list[int] | tuple[int, ...] = (3, 1)
    conv_freq_padding: str = "valid"
    reduction_layer: bool = True
    num_lstm_layers: int = 2
    num_dense_layers: int = 1
    lstm_cells: int | None = None
    lstm_bidirectional: bool = False
    lstm_dropout: float | int = 0.0

    # LSTM layers plus dense layers (the dimensionality-reduction output is the first hidden state).
    num_hidden_layers = _derived_layer_count(
        lambda self: self.num_lstm_layers + self.num_dense_layers, "num_lstm_layers and num_dense_layers"
    )

    @property
    def conv_output_bins(self) -> int:
        """Frequency bins left after the convolutions and their pooling."""
        bins = self.n_mels
        for kernel, pool in zip(self.conv_freq_kernel, self.conv_freq_pool, strict=True):
            bins = (bins if self.conv_freq_padding == "same" else bins - kernel + 1) // pool
        return bins

    @property
    def conv_output_width(self) -> int:
        """Features per frame after the convolutions: channels x remaining frequency bins."""
        return self.conv_channels[-1] * self.conv_output_bins

    def validate_cldnn(self):
        """Part of `@strict` validation."""
        fields = (self.conv_channels, self.conv_freq_kernel, self.conv_time_kernel, self.conv_freq_pool)
        lengths = [len(field) for field in fields]
        if len(set(lengths)) != 1:
            raise ValueError(
                "conv_channels, conv_freq_kernel, conv_time_kernel and conv_freq_pool need one entry per convolution, "
                f"got {lengths}"
            )
        _check_positive(self, "conv_channels", "conv_freq_kernel", "conv_time_kernel", "conv_freq_pool")
        if any(k % 2 == 0 for k in self.conv_time_kernel):
            raise ValueError(f"conv_time_kernel entries must be odd, got {list(self.conv_time_kernel)}")
        if self.conv_freq_padding not in ("valid", "same"):
            raise ValueError(f"conv_freq_padding must be 'valid' or 'same', got {self.conv_freq_padding!r}")
        if self.conv_output_bins < 1:
            raise ValueError(f"the convolutions leave no frequency bins of the {self.n_mels} mel bands")
        if self.num_dense_layers < 0:
            raise ValueError(f"num_dense_layers must be >= 0, got {self.num_dense_layers}")
        _check_lstm(self, self.num_lstm_layers)


@strict
class SpecLSTMConfig(ScratchLogMelConfig):
    r"""
    Configuration of [`SpecLSTMModel`]: the plain stacked-LSTM-on-log-mel baseline.

    Each frame's (normalised) log-mel vector is projected linearly to `hidden_size` (the first hidden state), then
    goes through `num_hidden_layers` LSTM layers of output width `hidden_size`; with `input_projection=False` the LSTM
    reads the log-mel frames themselves (the first hidden state is then the log-mel, brought to `hidden_size` by a
    linear map used only for the hidden states). The frame rate is the spectrogram's (100 per second).

    A paper-size baseline: `SpecLSTMConfig(n_mels=128, n_fft=1024, hidden_size=256, num_hidden_layers=3)`.

    Args:
        sampling_rate (`int`, defaults to 16000), n_mels (`int`, defaults to 64) and the other log-mel fields: see
            [`ScratchLogMelConfig`]; hidden_size (`int`, defaults to 64): see [`ScratchEncoderConfig`].
        num_hidden_layers (`int`, defaults to 2): LSTM layers.
        input_projection (`bool`, defaults to `True`): feed the LSTM a linear projection of each frame.
        lstm_cells, lstm_bidirectional, lstm_dropout: as in [`CLDNNConfig`].
    """

    model_type = "audiocap_speclstm"

    num_hidden_layers: int = 2
    input_projection: bool = True
    lstm_cells: int | None = None
    lstm_bidirectional: bool = False
    lstm_dropout: float | int = 0.0

    def validate_speclstm(self):
        """Part of `@strict` validation."""
        _check_positive(self, "num_hidden_layers")
        _check_lstm(self, self.num_hidden_layers)


@strict
class ConvAutoEncoderConfig(ScratchLogMelConfig):
    r"""
    Configuration of [`ConvAutoEncoderModel`]: a convolutional auto-encoder of a segment's log-mel whose latent vector
    is the embedding, trained jointly with the classifier on top of it (music2vec's joint auto-encoder).

    Encoder: the log-mel `(n_mels, num_frames)`, then per block Conv2d(`conv_kernel_size`, "same") -> BatchNorm ->
    ReLU -> MaxPool2d(`pool_size[i]`, over frequency and time alike; 1: none), flattened, then Linear -> ReLU to the
    latent vector of width `hidden_size`. Decoder, its mirror image: Linear -> ReLU back to the last block's shape,
    then per block in reverse order nearest-neighbour upsampling by `pool_size[i]` -> Conv2d to the block's input
    channels (-> BatchNorm -> ReLU, except for the last, which outputs the log-mel). The model's `auxiliary_loss` is
    `reconstruction_loss_weight` x the mean squared error per time-frequency bin between the reconstruction and its
    input; the genre classifier adds it to its cross-entropy when the encoder runs (unfrozen training; frozen
    training reads cached embeddings and trains no encoder weight, so it has no reconstruction loss), the captioner
    does not.

    One latent vector (one frame) per segment: a segment has at most `num_frames` spectrogram frames, i.e. at most
    `num_frames * hop_length - 1` samples (longer inputs are refused: cut them into windows first, the genre model's
    `window_seconds`); shorter segments are padded at the end to `num_frames` frames with 0, the mel bands' mean
    after the input normalisation. With the defaults a segment is 0.96 s at 16 kHz.

    Args:
        sampling_rate (`int`, defaults to 16000), n_mels (`int`, defaults to 64) and the other log-mel fields: see
            [`ScratchLogMelConfig`]; hidden_size (`int`, defaults to 64): the latent width.
        num_frames (`int`, defaults to 96): spectrogram frames of a segment. `n_mels` and `num_frames` must be
            multiples of the product of `pool_size`, so that the decoder comes back to the input's shape.
        conv_channels (`list[int]`): channels of each block.
        conv_kernel_size (`int`, defaults to 3): kernel of every convolution (odd).
        pool_size (`list[int]`): max-pooling of each block.
        reconstruction_loss_weight (`float`, defaults to 1.0): weight of the reconstruction error in
            `auxiliary_loss`.
    """

    model_type = "audiocap_conv_autoencoder"

    num_frames: int = 96
    conv_channels: list[int] | tuple[int, ...] = (8, 16)
    conv_kernel_size: int = 3
    pool_size: list[int] | tuple[int, ...] = (4, 4)
    reconstruction_loss_weight: float | int = 1.0

    # Convolution blocks (the latent vector is the last hidden state).
    num_hidden_layers = _derived_layer_count(lambda self: len(self.conv_channels), "conv_channels")

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        """(channels, frequency bins, frames) of the last block's output, flattened into the latent layer."""
        reduction = math.prod(self.pool_size)
        return self.conv_channels[-1], self.n_mels // reduction, self.num_frames // reduction

    def validate_conv_autoencoder(self):
        """Part of `@strict` validation."""
        if len(self.conv_channels) != len(self.pool_size) or not self.conv_channels:
            raise ValueError(
                "conv_channels and pool_size need one entry per block, got "
                f"{list(self.conv_channels)} and {list(self.pool_size)}"
            )
        _check_positive(self, "num_frames", "conv_channels", "conv_kernel_size", "pool_size")
        if self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd, got {self.conv_kernel_size}")
        reduction = math.prod(self.pool_size)
        if self.n_mels % reduction or self.num_frames % reduction:
            raise ValueError(
                f"n_mels ({self.n_mels}) and num_frames ({self.num_frames}) must be multiples of the product of "
                f"pool_size {list(self.pool_size)}"
            )
        if self.reconstruction_loss_weight < 0:
            raise ValueError(f"reconstruction_loss_weight must be >= 0, got {self.reconstruction_loss_weight}")


def _check_lstm(config, layers: int) -> None:
    if layers < 0:
        raise ValueError(f"{type(config).__name__}: the number of LSTM layers must be >= 0, got {layers}")
    directions = 2 if config.lstm_bidirectional else 1
    if config.hidden_size % directions:
        raise ValueError(f"bidirectional LSTM layers need an even hidden_size, got {config.hidden_size}")
    cells = getattr(config, "lstm_cells", None)
    if cells is not None and cells < config.hidden_size // directions:
        raise ValueError(
            f"lstm_cells ({cells}) must be at least the per-direction output width ({config.hidden_size // directions})"
        )
    if not 0 <= config.lstm_dropout < 1:
        raise ValueError(f"lstm_dropout must be in [0, 1), got {config.lstm_dropout}")


SCRATCH_CONFIG_CLASSES: dict[str, type[ScratchEncoderConfig]] = {
    cls.model_type: cls
    for cls in (SampleCNNConfig, SoundNetConfig, MelCNNConfig, CLDNNConfig, SpecLSTMConfig, ConvAutoEncoderConfig)
}

# music2vec (Srinivasa & Hebbar 2017), supervised genre classification on FMA-small. The paper's own FC layers
# after each encoder are the genre head's settings (configs/paper-music2vec-*-fma.yaml); where the paper is silent,
# the choice is said.
#
# Spectrogram models: 3 s segments at 44.1 kHz, 120 mel bands x 300 frames. The paper gives neither the FFT size
# nor the hop: n_fft 2048 (librosa's default) and a hop of 442 samples (10.02 ms), with which the centred STFT of a
# 3 s segment has 132300 // 442 + 1 = 300 frames (a hop of 441 would give 301). Each mel band is BatchNorm'd (the
# paper does not say how it scaled its spectrograms).
_MUSIC2VEC_LOG_MEL = {"sampling_rate": 44100, "n_mels": 120, "n_fft": 2048, "win_length": 2048, "hop_length": 442}
# SoundNet models: 3.75 s segments at 8 kHz, 30000 samples. The paper keeps SoundNet's 8-layer network (Aytar et
# al. 2016: 16, 32, 64, 128, 256, 512, 1024 channels; kernels 64, 32, 16, 8, 4, 4, 4) with "minor changes in filter
# size", stride 8 in the first two convolutions and the last block cut to two convolutions, and reports a 6 x 1024
# output (15 x 512 without the last convolution), but not its other kernels, strides, paddings or pools. Ours give
# exactly those shapes: no padding (Keras' "valid"), strides 8, 8, 1, 1, 1, 2, 2, pools 2 and 2 after the first
# two convolutions and 3 after the fifth, and the third convolution's kernel 8 instead of 16:
# 30000 -> 3743 -> 1872 -> 231 -> 116 -> 109 -> 102 -> 99 -> 33 -> 15 (x 512) -> 6 (x 1024) frames.
_MUSIC2VEC_SOUNDNET_LAYERS = {
    "conv_dim": [16, 32, 64, 128, 256, 512, 1024],
    "conv_kernel": [64, 32, 8, 8, 4, 4, 4],
    "conv_stride": [8, 8, 1, 1, 1, 2, 2],
    "pool_size": [2, 2, 1, 1, 3, 1, 1],
    "conv_padding": [0, 0, 0, 0, 0, 0, 0],
}
# The deeper SoundNet: each stride-8 convolution becomes three stride-2 convolutions, which keeps the 15 x 512 output.
# Their kernels (8) and channels (those of the convolution they replace) are not given in the paper:
# 30000 -> 14997 -> 7495 -> 3744 -> 1872 -> 933 -> 463 -> 228 -> 114 -> 107 -> 100 -> 97 -> 33 -> 15 frames.
_MUSIC2VEC_SOUNDNET_DEEP_LAYERS = {
    "conv_dim": [16, 16, 16, 32, 32, 32, 64, 128, 256, 512],
    "conv_kernel": [8, 8, 8, 8, 8, 8, 8, 8, 4, 4],
    "conv_stride": [2, 2, 2, 2, 2, 2, 1, 1, 1, 2],
    "pool_size": [1, 1, 2, 1, 1, 2, 1, 1, 3, 1],
    "conv_padding": [0] * 10,
}

# Short name (`audiocap/<name>`) -> (config class, the paper's sizes).
MUSIC2VEC_PRESETS: dict[str, tuple[type[ScratchEncoderConfig], dict]] = {
    # Baseline: the 120-band log-mel frames straight into one LSTM of 256 cells.
    "music2vec-lstm": (
        SpecLSTMConfig, {**_MUSIC2VEC_LOG_MEL, "input_projection": False, "num_hidden_layers": 1, "hidden_size": 256}
    ),
    # CLDNN: 3 convolutions with [2, 1] kernels (frequency only, "same" padding: 120 -> 120 bins) and 2 max-pools
    # over frequency (120 -> 60 -> 30), 4 maps at the end: (300, 30, 4) reshaped to (300, 120) with no reduction
    # layer, then 2 stacked LSTMs of 120. The paper gives only the last convolution's 4 maps (we use 4 in all three)
    # and not the order of convolutions and pools (we pool after the first two).
    "music2vec-cldnn": (
        CLDNNConfig,
        {
            **_MUSIC2VEC_LOG_MEL,
            "conv_channels": [4, 4, 4],
            "conv_freq_kernel": [2, 2, 2],
            "conv_time_kernel": [1, 1, 1],
            "conv_freq_pool": [2, 2, 1],
            "conv_freq_padding": "same",
            "reduction_layer": False,
            "num_lstm_layers": 2,
            "num_dense_layers": 0,
            "hidden_size": 120,
        },
    ),
    # Joint auto-encoder: 4 conv + max-pool layers to (10, 25) x 128, a dense latent of 250, a mirrored decoder and a
    # per-pixel MSE. (120, 300) -> (10, 25) is a factor 12 on both axes, which four pools of at least 2 cannot give
    # (their product is at least 16): we pool by 2, 2 and 3 and leave the fourth block unpooled. The paper gives only
    # the last block's 128 filters: 16, 32, 64, 128 (3 x 3 kernels) here.
    "music2vec-autoencoder": (
        ConvAutoEncoderConfig,
        {
            **_MUSIC2VEC_LOG_MEL,
            "num_frames": 300,
            "conv_channels": [16, 32, 64, 128],
            "conv_kernel_size": 3,
            "pool_size": [2, 2, 3, 1],
            "hidden_size": 250,
        },
    ),
    # SoundNet + DNN: the 6 x 1024 block.
    "music2vec-soundnet": (SoundNetConfig, {"sampling_rate": 8000, **_MUSIC2VEC_SOUNDNET_LAYERS, "hidden_size": 1024}),
    # SoundNet + stacked LSTM: the last convolution removed (15 x 512), then 2 LSTM layers of 256.
    "music2vec-soundnet-lstm": (
        SoundNetConfig,
        {
            "sampling_rate": 8000,
            **{field: per_layer[:-1] for field, per_layer in _MUSIC2VEC_SOUNDNET_LAYERS.items()},
            "lstm_layers": 2,
            "hidden_size": 256,
        },
    ),
    # Deeper SoundNet + stacked LSTM: three stride-2 convolutions for each stride-8 one, 15 x 512, 2 LSTMs of 256.
    "music2vec-soundnet-deep": (
        SoundNetConfig,
        {"sampling_rate": 8000, **_MUSIC2VEC_SOUNDNET_DEEP_LAYERS, "lstm_layers": 2, "hidden_size": 256},
    ),
}

__all__ = [
    "CLDNNConfig",
    "ConvAutoEncoderConfig",
    "MUSIC2VEC_PRESETS",
    "MelCNNConfig",
    "SCRATCH_CONFIG_CLASSES",
    "SampleCNNConfig",
    "ScratchEncoderConfig",
    "ScratchLogMelConfig",
    "SoundNetConfig",
    "SpecLSTMConfig",
]
