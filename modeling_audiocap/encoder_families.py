"""One `EncoderFamily` record per family of audio encoders: everything that differs between them, in one place.

A record builds its encoders (`family.build_encoder(config)`, random weights, every layer kept) and reads any of
them as one uniform stack of layers: `family.encode_layers(encoder, inputs, attention_mask)` gives the hidden states
of all layers `(batch, layers, frames, width)`, a boolean frame mask `(batch, frames)` (or `None` when every frame is
valid) and the encoder's own output, whatever the family.

`resolve_encoder`, both models, the embedding engine, LoRA, HEAR and the processor read the record of an encoder's
family (`encoder_family(config)`) and have no per-family branches of their own. The families:

- waveform transformers (wav2vec2, HuBERT, WavLM, data2vec-audio; MERT, loaded natively): `input_values` at the
  encoder's rate, `num_hidden_layers + 1` layers (the feature projection, then each transformer layer);
- Whisper's encoder: log-mel `input_features` padded to 30 s, `encoder_layers + 1` layers;
- AST: log-mel `input_values`, `num_hidden_layers + 1` layers over its patch tokens (not a time sequence);
- CLAP's audio tower (HTSAT): its stages are a Swin pyramid of changing shapes, not a uniform stack, so it gives a
  single layer, and has two records, one per output: the projected audio embedding as a one-frame sequence (`clap`,
  output `"projected"`, the default) and the last stage averaged over frequency as frames (`clap-frames`, output
  `"last_hidden_state"`); `encoder_family(config, output=...)` picks one (a model's `clap_output` names it);
- audiocap's from-scratch encoders (`modeling_scratch`): raw `input_values` at their own rate (the spectrogram ones
  compute their log-mel inside the model), `num_hidden_layers + 1` layers of width `hidden_size`, built by short name
  (`SCRATCH_ENCODER_NAMES`).

Adding a family: write its record (the defaults describe a wav2vec2-style waveform transformer) and pass it to
`register_encoder_family`, here at the end of this file, so that saved models carry it as remote code.

This file only uses flat relative imports: it ships with saved models.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from transformers import (
    ASTFeatureExtractor,
    AutoFeatureExtractor,
    AutoModel,
    ClapFeatureExtractor,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2FeatureExtractor,
    WhisperFeatureExtractor,
    WhisperModel,
)
from transformers.feature_extraction_utils import FeatureExtractionMixin
from transformers.models.clap.modeling_clap import ClapAudioModelWithProjection
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import ModelOutput

from .configuration_mert import MERT_HUB_MODEL_TYPE, MERTConfig
from .configuration_scratch import MUSIC2VEC_PRESETS, SCRATCH_CONFIG_CLASSES, CLDNNConfig, MelCNNConfig
from .configuration_scratch import SampleCNNConfig, SoundNetConfig, SpecLSTMConfig
from .modeling_mert import MERTModel, load_mert_pretrained, mert_feature_extractor
from .modeling_scratch import SCRATCH_MODEL_CLASSES

# `encode(encoder, inputs, attention_mask, flags, **extra)` -> `(hidden_states (B, L, T, D), frame mask (B, T) or
# None, the encoder's own output)`; `flags` are the caller's `output_attentions` / `output_hidden_states`.
Encode = Callable[..., tuple[torch.Tensor, torch.Tensor | None, ModelOutput]]
ModuleSlot = tuple[nn.Module, str]  # (owner, attribute name) of a sub-module


def encode_hidden_states(
    encoder: nn.Module, inputs: torch.Tensor, attention_mask: torch.Tensor | None, flags: dict[str, bool],
    **extra: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, ModelOutput]:
    """Waveform transformers and audiocap's encoders: every hidden state, and the sample mask turned into frames."""
    out = encoder(input_values=inputs, attention_mask=attention_mask, **{**flags, "output_hidden_states": True})
    hidden = torch.stack(out.hidden_states, dim=1)
    frame_mask = None
    if attention_mask is not None:
        frame_mask = encoder._get_feature_vector_attention_mask(hidden.shape[2], attention_mask).bool()
    return hidden, frame_mask, out


def _encode_whisper(encoder, inputs, attention_mask, flags, **extra):
    out = encoder(inputs, **{**flags, "output_hidden_states": True})
    hidden = torch.stack(out.hidden_states, dim=1)
    frame_mask = None
    if attention_mask is not None:  # Whisper's two convolutions halve the mel frame rate (the second has stride 2)
        frame_mask = attention_mask[:, ::2][:, : hidden.shape[2]].bool()
    return hidden, frame_mask, out


