"""Raw audio (and captions) -> the inputs of an audiocap model, exactly as in training.

`AudioCapFeatureExtractor` is the audio side: it wraps the encoder's own feature extractor and adds audiocap's
preprocessing in front of it: decode any source with `audio.load_audio` (paths, `datasets` Audio values, arrays),
downmix to mono, resample to the feature extractor's rate, optionally peak-normalise, cut windows (`windows`: every
evaluation window, or one seeded random crop for training), then run the feature extractor the way its encoder
family expects:

- waveform encoders (wav2vec2, HuBERT, MERT, WavLM, data2vec-audio): pad to the longest clip, with an
  `attention_mask` when the extractor is configured to return one;
- Whisper: log-mel features padded to 30 s, always with the mel-frame `attention_mask` (the model masks padding);
- AST: fixed-length log-mel features; CLAP: log-mel features with `is_longer`.

`iter_windows(source)` gives the same evaluation windows one at a time, reading files block by block
(`audio_stream`), for tracks too long to hold: the embedding engine and the pipelines use it.

A genre model's preprocessing is an `AudioCapFeatureExtractor` (its Trainer's `processing_class`; saved as
`preprocessor_config.json`, found by `AutoFeatureExtractor`). A captioner's is an `AudioCapProcessor`: the same audio
side (`.audio`) and its tokenizer, which it requires, as `Wav2Vec2Processor` does. Saved next to a model, either
makes the published model preprocess exactly as in training.

Design (transformers 5 `ProcessorMixin`): the processor's one managed sub-processor is the encoder's feature extractor
(`get_attributes() == ["feature_extractor"]`: stored nested in `processor_config.json`, next to the window settings
and the `auto_map` for remote code); the tokenizer is saved with its own files, marked `processor_class:
AudioCapProcessor` in `tokenizer_config.json`, and loaded back only when so marked, so that the tokenizer of an
encoder checkpoint (e.g. Whisper's) is never mistaken for the captioner's. `AudioCapFeatureExtractor.from_pretrained`
reads either form.

This file only uses flat relative imports (`from .audio import ...`) so that it ships as remote code with a model.
"""

import json
import logging
import numbers
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, BatchFeature, FeatureExtractionMixin, PreTrainedTokenizerBase, ProcessorMixin
from transformers.utils import PROCESSOR_NAME, cached_file

from .audio import cut_windows, is_audio_decoder, load_audio, peak_normalize, window_starts
from .audio_stream import iter_windows
from .encoder_families import feature_extractor_family

logger = logging.getLogger(__name__)

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")


def _is_single_source(value: Any) -> bool:
    """Whether `value` is one clip (rather than a batch of clips)."""
    if isinstance(value, (str, os.PathLike, bytes, bytearray, dict)) or is_audio_decoder(value):
        return True
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (int, np.integer)):
        return not isinstance(value[0], (str, os.PathLike))  # (array, rate), not a pair of paths
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim == 1
    return isinstance(value, list) and len(value) > 0 and isinstance(value[0], numbers.Number)


def _is_raw_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor, list))


def _one_clip(source: Any, sampling_rate: int | None) -> Any:
    """One clip as `load_audio` reads it: a raw array becomes an `(array, sampling_rate)` pair."""
    if not _is_single_source(source):
        raise TypeError(f"Cannot read {type(source).__name__} as one clip of audio")
    if _is_raw_array(source) and not isinstance(source, tuple):
        if sampling_rate is None:
            raise ValueError("Pass sampling_rate= with raw audio arrays (it is the arrays' rate)")
        return source, sampling_rate
    return source


