"""audiocap's pipelines: `audio-classification` for genre models and `music-captioning` for captioners.

Both decode, window and featurise every input with the model's `AudioCapFeatureExtractor` (a captioner's inside its
`AudioCapProcessor`), the one path training uses, so that a saved model sees in serving exactly what it saw in
training (transformers' own `AudioClassificationPipeline` decodes with an FFmpeg subprocess instead: another downmix,
resampler and length).

- `AudioGenreClassificationPipeline` (a `ChunkPipeline`): every window of the clip (the windows of training's
  evaluation), read block by block from files so that an hour-long track takes no more memory than a clip, goes
  through the classifier; the clip's scores are the softmax of the mean of the windows' logits. A genre model records it in
  its config (`custom_pipelines["audio-classification"]`, see `register_audio_classification`) and ships this file
  with its code, so `pipeline("audio-classification", model=dir, trust_remote_code=True)("song.wav")` works
  without audiocap installed. With audiocap imported, `pipeline("audio-classification", model=dir,
  pipeline_class=AudioGenreClassificationPipeline)` needs no remote code (transformers refuses a config's custom
  pipeline without `trust_remote_code` unless `pipeline_class` is given).
- `MusicCaptioningPipeline`: `register_music_captioning(model)` registers the task and records it in the model's
  config; saving the model then also saves this file, so `pipeline("music-captioning", model=dir,
  trust_remote_code=True)("song.wav")` works without audiocap installed.

This file only uses flat relative imports so that it ships as remote code with a model.
"""

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from transformers import AutoModelForAudioClassification, AutoModelForSpeechSeq2Seq, Pipeline, PreTrainedModel
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

from .configuration_audiocap import score_function
from .processing_audiocap import AudioCapFeatureExtractor, average_windows

logger = logging.getLogger(__name__)

TASK = "music-captioning"
GENRE_TASK = "audio-classification"
SCORE_FUNCTIONS = ("softmax", "sigmoid", "none")


def saved_audio_processor(pipe: Pipeline) -> AudioCapFeatureExtractor:
    """The audio preprocessing saved with the pipeline's model: a genre model's `AudioCapFeatureExtractor`, a
    captioner's `AudioCapProcessor`'s audio side, or, for a model saved without either, one around its encoder's
    feature extractor, windowed by the model's config."""
    for saved in (pipe.feature_extractor, getattr(pipe.processor, "audio", None)):
        if callable(getattr(saved, "clip_features", None)):
            return saved
    if pipe.feature_extractor is None:
        raise ValueError(
            f"{pipe.model.name_or_path or type(pipe.model).__name__} has no feature extractor to featurise audio "
            "(preprocessor_config.json or processor_config.json); save the processor with the model or pass "
            "feature_extractor="
        )
    logger.info("No audiocap feature extractor saved with %s: using its encoder's", pipe.model.name_or_path)
    window_seconds = getattr(pipe.model.config, "window_seconds", None)
    return AudioCapFeatureExtractor(pipe.feature_extractor, window_seconds=window_seconds)


def clip_scores(logits: torch.Tensor, function: str) -> torch.Tensor:
    """A clip's scores from its mean logits: `"softmax"` over the labels, `"sigmoid"` per tag, `"none"` as they are."""
    if function == "softmax":
        return logits.softmax(-1)
    if function == "sigmoid":
        return logits.sigmoid()
    return logits


def windowed_by_config(audio: AudioCapFeatureExtractor, config) -> AudioCapFeatureExtractor:
    """A saved audio processor without a window of its own cuts by the model config's `window_seconds`, as the model
    was trained and evaluated."""
    if audio.window_seconds is not None:
        return audio
    return type(audio)(
        audio.feature_extractor, window_seconds=getattr(config, "window_seconds", None), normalize=audio.normalize
    )


