"""audiocap: audio encoders under genre classifiers and T5 captioners, Hugging Face native.

Importing the package registers its configs and models with the Auto classes, so `AutoModel*.from_pretrained`
loads audiocap checkpoints (and native MERT) without `trust_remote_code`.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForSpeechSeq2Seq,
)

from .configuration_audiocap import AudioCaptionConfig, AudioGenreConfig
from .configuration_mert import MERTConfig
from .encoders import ResolvedEncoder, resolve_encoder
from .modeling_audiocap import (
    AudioEncoderForGenreClassification,
    AudioEncoderT5ForCaptioning,
    LayerWeighting,
    mean_pool,
)
from .modeling_mert import MERTModel, load_mert_pretrained

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register(MERTConfig.model_type, MERTConfig, exist_ok=True)
    AutoModel.register(MERTConfig, MERTModel, exist_ok=True)
    AutoConfig.register(AudioGenreConfig.model_type, AudioGenreConfig, exist_ok=True)
    AutoConfig.register(AudioCaptionConfig.model_type, AudioCaptionConfig, exist_ok=True)
    AutoModelForAudioClassification.register(AudioGenreConfig, AudioEncoderForGenreClassification, exist_ok=True)
    AutoModelForSpeechSeq2Seq.register(AudioCaptionConfig, AudioEncoderT5ForCaptioning, exist_ok=True)
    # save_pretrained writes auto_map and copies the code files, so checkpoints also load with trust_remote_code.
    AudioGenreConfig.register_for_auto_class()
    AudioCaptionConfig.register_for_auto_class()
    AudioEncoderForGenreClassification.register_for_auto_class("AutoModelForAudioClassification")
    AudioEncoderT5ForCaptioning.register_for_auto_class("AutoModelForSpeechSeq2Seq")


_register()

__all__ = [
    "AudioCaptionConfig",
    "AudioEncoderForGenreClassification",
    "AudioEncoderT5ForCaptioning",
    "AudioGenreConfig",
    "LayerWeighting",
    "MERTConfig",
    "MERTModel",
    "ResolvedEncoder",
    "load_mert_pretrained",
    "mean_pool",
    "resolve_encoder",
]
