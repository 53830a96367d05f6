"""Configurations of audiocap's models: an audio encoder's own config carried as a sub-config, plus the head's."""

from typing import Any

from transformers import AutoConfig, PretrainedConfig, T5Config
from transformers.configuration_utils import SubConfigSpec

from .encoder_families import encoder_family, local_config_class

# How the CLAP audio tower is read: its hidden states are a Swin pyramid, not a uniform stack of layers.
CLAP_OUTPUTS = ("projected", "last_hidden_state")
POOLINGS = ("mean", "attention")
CONNECTORS = ("t5_encoder", "cross_attention")

# The encoder config is a declared sub-config (so `attn_implementation` and `dtype` reach the encoder);
# it is resolved by `encoder_config_from` (audiocap's own families included), wav2vec2 when none is given.
ENCODER_SUB_CONFIG = SubConfigSpec(config_class=AutoConfig, model_type="wav2vec2")


def encoder_config_from(value: PretrainedConfig | dict[str, Any]) -> PretrainedConfig:
    """Return the encoder config for a config object or its `to_dict()` form (as stored in config.json)."""
    if isinstance(value, PretrainedConfig):
        return value
    if not isinstance(value, dict) or "model_type" not in value:
        raise ValueError(f"encoder config must be a PretrainedConfig or a dict with 'model_type', got {value!r}")
    kwargs = dict(value)
    model_type = kwargs.pop("model_type")
    # audiocap's own encoder configs are resolved here rather than through AutoConfig, so that a saved model also
    # rebuilds through `trust_remote_code=True` in a process where this package is not installed
    config_class = local_config_class(model_type)
    return config_class(**kwargs) if config_class is not None else AutoConfig.for_model(model_type, **kwargs)


def default_window_seconds(encoder: PretrainedConfig) -> float:
    """The window a genre model over `encoder` cuts long inputs into when its config gives none: the clip length its
    family was pre-trained on (`EncoderFamily.default_window_seconds`), so that no input (a 30-minute track) ever goes
    through the encoder as one sequence."""
    return float(encoder_family(encoder).default_window_seconds(encoder))


def parts_attention(config: PretrainedConfig) -> dict[str, str | None]:
    """The attention implementation each sub-config (encoder, T5) already has: a part's loaded model resolved it."""
    return {key: getattr(getattr(config, key, None), "_attn_implementation", None) for key in config.sub_configs}


def restore_parts_attention(config: PretrainedConfig, kept: dict[str, str | None]) -> None:
    """Give the parts back the implementation `PretrainedConfig.__post_init__` reset (it sets the composite's, None
    unless `attn_implementation` is passed, on every sub-config): a loaded encoder keeps its dispatch."""
    for key, implementation in kept.items():
        if implementation is not None:
            getattr(config, key)._attn_implementation = implementation


class AudioGenreConfig(PretrainedConfig):
    r"""
    Config of [`AudioEncoderForGenreClassification`]: encoder -> layer weighting -> pooling -> MLP head.

    Args:
        encoder (`PretrainedConfig` or `dict`): the audio encoder's own config (wav2vec2, hubert, mert, whisper,
            audio-spectrogram-transformer, clap_audio_model, audiocap's from-scratch encoders, ...).
        use_layer_weighting (`bool`): learn a weighting of all hidden-state layers; otherwise use the last one.
        pooling (`str`): `"mean"` (masked mean over valid frames) or `"attention"` (learned attention pooling).
        head_hidden_size (`int`): width of the head's hidden layer (512 in the reference head); 0 makes the head a
            linear probe.
        head_dropout (`float`): dropout before the head's output layer.
        window_seconds (`float`, optional): inputs longer than this are cut into windows and the logits are
            averaged over windows (the model does so for waveforms, the processor and the `audio-classification`
            pipeline for every family). `None` (also in a saved config) means the encoder family's default,
            `default_window_seconds(encoder)`: inputs are always windowed.
        sampling_rate (`int`): the encoder's sampling rate (from its feature extractor).
        clap_output (`str`): for CLAP encoders, `"projected"` (the projected audio embedding as a one-step
            sequence) or `"last_hidden_state"` (the last Swin stage, averaged over frequency, as frames).
        target_mean, target_std (`list[float]`, optional): a regressor's targets' mean and standard deviation (of
            its training clips): the head predicts standardised values, the model outputs them in the targets' own
            units (`head * std + mean`), and the squared error is taken on the standardised scale, so that targets
            of any scale train alike and an untrained head predicts the mean.
    """

    model_type = "audiocap_genre"
    sub_configs_defaults = {"encoder": ENCODER_SUB_CONFIG}

    encoder: PretrainedConfig | dict | None = None
    use_layer_weighting: bool = True
    pooling: str = "mean"
    head_hidden_size: int = 512
    head_dropout: float | int = 0.2
    window_seconds: float | int | None = None
    sampling_rate: int = 16000
    clap_output: str = "projected"
    target_mean: list[float] | None = None
    target_std: list[float] | None = None

    def __post_init__(self, **kwargs):
        self.encoder = encoder_config_from(self.encoder if self.encoder is not None else {"model_type": "wav2vec2"})
        if (self.target_mean is None) != (self.target_std is None) or any(s <= 0 for s in self.target_std or []):
            raise ValueError("target_mean and target_std go together, with positive standard deviations")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.clap_output not in CLAP_OUTPUTS:
            raise ValueError(f"clap_output must be one of {CLAP_OUTPUTS}, got {self.clap_output!r}")
        if self.window_seconds is None:
            self.window_seconds = default_window_seconds(self.encoder)
        if self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {self.window_seconds}")
        kept = {} if "attn_implementation" in kwargs else parts_attention(self)
        super().__post_init__(**kwargs)
        restore_parts_attention(self, kept)