def average_windows(
    values: torch.Tensor, window_clip_index: torch.Tensor, num_clips: int | None = None
) -> torch.Tensor:
    """Mean of per-window `values` `(windows, ...)` over each clip's windows -> `(clips, ...)`."""
    num_clips = int(window_clip_index.max()) + 1 if num_clips is None else num_clips
    index = window_clip_index.to(values.device)
    sums = values.new_zeros((num_clips, *values.shape[1:])).index_add_(0, index, values)
    counts = torch.bincount(index, minlength=num_clips).clamp(min=1).to(values.dtype)
    return sums / counts.reshape(-1, *([1] * (values.dim() - 1)))


def check_windows(window_seconds: float | None, hop_seconds: float | None) -> None:
    """Window settings every path can cut by: a positive window, and a hop in (0, window]."""
    if window_seconds is not None and window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    if hop_seconds is not None:
        if window_seconds is None:
            raise ValueError("hop_seconds needs window_seconds")
        if not 0 < hop_seconds <= window_seconds:
            raise ValueError(f"hop_seconds must be in (0, window_seconds={window_seconds}], got {hop_seconds}")


def _extractor_from_dict(extractor_dict: dict) -> FeatureExtractionMixin:
    """A transformers feature extractor from its saved dict (`feature_extractor_type` names its class)."""
    name = extractor_dict.get("feature_extractor_type")
    extractor_class = getattr(transformers, str(name), None)
    if extractor_class is None or not issubclass(extractor_class, FeatureExtractionMixin):
        raise ValueError(f"Unknown feature_extractor_type {name!r} in a saved audiocap feature extractor")
    return extractor_class.from_dict(dict(extractor_dict))


def _saved_json(pretrained_model_name_or_path: str | os.PathLike, file_name: str, hub_kwargs: dict) -> dict | None:
    """A JSON file of a local folder or Hub repo, or None when it has none."""
    config_file = cached_file(
        os.fspath(pretrained_model_name_or_path),
        file_name,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )
    if config_file is None:
        return None
    with open(config_file, encoding="utf-8") as f:
        return json.load(f)


def _processor_settings(pretrained_model_name_or_path: str | os.PathLike, hub_kwargs: dict) -> dict[str, Any]:
    """The window settings saved in an `AudioCapProcessor`'s `processor_config.json`; none without one."""
    saved = _saved_json(pretrained_model_name_or_path, PROCESSOR_NAME, hub_kwargs) or {}
    return {key: saved[key] for key in ("window_seconds", "hop_seconds", "normalize") if key in saved}


