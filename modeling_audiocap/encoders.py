"""One resolver from an encoder's name, directory or config to a ready encoder with its rate, depth and width.

`resolve_encoder("m-a-p/MERT-v1-95M")`, `resolve_encoder("facebook/wav2vec2-base")`, `resolve_encoder(local_dir)`
and `resolve_encoder(Wav2Vec2Config(...))` all return a `ResolvedEncoder`. Hub ids and local directories go
through the same code. MERT checkpoints load natively (never through their remote code); CLAP and Whisper
checkpoints give their audio tower / encoder only.

Short names build one of audiocap's from-scratch encoders, randomly initialised, with its default (small) config
or with `config_overrides`: `resolve_encoder("audiocap/samplecnn")`, `resolve_encoder("audiocap/melcnn",
config_overrides={"stage_channels": [64, 128, 256, 512], "hidden_size": 512})`. The music2vec models are built at
the paper's sizes: `resolve_encoder("audiocap/music2vec-cldnn")` (see `SCRATCH_ENCODER_NAMES`). A directory where a trained one was saved (`model.save_pretrained(dir)`) loads like any other checkpoint.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from huggingface_hub import hf_hub_download
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

from .configuration_scratch import (
    MUSIC2VEC_PRESETS,
    CLDNNConfig,
    MelCNNConfig,
    SampleCNNConfig,
    SoundNetConfig,
    SpecLSTMConfig,
)
from .modeling_encoders import build_encoder, check_supported, keep_every_layer, layer_width, num_layers
from .modeling_mert import load_mert_pretrained, mert_feature_extractor
from .modeling_scratch import SCRATCH_MODEL_CLASSES

MERT_MODEL_TYPES = ("mert_model", "mert")


def _preset(config_class: type[PretrainedConfig], settings: dict) -> Callable[..., PretrainedConfig]:
    """A config factory: `config_class` with `settings` in place of its defaults, then the caller's overrides."""
    return lambda **overrides: config_class(**{**settings, **overrides})


# Short names of audiocap's from-scratch encoders -> their config factory (keyword overrides of the defaults): the
# small defaults, and the music2vec models at the paper's sizes (`MUSIC2VEC_PRESETS`).
SCRATCH_ENCODER_NAMES: dict[str, Callable[..., PretrainedConfig]] = {
    "audiocap/samplecnn": SampleCNNConfig,
    "audiocap/melcnn": MelCNNConfig,
    "audiocap/cldnn": CLDNNConfig,
    "audiocap/soundnet": SoundNetConfig,
    "audiocap/soundnet-lstm": _preset(SoundNetConfig, {"lstm_layers": 2}),
    "audiocap/speclstm": SpecLSTMConfig,
    **{f"audiocap/{name}": _preset(cls, sizes) for name, (cls, sizes) in MUSIC2VEC_PRESETS.items()},
}


@dataclass
class ResolvedEncoder:
    """An encoder ready to use: the module, its feature extractor, and what a head needs to know about it."""

    model: PreTrainedModel
    feature_extractor: FeatureExtractionMixin
    config: PretrainedConfig
    sampling_rate: int
    num_layers: int
    hidden_size: int


def read_config_dict(name_or_path: str, **hub_kwargs) -> dict:
    """config.json of a local directory or a Hub repo, as a dict."""
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name_or_path!r} is a directory without config.json: not an encoder checkpoint")
    else:
        path = hf_hub_download(name_or_path, "config.json", **hub_kwargs)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def default_feature_extractor(config: PretrainedConfig) -> FeatureExtractionMixin:
    """The feature extractor an encoder family uses, for encoders built from a config (no checkpoint)."""
    model_type = config.model_type
    if model_type == "mert":
        return mert_feature_extractor(config)
    if model_type == "whisper":
        return WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    if model_type == "audio-spectrogram-transformer":
        return ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)
    if model_type == "clap_audio_model":
        # Deterministic for clips up to 10 s ("rand_trunc" only crops longer ones; audiocap windows first).
        return ClapFeatureExtractor(feature_size=config.num_mel_bins, truncation="rand_trunc")
    if model_type in SCRATCH_MODEL_CLASSES:
        return scratch_feature_extractor(config)
    # wav2vec2-style: group-norm models are trained without an attention mask, layer-norm models with one.
    return Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=config.feat_extract_norm == "layer"
    )


