"""One resolver from an encoder's name, directory or config to a ready encoder with its rate, depth and width.

`resolve_encoder("m-a-p/MERT-v1-95M")`, `resolve_encoder("facebook/wav2vec2-base")`, `resolve_encoder(local_dir)`
and `resolve_encoder(Wav2Vec2Config(...))` all return a `ResolvedEncoder`. Hub ids and local directories go
through the same code. MERT checkpoints load natively (never through their remote code); CLAP and Whisper
checkpoints give their audio tower / encoder only.

Short names build one of audiocap's from-scratch encoders, randomly initialised, with its default (small) config
or with `config_overrides`: `resolve_encoder("audiocap/samplecnn")`, `resolve_encoder("audiocap/melcnn",
config_overrides={"stage_channels": [64, 128, 256, 512], "hidden_size": 512})`. The music2vec models are built at
the paper's sizes: `resolve_encoder("audiocap/music2vec-cldnn")` (see `encoder_families.SCRATCH_ENCODER_NAMES`). A directory where a trained one was saved (`model.save_pretrained(dir)`) loads like any other checkpoint.

A checkpoint that holds an encoder inside a larger model is read through the loader registered for its `model_type`
(`register_encoder_container`): with the package imported, a saved audiocap classifier or captioner gives its
fine-tuned encoder (`modeling_audiocap.saved`). This file never imports the models: it ships with them.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from huggingface_hub import hf_hub_download
from transformers import PretrainedConfig, PreTrainedModel
from transformers.feature_extraction_utils import FeatureExtractionMixin

from .encoder_families import EncoderFamily, encoder_family, keep_every_layer, short_names


@dataclass
class ResolvedEncoder:
    """An encoder ready to use: the module, its feature extractor, and what a head needs to know about it."""

    model: PreTrainedModel
    feature_extractor: FeatureExtractionMixin
    config: PretrainedConfig
    sampling_rate: int
    num_layers: int
    hidden_size: int
    family: EncoderFamily  # its record (for CLAP, that of the output asked for)


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


# Checkpoints that hold an encoder inside a larger model, by their `model_type`: a loader `(name_or_path, **hub_kwargs)
# -> (encoder, feature extractor)`. audiocap's toolkit registers its own classifiers and captioners here
# (`saved.register_saved_encoders`), so this file, which ships with saved models, never imports the models.
ENCODER_CONTAINERS: dict[str, Callable[..., tuple[PreTrainedModel, FeatureExtractionMixin]]] = {}


def register_encoder_container(model_type: str, loader: Callable[..., tuple[PreTrainedModel, FeatureExtractionMixin]]):
    """Let `resolve_encoder` take checkpoints of `model_type` as encoders, through `loader`."""
    ENCODER_CONTAINERS[model_type] = loader


def _load_pretrained(name_or_path: str, config_dict: dict, **hub_kwargs) -> tuple[PreTrainedModel, FeatureExtractionMixin]:
    model_type = config_dict.get("model_type")
    if model_type in ENCODER_CONTAINERS:
        return ENCODER_CONTAINERS[model_type](name_or_path, **hub_kwargs)
    family = encoder_family(model_type, checkpoint=True)
    model = family.load(name_or_path, **hub_kwargs)
    return model, family.load_feature_extractor(name_or_path, model.config, **hub_kwargs)


def resolve_encoder(
    name_or_path: str | PretrainedConfig,
    clap_output: str = "projected",
    config_overrides: dict | None = None,
    **hub_kwargs,
) -> ResolvedEncoder:
    """Resolve a Hub id, a local directory, a config (random weights) or a short name of a from-scratch encoder
    (`encoder_families.short_names()`, random weights; `config_overrides` replace its config's defaults) to a
    `ResolvedEncoder`. An existing local directory of that name takes precedence over a short name."""
    name = None if isinstance(name_or_path, PretrainedConfig) else str(name_or_path)
    names = short_names()
    is_short_name = name in names and not os.path.isdir(name)
    if config_overrides and not is_short_name:
        raise ValueError(
            f"config_overrides only apply to the short names of from-scratch encoders ({', '.join(names)}), "
            f"not to {name_or_path!r}"
        )
    if is_short_name:
        name_or_path = names[name](**(config_overrides or {}))
    if isinstance(name_or_path, PretrainedConfig):
        model, feature_extractor = encoder_family(name_or_path).build_encoder(name_or_path), None
    else:
        path = str(name_or_path)
        model, feature_extractor = _load_pretrained(path, read_config_dict(path, **hub_kwargs), **hub_kwargs)
    config = model.config
    family = encoder_family(config, output=clap_output)
    keep_every_layer(config)
    feature_extractor = feature_extractor or family.feature_extractor(config)
    return ResolvedEncoder(
        model=model,
        feature_extractor=feature_extractor,
        config=config,
        sampling_rate=feature_extractor.sampling_rate,
        num_layers=family.num_layers(config),
        hidden_size=family.layer_width(config),
        family=family,
    )
