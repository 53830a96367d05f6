"""Every supported audio encoder behind one interface: build it from its config and read a uniform layer stack.

`encode_layers` returns the hidden states of all layers as one tensor `(batch, layers, frames, width)` and a
boolean frame mask `(batch, frames)` (or `None` when every frame is valid), whatever the encoder family:

- waveform transformers (wav2vec2, HuBERT, MERT, WavLM, data2vec-audio): `input_values` at the encoder's rate,
  `num_hidden_layers + 1` layers (the feature projection, then each transformer layer);
- Whisper's encoder: log-mel `input_features`, `encoder_layers + 1` layers;
- AST: log-mel `input_values`, `num_hidden_layers + 1` layers over its patch tokens;
- CLAP's audio tower (HTSAT): its stages are a Swin pyramid of changing shapes, not a uniform stack, so it gives a
  single layer: either the projected audio embedding as a one-frame sequence (`clap_output="projected"`) or the
  last stage averaged over frequency as a sequence of frames (`clap_output="last_hidden_state"`);
- audiocap's from-scratch encoders (SampleCNN, SoundNet, mel CNN, CLDNN, spectrogram LSTM, see `modeling_scratch`):
  raw `input_values` at the encoder's own rate (the spectrogram ones compute their log-mel inside the model),
  `num_hidden_layers + 1` layers of width `hidden_size` (the front end, then each block).
"""

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel
from transformers.models.clap.modeling_clap import ClapAudioModelWithProjection
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import ModelOutput

from .modeling_mert import MERTModel
from .modeling_scratch import SCRATCH_MODEL_CLASSES

# From-scratch encoders defined in this package (they read raw waveforms and compute their own front end).
SCRATCH_MODEL_TYPES = tuple(SCRATCH_MODEL_CLASSES)
WAVEFORM_MODEL_TYPES = ("wav2vec2", "hubert", "mert", "wavlm", "data2vec-audio") + SCRATCH_MODEL_TYPES
SPECTROGRAM_MODEL_TYPES = ("whisper", "audio-spectrogram-transformer", "clap_audio_model")
SUPPORTED_MODEL_TYPES = WAVEFORM_MODEL_TYPES + SPECTROGRAM_MODEL_TYPES


def check_supported(config: PretrainedConfig) -> None:
    """Raise a clear error for an encoder family audiocap does not know how to read."""
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"Unsupported audio encoder model_type {config.model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )


def is_waveform_encoder(config: PretrainedConfig) -> bool:
    """Whether the encoder reads raw samples (`input_values` of shape `(batch, samples)`)."""
    return config.model_type in WAVEFORM_MODEL_TYPES


def keep_every_layer(config: PretrainedConfig) -> None:
    """Switch LayerDrop off: layer weighting needs the same stack of layers at every step."""
    for name in ("layerdrop", "encoder_layerdrop"):
        if getattr(config, name, 0.0):
            setattr(config, name, 0.0)


def build_encoder(config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised encoder for `config` (weights are loaded afterwards by `from_pretrained`)."""
    check_supported(config)
    keep_every_layer(config)
    if config.model_type == "mert":
        return MERTModel(config)
    if config.model_type in SCRATCH_MODEL_CLASSES:  # not through AutoModel: it must also build under remote code
        return SCRATCH_MODEL_CLASSES[config.model_type](config)
    if config.model_type == "whisper":
        return WhisperEncoder(config)
    if config.model_type == "clap_audio_model":
        return ClapAudioModelWithProjection(config)
    return AutoModel.from_config(config)


def num_layers(config: PretrainedConfig) -> int:
    """Number of hidden-state layers `encode_layers` returns."""
    check_supported(config)
    if config.model_type == "clap_audio_model":
        return 1
    if config.model_type == "whisper":
        return config.encoder_layers + 1
    return config.num_hidden_layers + 1


def layer_width(config: PretrainedConfig, clap_output: str = "projected") -> int:
    """Width of each hidden-state layer `encode_layers` returns."""
    check_supported(config)
    if config.model_type == "clap_audio_model":
        if clap_output == "projected":
            return config.projection_dim
        return config.hidden_size
    if config.model_type == "whisper":
        return config.d_model
    return config.hidden_size


def main_input_name(config: PretrainedConfig) -> str:
    """Name of the encoder's input tensor."""
    return "input_features" if config.model_type in ("whisper", "clap_audio_model") else "input_values"


def encode_layers(
    encoder: nn.Module,
    config: PretrainedConfig,
    inputs: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    clap_output: str = "projected",
    **extra: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run `encoder` and stack its layers.

    Args:
        inputs: the encoder's main input (`input_values` `(batch, samples)` for waveform encoders, log-mel features
            for spectrogram encoders).
        attention_mask: sample-level mask `(batch, samples)` for waveform encoders, mel-frame mask for Whisper.
        extra: further encoder inputs (CLAP's `is_longer`).

    Returns:
        `(hidden_states, frame_mask)`: `(batch, layers, frames, width)` and a bool `(batch, frames)` or `None`.

    A frozen encoder (no parameter requiring grad, input not requiring grad) runs without recording a graph: nothing
    is kept for a backward pass that could not reach it.
    """
    hidden, frame_mask, _ = encode_layers_with_outputs(encoder, config, inputs, attention_mask, clap_output, **extra)
    return hidden, frame_mask


def encode_layers_with_outputs(
    encoder: nn.Module,
    config: PretrainedConfig,
    inputs: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    clap_output: str = "projected",
    output_attentions: bool = False,
    output_hidden_states: bool = False,
    **extra: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, ModelOutput]:
    """`encode_layers`, plus the encoder's own output, with its `attentions` when `output_attentions` and its
    `hidden_states` when `output_hidden_states` (every family but CLAP computes them anyway: they are its layers)."""
    frozen = not inputs.requires_grad and not any(p.requires_grad for p in encoder.parameters())
    flags = {"output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
    with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
        return _encode_layers(encoder, config, inputs, attention_mask, clap_output, flags, **extra)


def _encode_layers(
    encoder: nn.Module,
    config: PretrainedConfig,
    inputs: torch.Tensor,
    attention_mask: torch.Tensor | None,
    clap_output: str,
    flags: dict[str, bool],
    **extra: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, ModelOutput]:
    model_type = config.model_type
    if model_type == "clap_audio_model":
        out = encoder(input_features=inputs, **flags, **extra)
        if clap_output == "projected":
            return out.audio_embeds[:, None, None, :], None, out
        # (batch, channels, freq, time) -> (batch, 1, time, channels)
        return out.last_hidden_state.mean(dim=2).transpose(1, 2)[:, None], None, out
    outputs = {**flags, "output_hidden_states": True}
    if model_type == "whisper":
        out = encoder(inputs, **outputs)
        hidden = torch.stack(out.hidden_states, dim=1)
        frame_mask = None
        if attention_mask is not None:
            # Whisper's two convolutions halve the mel frame rate (second conv has stride 2).
            frame_mask = attention_mask[:, ::2][:, : hidden.shape[2]].bool()
        return hidden, frame_mask, out
    if model_type == "audio-spectrogram-transformer":
        out = encoder(input_values=inputs, **outputs)
        return torch.stack(out.hidden_states, dim=1), None, out
    out = encoder(input_values=inputs, attention_mask=attention_mask, **outputs)
    hidden = torch.stack(out.hidden_states, dim=1)
    frame_mask = None
    if attention_mask is not None:
        frame_mask = encoder._get_feature_vector_attention_mask(hidden.shape[2], attention_mask).bool()
    return hidden, frame_mask, out
