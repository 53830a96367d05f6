"""audiocap's from-scratch music encoders: SampleCNN (CLMR), SoundNet, a ResNet-style mel CNN, CLDNN, a
spectrogram LSTM and a convolutional auto-encoder, as `PreTrainedModel`s that plug into the genre classifier and the
captioner.

Every model reads the raw waveform `input_values` `(batch, samples)` at `config.sampling_rate` (the spectrogram
models compute their log-mel inside the model) and returns a `BaseModelOutput` whose `hidden_states` (when
`output_hidden_states=True`) are `config.num_hidden_layers + 1` tensors of the same shape
`(batch, frames, config.hidden_size)`, so that audiocap's layer weighting applies:

- hidden state 0 is the front end's output (the stem convolution, the first strided convolution, the CLDNN
  dimensionality-reduction layer, the spectrogram LSTM's input projection, the auto-encoder's first block); then one
  per block (convolution block, residual block, LSTM layer, dense layer, the auto-encoder's latent vector);
  `last_hidden_state` is the last of them.
- Width: a block whose channel count differs from `hidden_size` is brought to it by its own `nn.Linear` applied to
  each frame (identity where the widths agree, which is every block with the default configs).
- Frequency (2-D CNNs): the mel CNN and the auto-encoder average each block's output over its remaining frequency
  bins; CLDNN flattens channels x frequency and projects them linearly (its dimensionality-reduction layer).
- Time: blocks that pool over time (SampleCNN, SoundNet, mel CNN, auto-encoder) are brought to the last block's frame
  count by adaptive average pooling over time (each output frame is the mean of the proportional span of the block's
  frames), so every hidden state has the output frame rate; the LSTM and dense layers never change the frame count.
  The auto-encoder's latent vector is one frame per segment.

The auto-encoder's output also carries its reconstruction and `auxiliary_loss`, a training loss of the encoder's own
that the genre classifier adds to its cross-entropy.

`attention_mask` `(batch, samples)` is accepted by every model; the LSTM layers use it (packed sequences, so padding
never reaches a valid frame through them), the convolutions do not. `_get_feature_vector_attention_mask` maps it
proportionally onto frames: frame t of T over N samples is valid when it starts before the clip's last valid sample.
"""

import contextlib
import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput

from .configuration_scratch import (
    CLDNNConfig,
    ConvAutoEncoderConfig,
    MelCNNConfig,
    SampleCNNConfig,
    ScratchEncoderConfig,
    ScratchLogMelConfig,
    SoundNetConfig,
    SpecLSTMConfig,
)