def scratch_feature_extractor(config: PretrainedConfig) -> Wav2Vec2FeatureExtractor:
    """The trivial feature extractor of a from-scratch encoder: raw samples at its rate (no normalisation; its front
    end is inside the model), zero right-padding and an attention mask."""
    return Wav2Vec2FeatureExtractor(sampling_rate=config.sampling_rate, do_normalize=False, return_attention_mask=True)


AUDIOCAP_MODEL_TYPES = ("audiocap_genre", "audiocap_caption")


def _load_audiocap_encoder(name_or_path: str, model_type: str, **hub_kwargs):
    """The encoder of a saved audiocap model (a genre model fine-tuned on a user's data, say) with the feature
    extractor of its processor: the encoder keeps what that model learned."""
    from .modeling_audiocap import AudioEncoderForGenreClassification, AudioEncoderT5ForCaptioning
    from .processing_audiocap import AudioCapProcessor

    cls = AudioEncoderForGenreClassification if model_type == "audiocap_genre" else AudioEncoderT5ForCaptioning
    model = cls.from_pretrained(name_or_path, **hub_kwargs)
    return model.encoder, AudioCapProcessor.from_pretrained(name_or_path, **hub_kwargs).feature_extractor


def _load_pretrained(name_or_path: str, config_dict: dict, **hub_kwargs) -> tuple[PreTrainedModel, FeatureExtractionMixin]:
    model_type = config_dict.get("model_type")
    if model_type in AUDIOCAP_MODEL_TYPES:
        return _load_audiocap_encoder(name_or_path, model_type, **hub_kwargs)
    if model_type in SCRATCH_MODEL_CLASSES:
        model = SCRATCH_MODEL_CLASSES[model_type].from_pretrained(name_or_path, **hub_kwargs)
        try:
            feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
        except OSError:  # saved without its feature extractor
            feature_extractor = scratch_feature_extractor(model.config)
        return model, feature_extractor
    if model_type in MERT_MODEL_TYPES:
        model = load_mert_pretrained(name_or_path, **hub_kwargs)
        try:
            feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
        except OSError:
            feature_extractor = mert_feature_extractor(model.config)
        return model, feature_extractor
    if model_type in ("clap", "clap_audio_model"):  # a full CLAP checkpoint, or a saved audio tower
        model = ClapAudioModelWithProjection.from_pretrained(name_or_path, **hub_kwargs)
        return model, ClapFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
    if model_type == "whisper":
        model = WhisperModel.from_pretrained(name_or_path, **hub_kwargs).get_encoder()
        return model, WhisperFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
    model = AutoModel.from_pretrained(name_or_path, **hub_kwargs)
    return model, AutoFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)


def resolve_encoder(
    name_or_path: str | PretrainedConfig,
    clap_output: str = "projected",
    config_overrides: dict | None = None,
    **hub_kwargs,
) -> ResolvedEncoder:
    """Resolve a Hub id, a local directory, a config (random weights) or a short name of a from-scratch encoder
    (`SCRATCH_ENCODER_NAMES`, random weights; `config_overrides` replace its config's defaults) to a
    `ResolvedEncoder`. An existing local directory of that name takes precedence over a short name."""
    name = None if isinstance(name_or_path, PretrainedConfig) else str(name_or_path)
    is_short_name = name in SCRATCH_ENCODER_NAMES and not os.path.isdir(name)
    if config_overrides and not is_short_name:
        raise ValueError(
            "config_overrides only apply to the short names of from-scratch encoders "
            f"({', '.join(SCRATCH_ENCODER_NAMES)}), not to {name_or_path!r}"
        )
    if is_short_name:
        name_or_path = SCRATCH_ENCODER_NAMES[name](**(config_overrides or {}))
    if isinstance(name_or_path, PretrainedConfig):
        check_supported(name_or_path)
        model, feature_extractor = build_encoder(name_or_path), default_feature_extractor(name_or_path)
    else:
        model, feature_extractor = _load_pretrained(str(name_or_path), read_config_dict(str(name_or_path), **hub_kwargs), **hub_kwargs)
        check_supported(model.config)
        keep_every_layer(model.config)
    config = model.config
    return ResolvedEncoder(
        model=model,
        feature_extractor=feature_extractor,
        config=config,
        sampling_rate=feature_extractor.sampling_rate,
        num_layers=num_layers(config),
        hidden_size=layer_width(config, clap_output),
    )
