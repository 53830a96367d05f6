"""Saved audiocap models (genre classifiers and captioners) as whole models or as encoders: the one place that asks
"is this a saved audiocap model?".

- `audiocap_model_type(name_or_path)`: its `model_type` (`"audiocap_genre"` / `"audiocap_caption"`), or None for
  anything else (an encoder checkpoint, a short name, a missing path).
- `load_audiocap_model(name_or_path)`: the model and its saved `AudioCapFeatureExtractor`; the extraction engine and HEAR
  read the encoder, its layer weighting and its processor from it.
- `register_saved_encoders()` (called when the package is imported) teaches the encoder resolver to take such a model
  as an encoder (its fine-tuned encoder, with its processor's feature extractor), so
  `resolve_encoder("runs/demo-genre")` and `train_caption.py --encoder_name_or_path runs/demo-genre` work, while
  the resolver, which ships with saved models, never imports the models.
"""

import os

from transformers import PreTrainedModel
from transformers.feature_extraction_utils import FeatureExtractionMixin

from ..encoders import read_config_dict, register_encoder_container
from ..modeling_audiocap import AudioEncoderForGenreClassification, AudioEncoderT5ForCaptioning
from ..processing_audiocap import AudioCapFeatureExtractor

MODEL_CLASSES: dict[str, type[PreTrainedModel]] = {
    "audiocap_genre": AudioEncoderForGenreClassification,
    "audiocap_caption": AudioEncoderT5ForCaptioning,
}


def audiocap_model_type(name_or_path: str, **hub_kwargs) -> str | None:
    """The `model_type` of a saved audiocap model (a local folder or a Hub repo), else None."""
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            return None
    elif "/" not in name or name.startswith("audiocap/"):  # a short name of a from-scratch encoder, not a repo id
        return None
    try:
        model_type = read_config_dict(name, **hub_kwargs).get("model_type")
    except Exception:  # unreachable or not a checkpoint: the resolver raises its own, clearer error
        return None
    return model_type if model_type in MODEL_CLASSES else None


def load_audiocap_model(name_or_path: str, **hub_kwargs) -> tuple[PreTrainedModel, AudioCapFeatureExtractor]:
    """A saved audiocap model with its processor, from a local folder or the Hub."""
    model_type = audiocap_model_type(name_or_path, **hub_kwargs)
    if model_type is None:
        raise ValueError(
            f"{name_or_path!r} is not a saved audiocap model (a config.json of {', '.join(MODEL_CLASSES)})"
        )
    model = MODEL_CLASSES[model_type].from_pretrained(name_or_path, **hub_kwargs)
    return model, AudioCapFeatureExtractor.from_pretrained(name_or_path, **hub_kwargs)


def _saved_encoder(name_or_path: str, **hub_kwargs) -> tuple[PreTrainedModel, FeatureExtractionMixin]:
    """The encoder of a saved audiocap model (what it learned, e.g. on a user's data) and its feature extractor."""
    model, processor = load_audiocap_model(name_or_path, **hub_kwargs)
    return model.encoder, processor.feature_extractor


def register_saved_encoders() -> None:
    """Let `resolve_encoder` take a saved audiocap model as an encoder."""
    for model_type in MODEL_CLASSES:
        register_encoder_container(model_type, _saved_encoder)
