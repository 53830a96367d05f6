"""LoRA through peft: adapters on the encoder's attention projections (and optionally T5's), head trained fully.

The adapters wrap the model (never a fork of its code): `save_pretrained` on the returned `PeftModel` stores the
adapters and the fully trained modules only, and `merge_and_unload()` gives back a plain audiocap model to publish.
"""

from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.other import ModulesToSaveWrapper
from transformers import PreTrainedModel

from ..encoder_families import encoder_family

T5_ATTENTION_PROJECTIONS = ("q", "v")
# Modules outside the encoder that train fully when present.
# peft picks these by name suffix: each name must end no module inside the encoder or T5 (`apply_lora` checks).
HEAD_MODULES = ("head", "layer_weighting", "attention_pooling", "audio_projection")


def lora_target_regex(model: PreTrainedModel, include_text_model: bool = False) -> str:
    """A regex over module names selecting the encoder's (and optionally T5's) attention projections (the encoder
    family's `lora_targets`)."""
    targets = encoder_family(model.config.encoder).lora_targets
    if not targets:
        raise ValueError(f"No LoRA targets known for encoder model_type {model.config.encoder.model_type!r}")
    patterns = [rf"encoder\..*\.({'|'.join(targets)})"]
    if include_text_model:
        patterns.append(rf"t5\..*\.({'|'.join(T5_ATTENTION_PROJECTIONS)})")
    return "|".join(f"(?:{p})" for p in patterns)


def apply_lora(
    model: PreTrainedModel,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    include_text_model: bool = False,
) -> PeftModel:
    """Wrap `model` with LoRA adapters; the head (and T5, unless it gets adapters too) trains fully."""
    modules_to_save = [name for name in HEAD_MODULES if getattr(model, name, None) is not None]
    # the captioner's attribute heads one by one (peft wraps modules, not a ModuleDict)
    modules_to_save += [f"attribute_heads.{name}" for name in getattr(model, "attribute_heads", None) or {}]
    if hasattr(model, "t5") and not include_text_model:
        modules_to_save.append("t5")
    freeze_feature_encoder = encoder_family(model.config.encoder).freeze_feature_encoder
    if freeze_feature_encoder is not None:
        # wav2vec2-family feature encoders otherwise make their output require grad (for reentrant checkpointing),
        # recording a graph through the frozen convolutions that no adapter needs.
        freeze_feature_encoder(model.encoder)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_target_regex(model, include_text_model),
        modules_to_save=modules_to_save,
    )
    wrapped = get_peft_model(model, config)
    trained_fully = {
        name.removeprefix("base_model.model.")
        for name, module in wrapped.named_modules(remove_duplicate=False)
        if isinstance(module, ModulesToSaveWrapper)
    }
    if trained_fully != set(modules_to_save):
        raise RuntimeError(f"LoRA would train {sorted(trained_fully)} fully; expected exactly {sorted(modules_to_save)}")
    return wrapped