class AudioCaptionConfig(PretrainedConfig):
    r"""
    Config of [`AudioEncoderT5ForCaptioning`]: encoder -> layer weighting -> time reduction -> Linear -> T5.

    Args:
        encoder (`PretrainedConfig` or `dict`): the audio encoder's own config.
        text_config (`T5Config` or `dict`): the T5 model's config.
        connector (`str`): `"t5_encoder"` feeds the projected audio frames through T5's encoder (the reference
            model); `"cross_attention"` hands them straight to the decoder's cross-attention.
        time_reduction_stride (`int`): frames are averaged in non-overlapping groups of this many.
        use_layer_weighting (`bool`), sampling_rate (`int`), window_seconds (`float`, optional),
        clap_output (`str`): as in [`AudioGenreConfig`].
        attribute_heads (`dict`, optional): auxiliary heads on the audio encoder's states (their mean over frames,
            before the projection to T5), trained beside the captions when `forward` gets `attribute_labels`, so that
            the encoder learns to hear what the captions must name while T5's states stay free for the captions:
            `{name: {"labels": [...]}}` for classes (cross-entropy) or
            `{name: {"mean": m, "std": s}}` for a number (squared error of the standardised value).
            `train_caption.py --attribute_columns` builds them from the training clips.
        attribute_loss_weight (`float`): weight of the heads' summed losses beside the caption loss.
    """

    model_type = "audiocap_caption"
    sub_configs_defaults = {"encoder": ENCODER_SUB_CONFIG, "text_config": T5Config}

    encoder: PretrainedConfig | dict | None = None
    text_config: PretrainedConfig | dict | None = None
    connector: str = "t5_encoder"
    time_reduction_stride: int = 4
    use_layer_weighting: bool = True
    sampling_rate: int = 16000
    window_seconds: float | int | None = None
    clap_output: str = "projected"
    attribute_heads: dict | None = None
    attribute_loss_weight: float | int = 1.0
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        self.encoder = encoder_config_from(self.encoder if self.encoder is not None else {"model_type": "wav2vec2"})
        text = self.text_config if self.text_config is not None else {}
        self.text_config = text if isinstance(text, PretrainedConfig) else T5Config(**text)
        if self.connector not in CONNECTORS:
            raise ValueError(f"connector must be one of {CONNECTORS}, got {self.connector!r}")
        if self.time_reduction_stride < 1:
            raise ValueError(f"time_reduction_stride must be >= 1, got {self.time_reduction_stride}")
        if self.clap_output not in CLAP_OUTPUTS:
            raise ValueError(f"clap_output must be one of {CLAP_OUTPUTS}, got {self.clap_output!r}")
        for name, spec in (self.attribute_heads or {}).items():
            check_attribute_head(name, spec)
        kept = {} if "attn_implementation" in kwargs else parts_attention(self)
        super().__post_init__(**kwargs)
        restore_parts_attention(self, kept)


def score_function(config: PretrainedConfig) -> str:
    """How a clip's mean logits become its scores, by the config's `problem_type` (`problem_score_function`)."""
    return problem_score_function(config.problem_type, config.num_labels)


def problem_score_function(problem_type: str | None, num_labels: int) -> str:
    """How a clip's mean logits become its scores for a `problem_type` (as transformers infers it when unset: one
    label is a regression): `"sigmoid"` per tag for multi-label tagging, `"none"` (the values themselves) for
    regression, `"softmax"` over the labels otherwise."""
    if problem_type == "multi_label_classification":
        return "sigmoid"
    if problem_type == "regression" or (problem_type is None and num_labels == 1):
        return "none"
    return "softmax"


def check_attribute_head(name: str, spec: dict) -> None:
    """An `attribute_heads` entry: a name usable as a module key, and two or more `labels` or a `mean` and a positive
    `std`."""
    if not name or "." in name:
        raise ValueError(f"attribute head names must be non-empty and without '.', got {name!r}")
    labels_ok = len(spec.get("labels") or []) >= 2
    number_ok = "mean" in spec and float(spec.get("std", 0)) > 0
    if labels_ok == number_ok:
        raise ValueError(
            f"attribute head {name!r} needs either two or more 'labels' or a 'mean' and a positive 'std', got {spec!r}"
        )