class AudioGenreClassificationPipeline(ChunkPipeline):
    """Classify a music clip with an audiocap genre model, preprocessed exactly as in training.

    Input: a file path, encoded bytes, an `(array, rate)` pair, a `{"array", "sampling_rate"}` dict (or
    transformers' `{"raw", "sampling_rate"}`), a `datasets` Audio value or a torchcodec `AudioDecoder`; a raw 1-D
    array needs `sampling_rate=` (its rate). The model's `AudioCapFeatureExtractor` decodes it (`load_audio`'s mean of the
    channels and torchaudio resampling to the processor's rate), peak-normalises it if the processor says so, and
    cuts it into every window of the processor's `window_seconds` (the model config's when the processor has none)
    as in evaluation. Files are read block by block (`AudioCapFeatureExtractor.iter_windows`) and the windows go through
    the model `window_batch_size` at a time, so a long track takes memory bounded by the window, not the track.

    Returns transformers' audio-classification format: `[{"label": str, "score": float}, ...]`, best first, `top_k`
    of them (all labels by default); scores are `function_to_apply` of the mean logits: by default the config's
    `score_function` (softmax for one genre per clip, a sigmoid per tag for a tagger, the values for a regressor).
    Unusable audio raises `AudioDecodingError` naming the source.
    """

    _load_processor = False
    _load_feature_extractor = None  # the saved AudioCapFeatureExtractor (or the encoder's own, then wrapped)
    _load_image_processor = False
    _load_tokenizer = False

    def __init__(self, *args, window_batch_size: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        if window_batch_size < 1:
            raise ValueError(f"window_batch_size must be >= 1, got {window_batch_size}")
        self.window_batch_size = window_batch_size
        self.audio_processor = windowed_by_config(saved_audio_processor(self), self.model.config)
        self.model.eval()

    def _sanitize_parameters(self, top_k: int | None = None, function_to_apply: str | None = None,
                             sampling_rate: int | None = None, **kwargs):
        preprocess = {} if sampling_rate is None else {"sampling_rate": sampling_rate}
        postprocess: dict[str, Any] = {}
        if top_k is not None:
            postprocess["top_k"] = top_k
        if function_to_apply is not None:
            if function_to_apply not in SCORE_FUNCTIONS:
                raise ValueError(f"function_to_apply must be one of {SCORE_FUNCTIONS}, got {function_to_apply!r}")
            postprocess["function_to_apply"] = function_to_apply
        return preprocess, {}, postprocess

    def __call__(self, inputs: Any, *args, batch_size: int | None = None, **kwargs):
        """Classify one clip, or a list / dataset / generator of clips (one at a time: a clip's windows are its
        batch, see `window_batch_size`)."""
        if batch_size not in (None, 1) or self._batch_size not in (None, 1):
            raise ValueError(
                "batch_size must be 1: each clip's windows already go through the model together; set "
                "window_batch_size= (when building the pipeline) to batch more windows"
            )
        return super().__call__(inputs, *args, **kwargs)

    def preprocess(self, inputs: Any, sampling_rate: int | None = None) -> Iterator[dict[str, Any]]:
        """One clip -> the features of its windows, `window_batch_size` windows `(windows, ...)` at a time; the last
        block says `is_last`."""
        if isinstance(inputs, dict) and "raw" in inputs and "array" not in inputs:  # transformers' dict spelling
            inputs = {"array" if key == "raw" else key: value for key, value in inputs.items()}
        blocks = self._window_blocks(inputs, sampling_rate)
        block = next(blocks)  # every clip has at least one window
        for following in blocks:
            yield {**self.audio_processor.featurize(block, return_tensors="pt"), "is_last": False}
            block = following
        yield {**self.audio_processor.featurize(block, return_tensors="pt"), "is_last": True}

    def _window_blocks(self, inputs: Any, sampling_rate: int | None) -> Iterator[list[torch.Tensor]]:
        block = []
        for _, samples in self.audio_processor.iter_windows(inputs, sampling_rate):
            block.append(samples)
            if len(block) == self.window_batch_size:
                yield block
                block = []
        if block:
            yield block

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        """The logits `(windows, labels)` of one block of windows."""
        features = dict(model_inputs)
        is_last = features.pop("is_last")
        return {"logits": self.model(**features).logits, "is_last": is_last}

    def postprocess(self, model_outputs: list[dict], top_k: int | None = None, function_to_apply: str | None = None):
        """The blocks' window logits -> their mean over the clip -> scores (`score_function` of the config unless
        `function_to_apply` says otherwise)."""
        window_logits = torch.cat([output["logits"] for output in model_outputs]).float()
        logits = average_windows(window_logits, torch.zeros(window_logits.shape[0], dtype=torch.long), num_clips=1)[0]
        scores = clip_scores(logits, function_to_apply or score_function(self.model.config))
        top_k = scores.shape[-1] if top_k is None else min(int(top_k), scores.shape[-1])
        values, ids = scores.topk(top_k)
        id2label = self.model.config.id2label
        return [{"label": id2label[i], "score": v} for v, i in zip(values.tolist(), ids.tolist())]


def record_pipeline(model: PreTrainedModel, task: str, pipeline_class: type, auto_class: type) -> None:
    """Record `pipeline_class` (from this file) as the model's pipeline for `task` in its config's `custom_pipelines`,
    next to any other it has; `save_pretrained` then ships this file for `trust_remote_code` loading."""
    model.config.custom_pipelines = {
        **(getattr(model.config, "custom_pipelines", None) or {}),
        task: {"impl": f"{Path(__file__).stem}.{pipeline_class.__name__}", "pt": [auto_class.__name__], "tf": [],
               "type": "audio"},
    }


def register_audio_classification(model: PreTrainedModel) -> None:
    """Record `AudioGenreClassificationPipeline` as the model's `audio-classification` pipeline. Never registered
    with transformers' task registry: that would take the task over for every other model."""
    record_pipeline(model, GENRE_TASK, AudioGenreClassificationPipeline, AutoModelForAudioClassification)


GENERATE_OPTIONS = ("max_new_tokens", "num_beams", "no_repeat_ngram_size", "repetition_penalty", "do_sample")


class MusicCaptioningPipeline(Pipeline):
    """Caption a music clip: the first window of the audio (`window_seconds` of the model's config), decoded and
    featurised by the captioner's `AudioCapProcessor` as in evaluation, goes through the captioner's `generate`.
    Only the start of a file is decoded.

    Returns `[{"generated_text": caption}]`. Generation options (`max_new_tokens`, `num_beams`, ...) may be passed
    at call time.
    """

    _load_processor = None  # the saved AudioCapProcessor (its tokenizer and audio side) when there is one ...
    _load_image_processor = False
    _load_feature_extractor = None  # ... else the encoder's feature extractor and the tokenizer
    _load_tokenizer = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.tokenizer is None:
            self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ValueError(f"{self.model.name_or_path} has no tokenizer saved with it to write captions; pass tokenizer=")
        self.audio_processor = windowed_by_config(saved_audio_processor(self), self.model.config)

    def _sanitize_parameters(self, **kwargs):
        forward = {k: kwargs[k] for k in GENERATE_OPTIONS if k in kwargs}
        preprocess = {k: kwargs[k] for k in ("sampling_rate",) if k in kwargs}
        return preprocess, forward, {}

    def preprocess(self, inputs, sampling_rate: int | None = None):
        windows = self.audio_processor.iter_windows(inputs, sampling_rate)
        _, first = next(windows)
        windows.close()  # the rest of the file is never decoded
        return dict(self.audio_processor.featurize([first], return_tensors="pt"))

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
        record_pipeline(model, TASK, MusicCaptioningPipeline, AutoModelForSpeechSeq2Seq)


def save_pipeline_code(folder: str | Path) -> None:
    """Copy this file (and what it imports from the package) next to a saved model. (A genre model's
    `save_pretrained` already ships it with the model's code.)"""
    custom_object_save(MusicCaptioningPipeline, folder)
