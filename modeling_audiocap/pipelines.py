"""The `music-captioning` pipeline: audio in (a path, an array with its rate, a datasets Audio value), caption out.

`register_music_captioning(model)` registers the task and records it in the model's config; saving the model then
also saves this file, so `pipeline("music-captioning", model=dir, trust_remote_code=True)("song.wav")` works
without audiocap installed.
"""

from pathlib import Path

from transformers import AutoModelForSpeechSeq2Seq, Pipeline, PreTrainedModel
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY

from .audio import cut_windows, load_audio
from .processing_audiocap import AudioCapProcessor

TASK = "music-captioning"
GENERATE_OPTIONS = ("max_new_tokens", "num_beams", "no_repeat_ngram_size", "repetition_penalty", "do_sample")


class MusicCaptioningPipeline(Pipeline):
    """Caption a music clip: the first `window_seconds` of the audio go through the captioner's `generate`.

    Returns `[{"generated_text": caption}]`. Generation options (`max_new_tokens`, `num_beams`, ...) may be passed
    at call time.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = True

    def _sanitize_parameters(self, **kwargs):
        forward = {k: kwargs[k] for k in GENERATE_OPTIONS if k in kwargs}
        preprocess = {k: kwargs[k] for k in ("sampling_rate",) if k in kwargs}
        return preprocess, forward, {}

    def _processor(self) -> AudioCapProcessor:
        return AudioCapProcessor(
            feature_extractor=self.feature_extractor,
            tokenizer=self.tokenizer,
            window_seconds=getattr(self.model.config, "window_seconds", None),
        )

    def preprocess(self, inputs, sampling_rate: int | None = None):
        processor = self._processor()
        source = (inputs, sampling_rate) if sampling_rate is not None else inputs
        wave = load_audio(source, processor.sampling_rate)
        if processor.window_samples is not None:
            wave = cut_windows(wave, processor.window_samples)[0][: min(wave.shape[0], processor.window_samples)]
        return dict(processor.featurize([wave], return_tensors="pt"))

    def _forward(self, model_inputs, **generate_kwargs):
        return {"ids": self.model.generate(**model_inputs, **generate_kwargs)}

    def postprocess(self, model_outputs):
        text = self.tokenizer.decode(model_outputs["ids"][0], skip_special_tokens=True)
        return [{"generated_text": text.strip()}]


def register_music_captioning(model: PreTrainedModel | None = None) -> None:
    """Register the task with transformers; with a model, record it in the model's config for saving."""
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=MusicCaptioningPipeline, pt_model=AutoModelForSpeechSeq2Seq, type="audio"
    )
    if model is not None:
        model.config.custom_pipelines = {
            TASK: {
                "impl": f"{Path(__file__).stem}.{MusicCaptioningPipeline.__name__}",
                "pt": [AutoModelForSpeechSeq2Seq.__name__],
                "tf": [],
                "type": "audio",
            }
        }


def save_pipeline_code(folder: str | Path) -> None:
    """Copy this file (and what it imports from the package) next to a saved model."""
    custom_object_save(MusicCaptioningPipeline, folder)
