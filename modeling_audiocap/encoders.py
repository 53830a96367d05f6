"""One resolver from an encoder's name, directory or config to a ready encoder with its rate, depth and width.

`resolve_encoder("m-a-p/MERT-v1-95M")`, `resolve_encoder("facebook/wav2vec2-base")`, `resolve_encoder(local_dir)`
and `resolve_encoder(Wav2Vec2Config(...))` all return a `ResolvedEncoder`. Hub ids and local directories go
through the same code. MERT checkpoints load natively (never through their remote code); CLAP and Whisper
checkpoints give their audio tower / encoder only.
"""

import json
import os
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

from .modeling_encoders import build_encoder, check_supported, keep_every_layer, layer_width, num_layers
from .modeling_mert import load_mert_pretrained, mert_feature_extractor

MERT_MODEL_TYPES = ("mert_model", "mert")


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
    # wav2vec2-style: group-norm models are trained without an attention mask, layer-norm models with one.
    return Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=config.feat_extract_norm == "layer"
    )


def _load_pretrained(name_or_path: str, config_dict: dict, **hub_kwargs) -> tuple[PreTrainedModel, FeatureExtractionMixin]:
    model_type = config_dict.get("model_type")
    if model_type in MERT_MODEL_TYPES:
        model = load_mert_pretrained(name_or_path, **hub_kwargs)
        try:
            feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
        except OSError:
            feature_extractor = mert_feature_extractor(model.config)
        return model, feature_extractor
    if model_type == "clap":
        model = ClapAudioModelWithProjection.from_pretrained(name_or_path, **hub_kwargs)
        return model, ClapFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
    if model_type == "whisper":
        model = WhisperModel.from_pretrained(name_or_path, **hub_kwargs).get_encoder()
        return model, WhisperFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)
    model = AutoModel.from_pretrained(name_or_path, **hub_kwargs)
    return model, AutoFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)


def resolve_encoder(
    name_or_path: str | PretrainedConfig, clap_output: str = "projected", **hub_kwargs
) -> ResolvedEncoder:
    """Resolve a Hub id, a local directory or a config (random weights) to a `ResolvedEncoder`."""
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
