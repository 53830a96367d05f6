"""The optimizer of both training scripts: AdamW with the audio encoder in its own parameter group."""

import torch
from torch import nn

from .arguments import EncoderArguments


def is_audio_encoder_parameter(name: str) -> bool:
    """Whether a parameter belongs to the audio encoder (not T5's encoder), with or without a peft wrapper."""
    return f".{name}".replace(".base_model.model.", ".").startswith(".encoder.") and "lora_" not in name


def make_optimizer(model: nn.Module, enc_args: EncoderArguments, learning_rate: float, weight_decay: float):
    """AdamW over trainable parameters; the encoder's (not its LoRA adapters') use `--encoder_learning_rate`."""
    encoder, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoder if is_audio_encoder_parameter(name) else rest).append(param)
    groups = [{"params": rest, "lr": learning_rate}]
    if encoder:
        groups.append({"params": encoder, "lr": enc_args.encoder_learning_rate or learning_rate})
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)