def log_frequency_fbanks(n_freqs: int, f_min: float, f_max: float, n_bands: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters `(n_freqs, n_bands)` (`torchaudio.functional.melscale_fbanks`' layout, peak 1) whose
    centres are equally spaced in log frequency: `n_bands + 2` points from `f_min` to `f_max`, band k rising from
    point k to its centre k + 1 and falling to point k + 2. A band narrower than an FFT bin reaches at least one bin
    to each side of its centre, so it is never empty."""
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)[:, None]
    points = f_min * (f_max / f_min) ** torch.linspace(0, 1, n_bands + 2, dtype=torch.float64)
    bin_width = sample_rate / (2 * (n_freqs - 1))
    centres = points[1:-1]
    lower = torch.minimum(points[:-2], centres - bin_width)
    upper = torch.maximum(points[2:], centres + bin_width)
    rising = (freqs - lower) / (centres - lower)
    falling = (upper - freqs) / (upper - centres)
    return torch.minimum(rising, falling).clamp(min=0).float()


class LogFrequencyScale(nn.Module):
    """STFT power `(..., n_freqs, T)` -> log-frequency bands `(..., n_bands, T)`: `torchaudio.transforms.MelScale`
    with `log_frequency_fbanks` in place of the mel filterbank (the same buffer name, `fb`)."""

    def __init__(self, n_bands: int, sample_rate: int, f_min: float, f_max: float, n_stft: int):
        super().__init__()
        self.n_bands, self.sample_rate, self.f_min, self.f_max = n_bands, sample_rate, f_min, f_max
        self.register_buffer("fb", self.filterbank(n_stft))

    def filterbank(self, n_stft: int) -> torch.Tensor:
        return log_frequency_fbanks(n_stft, self.f_min, self.f_max, self.n_bands, self.sample_rate)

    def forward(self, specgram: torch.Tensor) -> torch.Tensor:
        return torch.matmul(specgram.transpose(-1, -2), self.fb).transpose(-1, -2)


class LogMelFrontEnd(nn.Module):
    """Waveform `(B, N)` -> log-mel (or log-frequency, `config.frequency_scale`) in dB `(B, n_mels, N // hop_length
    + 1)`, optionally BatchNorm'd per band (`learnable_norm=False`: standardised only, with no learned scale and
    shift).

    The mel spectrogram is always computed in float32 (its window and filterbank are the module's buffers); clips
    shorter than `n_fft // 2 + 1` samples are right-padded with zeros to that length.
    """

    def __init__(self, config: ScratchLogMelConfig, learnable_norm: bool = True):
        super().__init__()
        # from_pretrained builds models on the meta device, where torchaudio's filterbank construction mixes devices;
        # the window and filterbank (persistent buffers) are then built on the CPU and overwritten by the checkpoint.
        on_meta = torch.get_default_device().type == "meta"
        with torch.device("cpu") if on_meta else contextlib.nullcontext():
            self.mel_spectrogram = torchaudio.transforms.MelSpectrogram(
                sample_rate=config.sampling_rate,
                n_fft=config.n_fft,
                win_length=config.win_length,
                hop_length=config.hop_length,
                f_min=float(config.f_min),
                f_max=None if config.f_max is None else float(config.f_max),
                n_mels=config.n_mels,
                power=2.0,
                center=True,
                pad_mode="reflect",
            )
            if config.frequency_scale == "log":
                f_max = config.sampling_rate / 2 if config.f_max is None else config.f_max
                self.mel_spectrogram.mel_scale = LogFrequencyScale(
                    config.n_mels, config.sampling_rate, float(config.f_min), float(f_max), config.n_fft // 2 + 1
                )
        # Per element (top_db=None): a clip's features never depend on the other clips of its batch.
        self.amplitude_to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)
        self.norm = nn.BatchNorm1d(config.n_mels, affine=learnable_norm) if config.input_batch_norm else nn.Identity()

    def forward(self, waveform: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        waveform = waveform.float()
        min_samples = self.mel_spectrogram.n_fft // 2 + 1  # the centred STFT reflects n_fft // 2 samples at each end
        if waveform.shape[-1] < min_samples:
            waveform = F.pad(waveform, (0, min_samples - waveform.shape[-1]))
        spectrogram = self.mel_spectrogram(waveform)
        return self.norm(self.amplitude_to_db(spectrogram).to(dtype))


class ConvBlock1d(nn.Sequential):
    """Conv1d (no bias) -> BatchNorm -> ReLU (-> MaxPool1d in ceil mode, so at least one frame remains)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, pool: int):
        layers = [
            nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(),
        ]
        if pool > 1:
            layers.append(nn.MaxPool1d(pool, ceil_mode=True))
        super().__init__(*layers)


class ConvBlock2d(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm -> ReLU (-> MaxPool2d(`pool`), `pool` over (frequency, time), unless (1, 1)).

    `padding`: zeros on each side, per axis, or `"same"` (as many bins and frames out as in; an even kernel gets its
    extra zero at the end, as `nn.Conv2d(padding="same")` pads, without the copy torch makes for that).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        padding: str | tuple[int, int],
        pool: tuple[int, int],
    ):
        layers = []
        if padding == "same":
            layers.append(nn.ZeroPad2d([p for k in reversed(kernel_size) for p in ((k - 1) // 2, k // 2)]))
            padding = (0, 0)
        layers += [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        ]
        if tuple(pool) != (1, 1):
            layers.append(nn.MaxPool2d(pool))
        super().__init__(*layers)


class ResidualBlock2d(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm, plus the (1x1-projected where needed) input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class LSTMStack(nn.Module):
    """Stacked LSTM layers kept as separate modules so that each layer's output is a hidden state.

    Each layer outputs `hidden_size` features per frame (`hidden_size // 2` per direction when bidirectional); with
    `cells` larger than that, the layer has `cells` cells and projects its output down (LSTMP, `proj_size`).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, cells, dropout):
        super().__init__()
        directions = 2 if bidirectional else 1
        output_size = hidden_size // directions
        cells = output_size if cells is None else cells
        proj_size = output_size if cells > output_size else 0
        self.layers = nn.ModuleList(
            nn.LSTM(
                input_size if i == 0 else hidden_size,
                cells,
                batch_first=True,
                bidirectional=bidirectional,
                proj_size=proj_size,
            )
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        """`(B, T, input_size)` and valid frames per clip `(B,)` -> each layer's output `(B, T, hidden_size)`.

        With `lengths`, the layers run on packed sequences (outputs past a clip's length are 0).
        """
        frames = x.shape[1]
        packed = lengths is not None and bool((lengths < frames).any())
        if packed:
            lengths = lengths.clamp(min=1).cpu()
        outputs = []
        for i, lstm in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            if packed:
                sequence = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                x = nn.utils.rnn.pad_packed_sequence(lstm(sequence)[0], batch_first=True, total_length=frames)[0]
            else:
                x = lstm(x)[0]
            outputs.append(x)
        return outputs


def _width_projections(channels: list[int], hidden_size: int) -> nn.ModuleList:
    """One per block: a per-frame Linear to `hidden_size`, or Identity where the block already has that width."""
    return nn.ModuleList(nn.Identity() if c == hidden_size else nn.Linear(c, hidden_size) for c in channels)


class ScratchEncoderPreTrainedModel(PreTrainedModel):
    """Shared initialisation, input handling, frame mask and outputs of audiocap's from-scratch encoders."""

    config_class = ScratchEncoderConfig
    main_input_name = "input_values"
    input_modalities = "audio"

    def _init_weights(self, module: nn.Module) -> None:
        """He (fan-out) initialisation of convolutions (ReLU networks), Glorot of linear layers, the log-mel front end's
        window and filterbank from the config; LSTMs (Glorot weights, zero biases) and norms as in transformers'
        default."""
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, torchaudio.transforms.Spectrogram):
            # The log-mel front end's buffers are fixed functions of the config (needed when a checkpoint lacks them).
            with torch.device("cpu"):
                init.copy_(module.window, torch.hann_window(module.win_length))
        elif isinstance(module, torchaudio.transforms.MelScale):
            with torch.device("cpu"):
                filterbank = torchaudio.functional.melscale_fbanks(
                    module.fb.shape[0], module.f_min, module.f_max, module.n_mels, module.sample_rate, module.norm,
                    module.mel_scale,
                )
            init.copy_(module.fb, filterbank)
        elif isinstance(module, LogFrequencyScale):
            init.copy_(module.fb, module.filterbank(module.fb.shape[0]))
        else:
            super()._init_weights(module)

    def _get_feature_vector_attention_mask(self, num_frames: int, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sample mask `(B, N)` -> bool frame mask `(B, num_frames)`, mapped proportionally.

        Frame t spans samples `[t * N / T, (t + 1) * N / T)`; it is valid when that span starts before the clip's
        valid length L, i.e. the first `ceil(L * T / N)` frames are (at least one for a clip with any valid sample).
        """
        total = attention_mask.shape[-1]
        lengths = attention_mask.long().sum(-1)
        valid = torch.div(lengths * num_frames + total - 1, total, rounding_mode="floor")
        return torch.arange(num_frames, device=attention_mask.device)[None, :] < valid[:, None]

    def _frame_lengths(self, num_frames: int, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        if attention_mask is None:
            return None
        return self._get_feature_vector_attention_mask(num_frames, attention_mask).sum(-1)

    def _waveform(self, input_values: torch.Tensor) -> torch.Tensor:
        if input_values.dim() == 3 and input_values.shape[1] == 1:
            input_values = input_values[:, 0]
        if input_values.dim() != 2:
            raise ValueError(
                f"{type(self).__name__} reads raw waveforms input_values of shape (batch, samples), got "
                f"{tuple(input_values.shape)}"
            )
        return input_values

    @staticmethod
    def _to_frames(state: torch.Tensor, projection: nn.Module, frames: int) -> torch.Tensor:
        """`(B, C, T_i)` -> `(B, frames, hidden_size)`: adaptive average pooling over time, then width projection."""
        if state.shape[-1] != frames:
            state = F.adaptive_avg_pool1d(state, frames)
        return projection(state.transpose(1, 2))

    def _projected_frames(self, states: list[torch.Tensor], keep_all: bool) -> list[torch.Tensor]:
        """Every block's state (or only the last) at the last block's frame rate and `hidden_size` wide."""
        frames = states[-1].shape[-1]
        indices = range(len(states)) if keep_all else [len(states) - 1]
        return [self._to_frames(states[i], self.projections[i], frames) for i in indices]

    def _output(
        self,
        hidden_states: list[torch.Tensor],
        output_hidden_states: bool,
        return_dict: bool | None,
        output_class: type[BaseModelOutput] = BaseModelOutput,
        **fields: torch.Tensor,
    ):
        """The model's output: `output_class` (`fields` beside the hidden states), or a tuple of its values."""
        last = hidden_states[-1]
        all_states = tuple(hidden_states) if output_hidden_states else None
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return tuple(v for v in (last, all_states, *fields.values()) if v is not None)
        return output_class(last_hidden_state=last, hidden_states=all_states, **fields)

    def _wants_hidden_states(self, output_hidden_states: bool | None) -> bool:
        return output_hidden_states if output_hidden_states is not None else bool(self.config.output_hidden_states)


class SampleCNNModel(ScratchEncoderPreTrainedModel):
    """SampleCNN on raw samples (CLMR's encoder): a strided stem convolution, then blocks of Conv1d -> BatchNorm ->
    ReLU -> MaxPool1d. Hidden states: the stem, then each block, pooled over time to the last block's frames.

    Inputs: `input_values` `(B, N)` at `config.sampling_rate` (22.05 kHz by default), `attention_mask` `(B, N)`
    (accepted; only the frame mask depends on it).
    """

    config_class = SampleCNNConfig

    def __init__(self, config: SampleCNNConfig):
        super().__init__(config)
        channels = config.channels
        self.stem = ConvBlock1d(1, channels[0], config.stem_kernel_size, config.stem_stride, padding=0, pool=1)
        self.blocks = nn.ModuleList(
            ConvBlock1d(channels[i], channels[i + 1], config.kernel_size, 1, config.kernel_size // 2, pool)
            for i, pool in enumerate(config.pool_sizes)
        )
        self.projections = _width_projections(channels, config.hidden_size)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        waveform = self._waveform(input_values).to(self.dtype)
        if waveform.shape[-1] < self.config.stem_kernel_size:  # too short for one stem frame
            waveform = F.pad(waveform, (0, self.config.stem_kernel_size - waveform.shape[-1]))
        x = self.stem(waveform[:, None])
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        keep_all = self._wants_hidden_states(output_hidden_states)
        return self._output(self._projected_frames(states, keep_all), keep_all, return_dict)


class SoundNetModel(ScratchEncoderPreTrainedModel):
    """SoundNet-style strided 1-D convolutions on raw samples, optionally followed by stacked LSTM layers.

    Hidden states: each convolution block (pooled over time to the last one's frames), then each LSTM layer (run on
    the last convolution's output, packed by `attention_mask` when given).
    """

    config_class = SoundNetConfig

    def __init__(self, config: SoundNetConfig):
        super().__init__(config)
        in_channels = [1, *config.conv_dim[:-1]]
        self.convs = nn.ModuleList(
            ConvBlock1d(cin, cout, kernel, stride, padding, pool)
            for cin, cout, kernel, stride, padding, pool in zip(
                in_channels, config.conv_dim, config.conv_kernel, config.conv_stride, config.paddings, config.pool_size,
                strict=True,
            )
        )
        self.projections = _width_projections(list(config.conv_dim), config.hidden_size)
        self.lstm = None
        if config.lstm_layers:
            self.lstm = LSTMStack(
                config.conv_dim[-1], config.hidden_size, config.lstm_layers, config.lstm_bidirectional, None,
                config.lstm_dropout,
            )
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        x = self._waveform(input_values).to(self.dtype)[:, None]
        states = []
        for conv in self.convs:
            x = conv(x)
            states.append(x)
        keep_all = self._wants_hidden_states(output_hidden_states)
        frames = x.shape[-1]
        hidden = self._projected_frames(states, keep_all) if keep_all or self.lstm is None else []
        if self.lstm is not None:
            lstm_outputs = self.lstm(x.transpose(1, 2), self._frame_lengths(frames, attention_mask))
            hidden = hidden + lstm_outputs if keep_all else lstm_outputs[-1:]
        return self._output(hidden, keep_all, return_dict)


class MelCNNModel(ScratchEncoderPreTrainedModel):
    """A ResNet-18-style residual 2-D CNN on log-mel computed inside the model.

    Hidden states: the stem, then each residual block, each averaged over frequency, brought to `hidden_size` and
    pooled over time to the last block's frames.
    """

    config_class = MelCNNConfig

    def __init__(self, config: MelCNNConfig):
        super().__init__(config)
        self.front_end = LogMelFrontEnd(config)
        stem_channels = config.stage_channels[0]
        stem = [
            nn.Conv2d(
                1, stem_channels, config.stem_kernel_size, stride=config.stem_stride,
                padding=config.stem_kernel_size // 2, bias=False,
            ),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(),
        ]
        if config.stem_pool:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        blocks, channels, in_channels = [], [stem_channels], stem_channels
        stages = zip(config.stage_channels, config.layers_per_stage, config.stage_strides, strict=True)
        for out_channels, layers, stride in stages:
            for i in range(layers):
                blocks.append(ResidualBlock2d(in_channels, out_channels, stride if i == 0 else 1))
                channels.append(out_channels)
                in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.projections = _width_projections(channels, config.hidden_size)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        x = self.front_end(self._waveform(input_values), self.dtype)[:, None]  # (B, 1, n_mels, T)
        x = self.stem(x)
        states = [x.mean(dim=2)]
        for block in self.blocks:
            x = block(x)
            states.append(x.mean(dim=2))  # (B, C, T_i): averaged over frequency
        keep_all = self._wants_hidden_states(output_hidden_states)
        return self._output(self._projected_frames(states, keep_all), keep_all, return_dict)


class CLDNNModel(ScratchEncoderPreTrainedModel):
    """CLDNN on log-mel computed inside the model: convolutions over frequency, a linear dimensionality-reduction
    layer, stacked LSTM layers (packed by `attention_mask` when given) and dense layers, at the spectrogram's frame
    rate. Hidden states: the reduction layer, each LSTM layer, each dense layer."""

    config_class = CLDNNConfig

    def __init__(self, config: CLDNNConfig):
        super().__init__(config)
        self.front_end = LogMelFrontEnd(config)
        in_channels = [1, *config.conv_channels[:-1]]
        self.convs = nn.ModuleList(
            ConvBlock2d(
                cin, cout, (freq_kernel, time_kernel),
                "same" if config.conv_freq_padding == "same" else (0, time_kernel // 2), (freq_pool, 1),
            )
            for cin, cout, freq_kernel, time_kernel, freq_pool in zip(
                in_channels, config.conv_channels, config.conv_freq_kernel, config.conv_time_kernel,
                config.conv_freq_pool, strict=True,
            )
        )
        lstm_width = config.hidden_size if config.reduction_layer else config.conv_output_width
        self.reduction = nn.Linear(config.conv_output_width, lstm_width) if config.reduction_layer else nn.Identity()
        self.projections = _width_projections([lstm_width], config.hidden_size)
        self.lstm = LSTMStack(
            lstm_width, config.hidden_size, config.num_lstm_layers, config.lstm_bidirectional, config.lstm_cells,
            config.lstm_dropout,
        )
        self.dense = nn.ModuleList(
            nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.ReLU())
            for _ in range(config.num_dense_layers)
        )
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        x = self.front_end(self._waveform(input_values), self.dtype)[:, None]  # (B, 1, n_mels, T)
        for conv in self.convs:
            x = conv(x)
        frames = x.shape[-1]
        x = self.reduction(x.permute(0, 3, 1, 2).flatten(2))  # (B, T, channels * bins) -> (B, T, LSTM input width)
        hidden = [self.projections[0](x), *self.lstm(x, self._frame_lengths(frames, attention_mask))]
        x = hidden[-1]
        for dense in self.dense:
            x = dense(x)
            hidden.append(x)
        keep_all = self._wants_hidden_states(output_hidden_states)
        return self._output(hidden if keep_all else hidden[-1:], keep_all, return_dict)


class SpecLSTMModel(ScratchEncoderPreTrainedModel):
    """The plain stacked-LSTM-on-log-mel baseline: each frame's log-mel vector is projected to `hidden_size`, then
    goes through the LSTM layers (packed by `attention_mask` when given). Hidden states: the input projection, then
    each LSTM layer, at the spectrogram's frame rate."""

    config_class = SpecLSTMConfig

    def __init__(self, config: SpecLSTMConfig):
        super().__init__(config)
        self.front_end = LogMelFrontEnd(config)
        lstm_width = config.hidden_size if config.input_projection else config.n_mels
        self.input_projection = nn.Linear(config.n_mels, lstm_width) if config.input_projection else nn.Identity()
        self.projections = _width_projections([lstm_width], config.hidden_size)
        self.lstm = LSTMStack(
            lstm_width, config.hidden_size, config.num_hidden_layers, config.lstm_bidirectional, config.lstm_cells,
            config.lstm_dropout,
        )
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        spectrogram = self.front_end(self._waveform(input_values), self.dtype)  # (B, n_mels, T)
        x = self.input_projection(spectrogram.transpose(1, 2))  # (B, T, LSTM input width)
        hidden = [self.projections[0](x), *self.lstm(x, self._frame_lengths(x.shape[1], attention_mask))]
        keep_all = self._wants_hidden_states(output_hidden_states)
        return self._output(hidden if keep_all else hidden[-1:], keep_all, return_dict)


@dataclass
class AutoEncoderOutput(BaseModelOutput):
    """[`ConvAutoEncoderModel`]'s output: the hidden states, plus

    Args:
        reconstruction (`torch.FloatTensor` of shape `(B, n_mels, num_frames)`): the decoded log-mel.
        auxiliary_loss (`torch.FloatTensor`, scalar): `reconstruction_loss_weight` x the mean squared error per
            time-frequency bin between `reconstruction` and the (normalised, padded) log-mel the model read; a loss of
            the encoder's own, which the genre classifier adds to its cross-entropy.
    """

    reconstruction: torch.FloatTensor | None = None
    auxiliary_loss: torch.FloatTensor | None = None


class ConvAutoEncoderModel(ScratchEncoderPreTrainedModel):
    """A convolutional auto-encoder of a segment's log-mel (computed inside the model), music2vec's joint
    auto-encoder: convolution blocks, a dense latent vector (the embedding, one frame per segment), and a mirrored
    decoder whose reconstruction error is the output's `auxiliary_loss` (see [`ConvAutoEncoderConfig`]).

    Inputs: `input_values` `(B, N)` at `config.sampling_rate`, at most `num_frames` spectrogram frames (shorter
    segments are padded), `attention_mask` `(B, N)` (accepted; only the frame mask depends on it). Hidden states, all
    `(B, 1, hidden_size)`: each block (averaged over frequency and time, brought to `hidden_size`), then the latent.
    """

    config_class = ConvAutoEncoderConfig

    def __init__(self, config: ConvAutoEncoderConfig):
        super().__init__(config)
        # The reconstruction target is the normalised log-mel: a learned scale on it could shrink the loss to nothing.
        self.front_end = LogMelFrontEnd(config, learnable_norm=False)
        kernel, channels = config.conv_kernel_size, list(config.conv_channels)
        in_channels = [1, *channels[:-1]]
        self.convs = nn.ModuleList(
            ConvBlock2d(cin, cout, (kernel, kernel), (kernel // 2, kernel // 2), (pool, pool))
            for cin, cout, pool in zip(in_channels, channels, config.pool_size, strict=True)
        )
        bottleneck = math.prod(config.bottleneck_shape)
        self.latent = nn.Sequential(nn.Flatten(), nn.Linear(bottleneck, config.hidden_size), nn.ReLU())
        decoder = [nn.Linear(config.hidden_size, bottleneck), nn.ReLU(), nn.Unflatten(1, config.bottleneck_shape)]
        for i in reversed(range(len(channels))):  # block i undone: upsample by its pool, convolve back to its input
            pool, output = config.pool_size[i], i == 0
            if pool > 1:
                decoder.append(nn.Upsample(scale_factor=pool))
            decoder.append(nn.Conv2d(channels[i], in_channels[i], kernel, padding=kernel // 2, bias=output))
            if not output:
                decoder += [nn.BatchNorm2d(in_channels[i]), nn.ReLU()]
        self.decoder = nn.Sequential(*decoder)
        self.projections = _width_projections([*channels, config.hidden_size], config.hidden_size)
        self.post_init()

    def _segment(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """`(B, n_mels, T)` -> `(B, n_mels, num_frames)`, padded at the end with 0; longer inputs are refused."""
        frames, expected = spectrogram.shape[-1], self.config.num_frames
        if frames > expected:
            raise ValueError(
                f"{type(self).__name__} reads segments of at most {expected} spectrogram frames "
                f"({expected * self.config.hop_length - 1} samples at {self.config.sampling_rate} Hz), got {frames}: "
                "cut longer inputs into windows (the genre model's window_seconds, --max_length_seconds)"
            )
        return F.pad(spectrogram, (0, expected - frames))

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AutoEncoderOutput | tuple:
        spectrogram = self._segment(self.front_end(self._waveform(input_values), self.dtype))  # (B, n_mels, frames)
        x = spectrogram[:, None]
        states = []
        for conv in self.convs:
            x = conv(x)
            states.append(x.mean(dim=2))  # (B, C_i, T_i): averaged over frequency
        latent = self.latent(x)  # (B, channels * bins * frames) -> (B, hidden_size)
        reconstruction = self.decoder(latent)[:, 0]  # (B, n_mels, num_frames)
        error = F.mse_loss(reconstruction.float(), spectrogram.detach().float())
        keep_all = self._wants_hidden_states(output_hidden_states)
        hidden = self._projected_frames([*states, latent[:, :, None]], keep_all)
        return self._output(
            hidden, keep_all, return_dict, AutoEncoderOutput, reconstruction=reconstruction,
            auxiliary_loss=self.config.reconstruction_loss_weight * error,
        )


# model_type -> model class, for `build_encoder` (which must work without the Auto registration, under remote code).
SCRATCH_MODEL_CLASSES: dict[str, type[ScratchEncoderPreTrainedModel]] = {
    model.config_class.model_type: model
    for model in (SampleCNNModel, SoundNetModel, MelCNNModel, CLDNNModel, SpecLSTMModel, ConvAutoEncoderModel)
}

__all__ = [
    "AutoEncoderOutput",
    "CLDNNModel",
    "ConvAutoEncoderModel",
    "MelCNNModel",
    "SCRATCH_MODEL_CLASSES",
    "SampleCNNModel",
    "ScratchEncoderPreTrainedModel",
    "SoundNetModel",
    "SpecLSTMModel",
]