def _encode_ast(encoder, inputs, attention_mask, flags, **extra):
    out = encoder(input_values=inputs, **{**flags, "output_hidden_states": True})
    return torch.stack(out.hidden_states, dim=1), None, out


def _encode_clap_projected(encoder, inputs, attention_mask, flags, **extra):
    out = encoder(input_features=inputs, **flags, **extra)
    return out.audio_embeds[:, None, None, :], None, out


def _encode_clap_frames(encoder, inputs, attention_mask, flags, **extra):
    out = encoder(input_features=inputs, **flags, **extra)
    # (batch, channels, freq, time) -> (batch, 1, time, channels)
    return out.last_hidden_state.mean(dim=2).transpose(1, 2)[:, None], None, out


def keep_every_layer(config: PretrainedConfig) -> None:
    """Switch LayerDrop off: layer weighting needs the same stack of layers at every step."""
    for name in ("layerdrop", "encoder_layerdrop"):
        if getattr(config, name, 0.0):
            setattr(config, name, 0.0)


def freeze_convolutional_feature_encoder(model: PreTrainedModel) -> None:
    """Keep the convolutional feature encoder of a wav2vec2-style model fixed."""
    model.feature_extractor._freeze_parameters()


def stable_layer_norm_output(model: nn.Module, config: PretrainedConfig) -> ModuleSlot | None:
    """The final norm of a pre-norm ("stable layer norm") encoder whose config ties it to the last hidden state
    (MERT-v1-330M), else None."""
    tied = getattr(config, "tie_last_hidden_states", None) and getattr(config, "do_stable_layer_norm", False)
    return (model.encoder, "layer_norm") if tied and hasattr(getattr(model, "encoder", None), "layer_norm") else None


def _whisper_output_norm(model: nn.Module, config: PretrainedConfig) -> ModuleSlot | None:
    """Whisper's final norm: transformers gives the encoder's output after it as the last hidden state (tied by
    default)."""
    tie = getattr(config, "tie_last_hidden_states", None)
    return (model, "layer_norm") if tie is None or tie else None


def wav2vec2_feature_extractor(config: PretrainedConfig) -> Wav2Vec2FeatureExtractor:
    """16 kHz normalised samples; group-norm models are trained without an attention mask, layer-norm ones with one."""
    return Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=config.feat_extract_norm == "layer"
    )


def scratch_feature_extractor(config: PretrainedConfig) -> Wav2Vec2FeatureExtractor:
    """The trivial feature extractor of a from-scratch encoder: raw samples at its rate (no normalisation; its front
    end is inside the model), zero right-padding and an attention mask."""
    return Wav2Vec2FeatureExtractor(sampling_rate=config.sampling_rate, do_normalize=False, return_attention_mask=True)


def saved_feature_extractor(
    extractor_class: type[FeatureExtractionMixin],
    default: Callable[[PretrainedConfig], FeatureExtractionMixin] | None = None,
) -> Callable[..., FeatureExtractionMixin]:
    """A loader `(name_or_path, config, **hub_kwargs)` of the feature extractor saved with a checkpoint
    (`preprocessor_config.json`), falling back to `default(config)` when none was saved and a default is given."""

    def load(name_or_path: str, config: PretrainedConfig, **hub_kwargs) -> FeatureExtractionMixin:
        try:
            return extractor_class.from_pretrained(name_or_path, **hub_kwargs)
        except OSError:
            if default is None:
                raise
            return default(config)

    return load


def pad_to_longest(extractor: FeatureExtractionMixin) -> dict:
    """Waveform extractors: pad to the longest chunk; mask it when the extractor was trained with a mask."""
    return {"padding": "longest", "return_attention_mask": bool(getattr(extractor, "return_attention_mask", False))}


def _preset(config_class: type[PretrainedConfig], settings: dict) -> Callable[..., PretrainedConfig]:
    """A config factory: `config_class` with `settings` in place of its defaults, then the caller's overrides."""
    return lambda **overrides: config_class(**{**settings, **overrides})


