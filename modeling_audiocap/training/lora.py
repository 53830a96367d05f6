"""LoRA through peft: adapters on the encoder's attention projections (and optionally T5's), head trained fully.

The adapters wrap the model (never a fork of its code): `save_pretrained` on the returned `PeftModel` stores the
adapters and the fully trained modules only, and `merge_and_unload()` gives back a plain audiocap model to publish.
"""

from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.other import ModulesToSaveWrapper
from transformers import PreTrainedModel

# Attention projections of each encoder family (the names of their nn.Linear modules).
ENCODER_ATTENTION_PROJECTIONS = {
    "wav2vec2": ("q_proj", "v_proj"),
    "hubert": ("q_proj", "v_proj"),
    "mert": ("q_proj", "v_proj"),
    "wavlm": ("q_proj", "v_proj"),
    "data2vec-audio": ("q_proj", "v_proj"),
    "whisper": ("q_proj", "v_proj"),
    "audio-spectrogram-transformer": ("q_proj", "v_proj"),
    "clap_audio_model": ("query", "value"),
}
T5_ATTENTION_PROJECTIONS = ("q", "v")
# Modules outside the encoder that train fully when present.
# peft picks these by name suffix: each name must end no module inside the encoder or T5 (`apply_lora` checks).
HEAD_MODULES = ("head", "layer_weighting", "attention_pooling", "audio_projection")


def lora_target_regex(model: PreTrainedModel, include_text_model: bool = False) -> str:
    """A regex over module names selecting the encoder's (and optionally T5's) attention projections."""
    encoder_type = model.config.encoder.model_type
    if encoder_type not in ENCODER_ATTENTION_PROJECTIONS:
        raise ValueError(f"No LoRA targets known for encoder model_type {encoder_type!r}")
    patterns = [rf"encoder\..*\.({'|'.join(ENCODER_ATTENTION_PROJECTIONS[encoder_type])})"]
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
    if hasattr(model, "t5") and not include_text_model:
        modules_to_save.append("t5")
    feature_encoder = getattr(getattr(model, "encoder", None), "feature_extractor", None)
    if hasattr(feature_encoder, "_freeze_parameters"):
        # wav2vec2-family feature encoders otherwise make their output require grad (for reentrant checkpointing),
        # recording a graph through the frozen convolutions that no adapter needs.
        feature_encoder._freeze_parameters()
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