class AudioCapFeatureExtractor(FeatureExtractionMixin):
    r"""
    Audio preprocessing of an audiocap model: the encoder's own feature extractor behind audiocap's decoding and
    windowing. The genre classifier's preprocessing (its Trainer's `processing_class`), the captioner's audio side
    (inside `AudioCapProcessor`) and that of every embedding, probe and pipeline.

    Args:
        feature_extractor (`FeatureExtractionMixin` or `dict`): the audio encoder's feature extractor (or its saved
            dict); its `sampling_rate` is the rate every clip is resampled to.
        window_seconds (`float`, *optional*): cut clips into windows of this length (`None`: whole clips).
        hop_seconds (`float`, *optional*): hop between evaluation windows (`None`: back-to-back windows). Must not
            exceed `window_seconds`.
        normalize (`bool`): peak-normalise each clip (before windowing) to a peak of 1.

    Saved as `preprocessor_config.json` with the encoder's extractor nested in it. `from_pretrained` also reads an
    `AudioCapProcessor`'s folder (a captioner's, or a genre model saved before this class existed) and wraps the
    plain extractor of an encoder checkpoint (no windows).
    """

    def __init__(
        self,
        feature_extractor: FeatureExtractionMixin | dict | None = None,
        window_seconds: float | None = None,
        hop_seconds: float | None = None,
        normalize: bool = False,
        **kwargs,
    ):
        if isinstance(feature_extractor, dict):
            feature_extractor = _extractor_from_dict(feature_extractor)
        if not isinstance(feature_extractor, FeatureExtractionMixin):
            raise TypeError(f"feature_extractor must be a feature extractor, got {type(feature_extractor).__name__}")
        check_windows(window_seconds, hop_seconds)
        super().__init__(**kwargs)
        self.feature_extractor = feature_extractor
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.normalize = bool(normalize)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        nested = self.feature_extractor.to_dict()
        for key in ("auto_map", "processor_class"):  # this class's own, at the top level
            nested.pop(key, None)
        output["feature_extractor"] = nested
        return output

    @classmethod
    def get_feature_extractor_dict(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """This class's saved dict, or one made from an `AudioCapProcessor`'s `processor_config.json` (its nested
        extractor and its window settings) or from an encoder checkpoint's plain extractor (no windows)."""
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if kwargs.get(key) is not None}
        extractor_dict, kwargs = super().get_feature_extractor_dict(pretrained_model_name_or_path, **kwargs)
        if extractor_dict.get("feature_extractor_type") == cls.__name__:
            return extractor_dict, kwargs
        settings = {"window_seconds": None, "hop_seconds": None, "normalize": False}  # so that keywords override them
        settings.update(_processor_settings(pretrained_model_name_or_path, hub_kwargs))
        return {"feature_extractor": extractor_dict, **settings}, kwargs

    # -- preprocessing ----------------------------------------------------------------------------------------------

    @property
    def sampling_rate(self) -> int:
        """The rate every clip is resampled to: the feature extractor's."""
        return int(self.feature_extractor.sampling_rate)

    @property
    def window_samples(self) -> int | None:
        return None if self.window_seconds is None else int(round(self.window_seconds * self.sampling_rate))

    @property
    def hop_samples(self) -> int | None:
        return None if self.hop_seconds is None else int(round(self.hop_seconds * self.sampling_rate))

    def window_starts(self, num_samples: int) -> list[int]:
        """Where the evaluation windows of a clip of `num_samples` start: every `hop_samples` (back to back by
        default), the last aligned to the end, a clip no longer than a window one window (`audio.window_starts`, the
        rule the models' own long-input path cuts by too); `[0]` without `window_seconds`."""
        if self.window_samples is None:
            return [0]
        return window_starts(num_samples, self.window_samples, self.hop_samples)

    def windows(
        self, wave: torch.Tensor, random_crop: bool = False, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """The chunks of one decoded clip `(samples,)` that `featurize` gets, for every path (serving, evaluation,
        training, caches, probes): every evaluation window (`window_starts`), or with `random_crop` one window at a
        random start drawn from `generator` (training). A clip no longer than a window is one chunk of its own length,
        in training as in evaluation: the feature extractor pads it, and masks the padding where its family uses a
        mask. Without `window_seconds`, the whole clip."""
        window = self.window_samples
        if window is None:
            return [wave]
        if random_crop:
            return [cut_windows(wave, window, random_crop=True, generator=generator)[0][: wave.shape[0]]]
        return [wave[start : start + window] for start in self.window_starts(wave.shape[0])]

    def load(self, audio: Any, sampling_rate: int | None = None) -> list[torch.Tensor]:
        """Decode one clip or a list of clips to mono float32 waveforms at `self.sampling_rate` (peak-normalised when
        `normalize` is set). `sampling_rate` is the rate of raw arrays given without one."""
        sources = [audio] if _is_single_source(audio) else list(audio)
        waves = []
        for source in sources:
            wave = load_audio(_one_clip(source, sampling_rate), self.sampling_rate)
            waves.append(peak_normalize(wave) if self.normalize else wave)
        if not waves:
            raise ValueError("No audio given")
        return waves

    def iter_windows(self, audio: Any, sampling_rate: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """`(start_sample, samples)` of every evaluation window of one clip, exactly the windows `__call__` featurises
        (`load` + `window_starts`), but read block by block from paths and encoded bytes (`audio_stream`), so that a
        long track is held one window at a time. Without `window_seconds`, the whole clip is the one window."""
        audio = _one_clip(audio, sampling_rate)
        if self.window_samples is None:
            yield 0, self.load(audio)[0]
            return
        yield from iter_windows(audio, self.sampling_rate, self.window_samples, self.hop_samples, self.normalize)

    def __call__(
        self,
        audio: Any,
        sampling_rate: int | None = None,
        random_crop: bool = False,
        generator: torch.Generator | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Preprocess audio for an audiocap model (or its encoder).

        Args:
            audio: one clip or a list of clips: file paths, `datasets` Audio values, `(array, rate)` pairs, or raw
                1-D arrays at `sampling_rate` (a 2-D array is a batch of equal-length clips).
            sampling_rate: the rate of raw arrays (files and datasets values carry their own).
            random_crop: with `window_seconds` set, take one random window per clip (training) instead of every
                window (evaluation).
            generator: `torch.Generator` for reproducible random crops.
            return_tensors: `"pt"` or `"np"`.

        Returns:
            `BatchFeature` with the encoder's inputs (`input_values` / `input_features`, `attention_mask` when the
            family uses one, CLAP's `is_longer`) and, when every window of each clip is taken, `window_clip_index`
            `(windows,)`: the clip each window (row) comes from. Pop it before calling the model and average
            per-window outputs with `average_windows(outputs, window_clip_index)`.
        """
        data = self.clip_features(self.load(audio, sampling_rate), random_crop, generator, return_tensors)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def clip_features(
        self,
        waves: list[torch.Tensor],
        random_crop: bool = False,
        generator: torch.Generator | None = None,
        return_tensors: str | None = "pt",
    ) -> dict[str, Any]:
        """`__call__` for clips already `load`ed: their windows' features (and `window_clip_index`)."""
        chunks, clip_index = self._windows(waves, random_crop, generator)
        data = dict(self.featurize(chunks, return_tensors))
        if clip_index is not None:
            data["window_clip_index"] = np.asarray(clip_index, dtype=np.int64)
        return data

    def _windows(
        self, waves: list[torch.Tensor], random_crop: bool, generator: torch.Generator | None
    ) -> tuple[list[torch.Tensor], list[int] | None]:
        """Clips -> the chunks to featurise (unpadded: the feature extractor pads its own way) and, for evaluation
        windows, the clip index of each chunk."""
        if self.window_samples is None:
            return waves, None
        chunks, clip_index = [], []
        for i, wave in enumerate(waves):
            windows = self.windows(wave, random_crop, generator)
            chunks.extend(windows)
            clip_index.extend([i] * len(windows))
        return chunks, (None if random_crop else clip_index)

    def featurize(self, chunks: list[torch.Tensor | np.ndarray], return_tensors: str | None = "pt") -> dict[str, Any]:
        """The encoder's features for clips already decoded at its rate (no windowing, no normalisation)."""
        extractor = self.feature_extractor
        arrays = [np.asarray(chunk, dtype=np.float32) for chunk in chunks]
        limit = self._max_input_samples()
        if limit is not None and max(a.shape[0] for a in arrays) > limit:
            logger.warning(
                "%s keeps at most %.1f s of audio; longer clips are cut by it. Set window_seconds to cover them.",
                type(extractor).__name__, limit / self.sampling_rate,
            )
        kwargs = feature_extractor_family(extractor).featurize_kwargs(extractor)
        return dict(extractor(arrays, sampling_rate=self.sampling_rate, return_tensors=return_tensors, **kwargs))

    def _max_input_samples(self) -> int | None:
        """How much audio a fixed-length spectrogram extractor keeps (it silently cuts the rest)."""
        return feature_extractor_family(self.feature_extractor).max_input_samples(self.feature_extractor)

    @property
    def model_input_names(self) -> list[str]:
        return list(self.feature_extractor.model_input_names)


class AudioCapProcessor(ProcessorMixin):
    r"""
    Preprocessing of an audiocap captioner, as `Wav2Vec2Processor` is a speech recogniser's: its audio side (the
    encoder's feature extractor and audiocap's settings, as `AudioCapFeatureExtractor`, `.audio`) and its tokenizer.

    Args:
        feature_extractor (`FeatureExtractionMixin`): the audio encoder's feature extractor; its `sampling_rate` is
            the rate every clip is resampled to.
        tokenizer (`PreTrainedTokenizerBase`): the captioner's tokenizer; `text=` becomes `labels`.
        window_seconds (`float`, *optional*): cut clips into windows of this length (`None`: whole clips).
        hop_seconds (`float`, *optional*): hop between evaluation windows (`None`: back-to-back windows). Must not
            exceed `window_seconds`.
        normalize (`bool`): peak-normalise each clip (before windowing) to a peak of 1.
    """

    def __init__(
        self,
        feature_extractor,
        tokenizer: PreTrainedTokenizerBase | None = None,
        window_seconds: float | None = None,
        hop_seconds: float | None = None,
        normalize: bool = False,
    ):
        super().__init__(feature_extractor)
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError(
                f"AudioCapProcessor needs the captioner's tokenizer, got {type(tokenizer).__name__}; audio alone is "
                "preprocessed by AudioCapFeatureExtractor"
            )
        check_windows(window_seconds, hop_seconds)
        self.tokenizer = tokenizer
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.normalize = bool(normalize)

    # -- ProcessorMixin plumbing: the feature extractor is the only sub-processor it manages (see module doc) --------

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["feature_extractor"]

    def to_dict(self) -> dict[str, Any]:
        # The tokenizer is saved with its own files, never inside processor_config.json.
        tokenizer = self.__dict__.pop("tokenizer", None)
        try:
            return super().to_dict()
        finally:
            self.tokenizer = tokenizer

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs) -> list[str]:
        """Write `processor_config.json` (feature extractor + settings), the tokenizer's files and,
        once `register_for_auto_class()` was called, this file and `audio.py` for `trust_remote_code` loading."""
        save_directory = os.fspath(save_directory)
        os.makedirs(save_directory, exist_ok=True)
        if push_to_hub:
            commit_message = kwargs.pop("commit_message", None)
            repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            from huggingface_hub import create_repo

            token = kwargs.get("token")
            repo_id = create_repo(repo_id, exist_ok=True, token=token, private=kwargs.get("private")).repo_id
            files_timestamps = self._get_files_timestamps(save_directory)
        files = list(super().save_pretrained(save_directory))
        self.tokenizer._set_processor_class(self.__class__.__name__)
        files += list(self.tokenizer.save_pretrained(save_directory))
        if push_to_hub:
            self._upload_modified_files(
                save_directory, repo_id, files_timestamps, commit_message=commit_message, token=kwargs.get("token")
            )
        return files

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "AudioCapProcessor":
        """Load from a saved captioner's directory or Hub id, or build one around an encoder checkpoint with only a
        `preprocessor_config.json` and `tokenizer=`.

        Settings saved with the processor (`window_seconds`, `hop_seconds`, `normalize`) are restored and can be
        overridden by keyword. The tokenizer is the one saved by this processor, or `tokenizer=` (an instance, or a
        name / path to load with `AutoTokenizer`); without either it is an error.
        """
        tokenizer = kwargs.pop("tokenizer", None)
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if kwargs.get(key) is not None}
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer))
        elif tokenizer is None:
            tokenizer = cls._load_saved_tokenizer(pretrained_model_name_or_path, **hub_kwargs)
        if tokenizer is None:
            raise ValueError(
                f"{os.fspath(pretrained_model_name_or_path)} has no captioner's tokenizer: pass tokenizer= (an "
                "instance or a name), or load a genre model's or an encoder's audio preprocessing with "
                "AudioCapFeatureExtractor.from_pretrained"
            )
        return super().from_pretrained(pretrained_model_name_or_path, tokenizer=tokenizer, **kwargs)

    @classmethod
    def _load_saved_tokenizer(cls, pretrained_model_name_or_path, **hub_kwargs) -> PreTrainedTokenizerBase | None:
        """The tokenizer saved by an `AudioCapProcessor` in this directory / repo, or None."""
        saved = _saved_json(pretrained_model_name_or_path, TOKENIZER_CONFIG_FILE, hub_kwargs)
        if saved is None or saved.get("processor_class") != cls.__name__:
            return None  # no tokenizer, or an encoder checkpoint's own, not the captioner's
        return AutoTokenizer.from_pretrained(os.fspath(pretrained_model_name_or_path), **hub_kwargs)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def pad_token_id(self) -> int | None:
        """The tokenizer's padding id (what `Seq2SeqTrainer` pads generated captions with)."""
        return self.tokenizer.pad_token_id

    # -- audio: the processor's `AudioCapFeatureExtractor` ---------------------------------------------------------

    @property
    def audio(self) -> AudioCapFeatureExtractor:
        """The audio side: an `AudioCapFeatureExtractor` with this processor's extractor and window settings."""
        return AudioCapFeatureExtractor(
            self.feature_extractor, window_seconds=self.window_seconds, hop_seconds=self.hop_seconds,
            normalize=self.normalize,
        )

    @property
    def sampling_rate(self) -> int:
        return self.audio.sampling_rate

    @property
    def window_samples(self) -> int | None:
        return self.audio.window_samples

    @property
    def hop_samples(self) -> int | None:
        return self.audio.hop_samples

    def window_starts(self, num_samples: int) -> list[int]:
        return self.audio.window_starts(num_samples)

    def windows(
        self, wave: torch.Tensor, random_crop: bool = False, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        return self.audio.windows(wave, random_crop, generator)

    def load(self, audio: Any, sampling_rate: int | None = None) -> list[torch.Tensor]:
        return self.audio.load(audio, sampling_rate)

    def iter_windows(self, audio: Any, sampling_rate: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        return self.audio.iter_windows(audio, sampling_rate)

    def featurize(self, chunks: list[torch.Tensor | np.ndarray], return_tensors: str | None = "pt") -> dict[str, Any]:
        return self.audio.featurize(chunks, return_tensors)

    def __call__(
        self,
        audio: Any = None,
        text: str | list[str] | None = None,
        sampling_rate: int | None = None,
        random_crop: bool = False,
        generator: torch.Generator | None = None,
        return_tensors: str | None = "pt",
        max_length: int | None = None,
    ) -> BatchFeature:
        """The audio's features as `AudioCapFeatureExtractor.__call__` makes them (`sampling_rate`, `random_crop`,
        `generator`, `return_tensors` as there) and, for `text=` (a caption or one per clip), `labels`: the
        tokens, cut to `max_length`, padding set to -100."""
        if audio is None and text is None:
            raise ValueError("Pass audio= and/or text=")
        data: dict[str, Any] = {}
        num_clips = None
        if audio is not None:
            waves = self.load(audio, sampling_rate)
            num_clips = len(waves)
            data.update(self.audio.clip_features(waves, random_crop, generator, return_tensors))
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if num_clips is not None and len(texts) != num_clips:
                raise ValueError(f"Got {len(texts)} captions for {num_clips} clips")
            data["labels"] = self._labels(texts, max_length)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _labels(self, texts: list[str], max_length: int | None) -> np.ndarray:
        encoded = self.tokenizer(
            texts, padding=True, truncation=max_length is not None, max_length=max_length, return_tensors="np"
        )
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        return np.where(mask.astype(bool), ids, -100).astype(np.int64)

    @property
    def model_input_names(self) -> list[str]:
        return list(self.feature_extractor.model_input_names)


__all__ = ["AudioCapFeatureExtractor", "AudioCapProcessor", "average_windows", "check_windows"]