@dataclass(frozen=True)
class EncoderFamily:
    """What audiocap needs to know about one family of audio encoders. The defaults describe a wav2vec2-style
    waveform transformer loaded through `AutoModel`.

    Functions take the encoder's config (`PretrainedConfig`) and, where named, its module or feature extractor.
    """

    name: str
    model_types: tuple[str, ...]  # `config.model_type` of the encoders it builds and reads
    output: str | None = None  # which of several records of one model_type this is (CLAP's); None: the only one
    checkpoint_model_types: tuple[str, ...] = ()  # further `model_type`s of checkpoints it loads (m-a-p MERT, CLAP)
    config_classes: tuple[type[PretrainedConfig], ...] = ()  # configs defined here (read without AutoConfig)
    short_names: Mapping[str, Callable[..., PretrainedConfig]] = field(default_factory=dict)  # name -> config
    build: Callable[[PretrainedConfig], PreTrainedModel] = AutoModel.from_config  # random weights
    load: Callable[..., PreTrainedModel] = AutoModel.from_pretrained  # (name_or_path, **hub_kwargs)
    feature_extractor: Callable[[PretrainedConfig], FeatureExtractionMixin] = wav2vec2_feature_extractor
    load_feature_extractor: Callable[..., FeatureExtractionMixin] = saved_feature_extractor(AutoFeatureExtractor)
    feature_extractor_class: type[FeatureExtractionMixin] = Wav2Vec2FeatureExtractor  # how the processor knows it
    featurize_kwargs: Callable[[FeatureExtractionMixin], dict] = pad_to_longest  # the processor's call arguments
    max_input_samples: Callable[[FeatureExtractionMixin], int | None] = lambda extractor: None  # a fixed input's cut
    input_name: str = "input_values"  # or "input_features"
    extra_inputs: tuple[str, ...] = ()  # further encoder inputs its feature extractor gives (CLAP's `is_longer`)
    waveform: bool = True  # reads raw samples `(batch, samples)` (the model windows them itself)
    frames: bool = True  # gives a time sequence of frames (False: one vector per window, e.g. AST's patches)
    num_layers: Callable[[PretrainedConfig], int] = lambda config: config.num_hidden_layers + 1
    layer_width: Callable[[PretrainedConfig], int] = lambda config: config.hidden_size
    encode: Encode = encode_hidden_states
    default_window_seconds: Callable[[PretrainedConfig], float] = lambda config: 10.0  # its pre-training clip length
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")  # attention projections (nn.Linear names); () for none
    freeze_feature_encoder: Callable[[PreTrainedModel], None] | None = freeze_convolutional_feature_encoder
    # The nn.ModuleList of transformer layers, when dropping the top ones leaves the hidden states below unchanged
    # (transformers records them from each layer's output), and the final norm tied to the last hidden state.
    top_layers: Callable[[nn.Module], ModuleSlot] | None = lambda model: (model.encoder, "layers")
    final_norm: Callable[[nn.Module, PretrainedConfig], ModuleSlot | None] = stable_layer_norm_output

    def build_encoder(self, config: PretrainedConfig) -> PreTrainedModel:
        """A randomly initialised encoder for `config`, every layer kept (weights are loaded afterwards by
        `from_pretrained`)."""
        keep_every_layer(config)
        return self.build(config)

    def encode_layers(
        self,
        encoder: nn.Module,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        **extra: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None, ModelOutput]:
        """Run `encoder` (of this family) and stack its layers.

        Args:
            inputs: the encoder's main input (`input_values` `(batch, samples)` for waveform encoders, log-mel
                features for spectrogram encoders).
            attention_mask: sample-level mask `(batch, samples)` for waveform encoders, mel-frame mask for Whisper.
            output_attentions, output_hidden_states: ask the encoder for its `attentions` / `hidden_states` in its
                own output (every family but CLAP computes the hidden states anyway: they are its layers).
            extra: further encoder inputs (CLAP's `is_longer`).

        Returns:
            `(hidden_states, frame_mask, encoder_output)`: `(batch, layers, frames, width)`, a bool `(batch, frames)`
            or `None` (every frame valid), and the encoder's own output.

        A frozen encoder (no parameter requiring grad, input not requiring grad) runs without recording a graph:
        nothing is kept for a backward pass that could not reach it.
        """
        frozen = not inputs.requires_grad and not any(p.requires_grad for p in encoder.parameters())
        flags = {"output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            return self.encode(encoder, inputs, attention_mask, flags, **extra)


ENCODER_FAMILIES: list[EncoderFamily] = []


def register_encoder_family(family: EncoderFamily) -> EncoderFamily:
    """Add `family`, replacing any registered family of the same name."""
    ENCODER_FAMILIES[:] = [known for known in ENCODER_FAMILIES if known.name != family.name] + [family]
    return family


def encoder_family(config: PretrainedConfig | str, checkpoint: bool = False, output: str | None = None) -> EncoderFamily:
    """The family record of an encoder config (or `model_type`); `checkpoint=True` also matches the `model_type` of a
    checkpoint's config.json that the family loads from (m-a-p MERT, a full CLAP). Where a model_type has a record
    per output (CLAP), `output` picks one (None: the first registered); a family of one record ignores it."""
    model_type = config if isinstance(config, str) else config.model_type
    records = [
        family for family in ENCODER_FAMILIES
        if model_type in family.model_types or (checkpoint and model_type in family.checkpoint_model_types)
    ]
    if not records:
        supported = dict.fromkeys(t for family in ENCODER_FAMILIES for t in family.model_types)
        raise ValueError(f"Unsupported audio encoder model_type {model_type!r}; supported: {', '.join(supported)}")
    if output is None or records[0].output is None:
        return records[0]
    for family in records:
        if family.output == output:
            return family
    outputs = ", ".join(repr(family.output) for family in records)
    raise ValueError(f"{model_type} encoders give the outputs {outputs}, not {output!r}")


def local_config_class(model_type: str) -> type[PretrainedConfig] | None:
    """The config class defined in audiocap for `model_type`, or None (transformers' `AutoConfig` knows it)."""
    for family in ENCODER_FAMILIES:
        for config_class in family.config_classes:
            if config_class.model_type == model_type:
                return config_class
    return None


def short_names() -> dict[str, Callable[..., PretrainedConfig]]:
    """Every family's short names (`"audiocap/melcnn"`) -> config factory (keyword overrides of its defaults)."""
    return {name: factory for family in ENCODER_FAMILIES for name, factory in family.short_names.items()}


def feature_extractor_family(extractor: FeatureExtractionMixin) -> EncoderFamily:
    """The family whose feature extractor `extractor` is (raw-sample extractors of any other class: wav2vec2's)."""
    for family in ENCODER_FAMILIES:
        if isinstance(extractor, family.feature_extractor_class):
            return family
    return WAV2VEC2


# Short names of audiocap's from-scratch encoders -> their config factory: the small defaults, and the music2vec
# models at the paper's sizes (`MUSIC2VEC_PRESETS`).
SCRATCH_ENCODER_NAMES: dict[str, Callable[..., PretrainedConfig]] = {
    "audiocap/samplecnn": SampleCNNConfig,
    "audiocap/melcnn": MelCNNConfig,
    "audiocap/cldnn": CLDNNConfig,
    "audiocap/soundnet": SoundNetConfig,
    "audiocap/soundnet-lstm": _preset(SoundNetConfig, {"lstm_layers": 2}),
    "audiocap/speclstm": SpecLSTMConfig,
    **{f"audiocap/{name}": _preset(cls, sizes) for name, (cls, sizes) in MUSIC2VEC_PRESETS.items()},
}


def _load_scratch(name_or_path: str, **hub_kwargs) -> PreTrainedModel:
    model_type = PretrainedConfig.get_config_dict(name_or_path, **hub_kwargs)[0]["model_type"]
    return SCRATCH_MODEL_CLASSES[model_type].from_pretrained(name_or_path, **hub_kwargs)


def _scratch_window_seconds(config: PretrainedConfig) -> float:
    """10 s; the auto-encoder reconstructs a fixed spectrogram of `num_frames` (centred) frames."""
    if config.model_type == "audiocap_conv_autoencoder":
        return (config.num_frames - 1) * config.hop_length / config.sampling_rate
    return 10.0


def _load_whisper_encoder(name_or_path: str, **hub_kwargs) -> PreTrainedModel:
    """The encoder of a Whisper checkpoint: a saved encoder alone (`architectures: ["WhisperEncoder"]`, what
    `resolve_encoder(...).model.save_pretrained` writes) loads as it is; a whole model gives its encoder."""
    architectures = PretrainedConfig.get_config_dict(name_or_path, **hub_kwargs)[0].get("architectures") or []
    if architectures == [WhisperEncoder.__name__]:
        return WhisperEncoder.from_pretrained(name_or_path, **hub_kwargs)
    return WhisperModel.from_pretrained(name_or_path, **hub_kwargs).get_encoder()


WAV2VEC2 = register_encoder_family(EncoderFamily("wav2vec2", ("wav2vec2", "hubert", "wavlm", "data2vec-audio")))
register_encoder_family(EncoderFamily(
    "mert", ("mert",), checkpoint_model_types=(MERT_HUB_MODEL_TYPE,), config_classes=(MERTConfig,),
    build=MERTModel, load=load_mert_pretrained, feature_extractor=mert_feature_extractor,
    load_feature_extractor=saved_feature_extractor(AutoFeatureExtractor, mert_feature_extractor),
    default_window_seconds=lambda config: 5.0,  # MERT-v1 was pre-trained on 5 s crops
))
register_encoder_family(EncoderFamily(
    "scratch", tuple(SCRATCH_MODEL_CLASSES), config_classes=tuple(SCRATCH_CONFIG_CLASSES.values()),
    short_names=SCRATCH_ENCODER_NAMES,
    # not through AutoModel: it must also build under remote code, where the Auto classes do not know them
    build=lambda config: SCRATCH_MODEL_CLASSES[config.model_type](config),
    load=_load_scratch,
    feature_extractor=scratch_feature_extractor,
    load_feature_extractor=saved_feature_extractor(Wav2Vec2FeatureExtractor, scratch_feature_extractor),
    default_window_seconds=_scratch_window_seconds, lora_targets=(), freeze_feature_encoder=None, top_layers=None,
))
register_encoder_family(EncoderFamily(
    "whisper", ("whisper",), build=WhisperEncoder,
    load=_load_whisper_encoder,
    feature_extractor=lambda config: WhisperFeatureExtractor(feature_size=config.num_mel_bins),
    load_feature_extractor=saved_feature_extractor(WhisperFeatureExtractor),
    feature_extractor_class=WhisperFeatureExtractor,
    featurize_kwargs=lambda extractor: {"return_attention_mask": True},  # padded to 30 s: the model masks the padding
    max_input_samples=lambda extractor: int(extractor.n_samples),
    input_name="input_features", waveform=False,
    num_layers=lambda config: config.encoder_layers + 1, layer_width=lambda config: config.d_model,
    encode=_encode_whisper,
    default_window_seconds=lambda config: config.max_source_positions * 0.02,  # 1500 positions x 20 ms = 30 s
    freeze_feature_encoder=None, top_layers=lambda model: (model, "layers"),
    final_norm=_whisper_output_norm,
))
register_encoder_family(EncoderFamily(
    "ast", ("audio-spectrogram-transformer",),
    feature_extractor=lambda config: ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length),
    feature_extractor_class=ASTFeatureExtractor, featurize_kwargs=lambda extractor: {},
    max_input_samples=lambda extractor: int(extractor.max_length * extractor.sampling_rate // 100),  # 10 ms frames
    waveform=False, frames=False, encode=_encode_ast,
    default_window_seconds=lambda config: config.max_length * 0.01,  # 1024 frames x 10 ms = 10.24 s
    freeze_feature_encoder=None, top_layers=lambda model: (model, "layers"),
))
CLAP = register_encoder_family(EncoderFamily(
    "clap", ("clap_audio_model",), output="projected",
    checkpoint_model_types=("clap",),  # a full CLAP checkpoint gives its audio tower
    build=ClapAudioModelWithProjection, load=ClapAudioModelWithProjection.from_pretrained,
    # deterministic for clips up to 10 s ("rand_trunc" only crops longer ones; audiocap windows first)
    feature_extractor=lambda config: ClapFeatureExtractor(feature_size=config.num_mel_bins, truncation="rand_trunc"),
    load_feature_extractor=saved_feature_extractor(ClapFeatureExtractor),
    feature_extractor_class=ClapFeatureExtractor, featurize_kwargs=lambda extractor: {},
    max_input_samples=lambda extractor: int(extractor.nb_max_samples),
    input_name="input_features", extra_inputs=("is_longer",), waveform=False, frames=False,
    num_layers=lambda config: 1, layer_width=lambda config: config.projection_dim, encode=_encode_clap_projected,
    lora_targets=("query", "value"), freeze_feature_encoder=None, top_layers=None,
))
register_encoder_family(replace(
    CLAP, name="clap-frames", output="last_hidden_state", layer_width=lambda config: config.hidden_size,
    encode=_encode_clap_frames,
))
