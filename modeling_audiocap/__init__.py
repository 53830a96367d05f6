"""audiocap: audio encoders under genre classifiers and T5 captioners, Hugging Face native.

Importing the package registers its configs and models with the Auto classes, so `AutoModel*.from_pretrained`
loads audiocap checkpoints (and native MERT) without `trust_remote_code`.
It first checks that torch, torchaudio and torchcodec fit together (`stack.check_stack`), before transformers loads
torchaudio.
"""

from .stack import IncompatibleStackError, check_stack

check_stack()

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
)

from .audio import AudioDecodingError, cut_windows, load_audio, peak_normalize, window_starts
from .configuration_audiocap import AudioCaptionConfig, AudioGenreConfig
from .configuration_mert import MERTConfig
from .configuration_scratch import (
    CLDNNConfig,
    MelCNNConfig,
    SampleCNNConfig,
    SoundNetConfig,
    SpecLSTMConfig,
)
from .encoder_families import EncoderFamily, register_encoder_family
from .encoders import ResolvedEncoder, resolve_encoder
from .modeling_audiocap import (
    AudioEncoderForGenreClassification,
    AudioEncoderT5ForCaptioning,
    LayerWeighting,
    mean_pool,
)
from .modeling_mert import MERTModel, load_mert_pretrained
from .modeling_scratch import (
    SCRATCH_MODEL_CLASSES,
    CLDNNModel,
    MelCNNModel,
    SampleCNNModel,
    SoundNetModel,
    SpecLSTMModel,
)
from .processing_audiocap import AudioCapFeatureExtractor, AudioCapProcessor, average_windows
from .pipelines import AudioGenreClassificationPipeline, MusicCaptioningPipeline, register_music_captioning
from .embedding import extract_embeddings
from .saved import register_saved_encoders

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register(MERTConfig.model_type, MERTConfig, exist_ok=True)
    AutoModel.register(MERTConfig, MERTModel, exist_ok=True)
    # From-scratch encoders: AutoModel.from_pretrained(dir) loads a saved one; a saved one also carries its code
    # (configuration_scratch.py, modeling_scratch.py) for trust_remote_code loading.
    for model_class in SCRATCH_MODEL_CLASSES.values():
        AutoConfig.register(model_class.config_class.model_type, model_class.config_class, exist_ok=True)
        AutoModel.register(model_class.config_class, model_class, exist_ok=True)
        model_class.config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModel")
    AutoConfig.register(AudioGenreConfig.model_type, AudioGenreConfig, exist_ok=True)
    AutoConfig.register(AudioCaptionConfig.model_type, AudioCaptionConfig, exist_ok=True)
    AutoModelForAudioClassification.register(AudioGenreConfig, AudioEncoderForGenreClassification, exist_ok=True)
    AutoModelForSpeechSeq2Seq.register(AudioCaptionConfig, AudioEncoderT5ForCaptioning, exist_ok=True)
    # save_pretrained writes auto_map and copies the code files, so checkpoints also load with trust_remote_code.
    AudioGenreConfig.register_for_auto_class()
    AudioCaptionConfig.register_for_auto_class()
    AudioEncoderForGenreClassification.register_for_auto_class("AutoModelForAudioClassification")
    AudioEncoderT5ForCaptioning.register_for_auto_class("AutoModelForSpeechSeq2Seq")
    # AutoFeatureExtractor finds a genre model's audio preprocessing and AutoProcessor a captioner's (by their saved
    # type, or by the model's config); both carry their code (processing_audiocap.py, audio.py, ...) for
    # trust_remote_code loading.
    AutoFeatureExtractor.register(AudioGenreConfig, AudioCapFeatureExtractor, exist_ok=True)
    AutoProcessor.register(AudioCaptionConfig, AudioCapProcessor, exist_ok=True)
    AudioCapFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    AudioCapProcessor.register_for_auto_class()
    register_music_captioning()
    register_saved_encoders()  # resolve_encoder takes a saved audiocap model as an encoder


_register()

__all__ = [
    "AudioCapFeatureExtractor",
    "AudioCapProcessor",
    "AudioGenreClassificationPipeline",
    "MusicCaptioningPipeline",
    "AudioCaptionConfig",
    "AudioDecodingError",
    "AudioEncoderForGenreClassification",
    "AudioEncoderT5ForCaptioning",
    "AudioGenreConfig",
    "CLDNNConfig",
    "IncompatibleStackError",
    "CLDNNModel",
    "EncoderFamily",
    "LayerWeighting",
    "MERTConfig",
    "MERTModel",
    "MelCNNConfig",
    "MelCNNModel",
    "ResolvedEncoder",
    "SampleCNNConfig",
    "SampleCNNModel",
    "SoundNetConfig",
    "SoundNetModel",
    "SpecLSTMConfig",
    "SpecLSTMModel",
    "average_windows",
    "cut_windows",
    "extract_embeddings",
    "load_audio",
    "load_mert_pretrained",
    "mean_pool",
    "peak_normalize",
    "register_encoder_family",
    "resolve_encoder",
    "window_starts",
]
