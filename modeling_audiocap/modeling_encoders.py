"""Every supported audio encoder behind one interface: build it from its config and read a uniform layer stack.

`encode_layers` returns the hidden states of all layers as one tensor `(batch, layers, frames, width)`, a boolean
frame mask `(batch, frames)` (or `None` when every frame is valid) and the encoder's own output, whatever the encoder
family; what differs between families (inputs, layer counts, how the layers are read) is in their `EncoderFamily`
record (`encoder_families`).
"""

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .encoder_families import encoder_family


def keep_every_layer(config: PretrainedConfig) -> None:
    """Switch LayerDrop off: layer weighting needs the same stack of layers at every step."""
    for name in ("layerdrop", "encoder_layerdrop"):
        if getattr(config, name, 0.0):
            setattr(config, name, 0.0)


def build_encoder(config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised encoder for `config` (weights are loaded afterwards by `from_pretrained`)."""
    family = encoder_family(config)
    keep_every_layer(config)
    return family.build(config)


def encode_layers(
    encoder: nn.Module,
    config: PretrainedConfig,
    inputs: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    clap_output: str = "projected",
    output_attentions: bool = False,
    output_hidden_states: bool = False,
    **extra: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, ModelOutput]:
    """Run `encoder` and stack its layers.

    Args:
        inputs: the encoder's main input (`input_values` `(batch, samples)` for waveform encoders, log-mel features
            for spectrogram encoders).
        attention_mask: sample-level mask `(batch, samples)` for waveform encoders, mel-frame mask for Whisper.
        output_attentions, output_hidden_states: ask the encoder for its `attentions` / `hidden_states` in its own
            output (every family but CLAP computes the hidden states anyway: they are its layers).
        extra: further encoder inputs (CLAP's `is_longer`).

    Returns:
        `(hidden_states, frame_mask, encoder_output)`: `(batch, layers, frames, width)`, a bool `(batch, frames)` or
        `None`, and the encoder's own output.

    A frozen encoder (no parameter requiring grad, input not requiring grad) runs without recording a graph: nothing
    is kept for a backward pass that could not reach it.
    """
    frozen = not inputs.requires_grad and not any(p.requires_grad for p in encoder.parameters())
    flags = {"output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
    with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
        return encoder_family(config).encode(encoder, inputs, attention_mask, clap_output, flags, **extra)
