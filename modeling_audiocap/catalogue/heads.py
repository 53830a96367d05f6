"""The models a catalogue run applies, as heads: how each reads a track (a saved model's processor's windows, or only
the first window for a captioner, as its pipeline does; a plain encoder's windows), what it computes on a batch of
windows, and the columns it adds to a track's row."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..embedding.engine import StreamHead, Track, min_input_samples
from ..embedding.runtime import LayerEmbedder, load_encoder, resolve_layers
from ..modeling_audiocap import AudioEncoderForGenreClassification, AudioEncoderT5ForCaptioning
from ..configuration_audiocap import score_function
from ..pipelines import clip_scores, windowed_by_config
from ..processing_audiocap import AudioCapFeatureExtractor, AudioCapProcessor, average_windows
from ..saved import audiocap_model_type


class Head:
    """One model of a catalogue run. `key` prefixes its columns; `settings` is what the run's plan records of it."""

    kind = ""

    def __init__(self, key: str, name: str, model: torch.nn.Module, audio: AudioCapFeatureExtractor,
                 min_samples: int, first_window_only: bool = False):
        self.key = key
        self.name = name
        self.model = model.eval()
        self.audio = audio
        self.stream = StreamHead(audio, min_samples, first_window_only)
        self.device = torch.device("cpu")

    @property
    def settings(self) -> dict[str, Any]:
        audio = self.audio
        return {"key": self.key, "model": self.name, "kind": self.kind, "sampling_rate": audio.sampling_rate,
                "window_seconds": audio.window_seconds, "hop_seconds": audio.hop_seconds, "normalize": audio.normalize}

    def to(self, device: torch.device) -> Head:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def close(self) -> None:
        """Undo what `to` prepared for the run (nothing, for most heads)."""

    def inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: value.to(self.device) for name, value in batch.items()}

    def features(self) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        raise NotImplementedError

    def columns(self, tracks: list[Track], head: int) -> dict[str, list]:
        raise NotImplementedError


class GenreHead(Head):
    """A clip classifier: every window's logits; per track the scores of their mean as its pipeline gives them (by
    its `problem_type`: softmax and the best label for one genre per clip, a sigmoid per tag and the tags scoring at
    least 0.5 for a tagger, the values for a regressor), and on request each window's scores and the mean of the
    windows' pooled embeddings."""

    kind = "genre"

    def __init__(self, key: str, name: str, model: AudioEncoderForGenreClassification, audio: AudioCapFeatureExtractor,
                 window_scores: bool = False, embeddings: bool = False):
        super().__init__(key, name, model, audio, min_input_samples(model.encoder, model.config.encoder))
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.function = score_function(model.config)
        self.window_scores = window_scores
        self.embeddings = embeddings

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "labels": self.labels, "scores": self.function,
                "window_scores": self.window_scores, "embeddings": self.embeddings}

    def features(self) -> dict[str, Any]:
        import datasets

        scores = datasets.List(datasets.Value("float32"))
        label = datasets.ClassLabel(names=self.labels)
        if self.function == "softmax":
            features = {f"{self.key}_label": label, f"{self.key}_scores": scores}
        elif self.function == "sigmoid":
            features = {f"{self.key}_tags": datasets.List(label), f"{self.key}_scores": scores}
        else:
            features = {f"{self.key}_values": scores}
        if self.window_scores:
            features[f"{self.key}_window_scores"] = datasets.List(scores)
        if self.embeddings:
            features[f"{self.key}_embedding"] = datasets.List(datasets.Value("float32"))
        return features

    @torch.inference_mode()
    def __call__(self, batch: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        out = self.model(**self.inputs(batch))
        values = [out.logits.float()]
        if self.embeddings:
            values.append(out.embeddings.float())
        return list(torch.cat(values, dim=-1).cpu())  # per window: its logits, then its embedding

    def columns(self, tracks: list[Track], head: int) -> dict[str, list]:
        num_labels = len(self.labels)
        columns: dict[str, list] = {name: [] for name in self.features()}
        for track in tracks:
            values = torch.from_numpy(np.stack(track.head_results(head)))
            logits = values[:, :num_labels]
            clip = average_windows(logits, torch.zeros(logits.shape[0], dtype=torch.long), num_clips=1)[0]
            scores = clip_scores(clip, self.function)
            if self.function == "softmax":
                columns[f"{self.key}_label"].append(int(scores.argmax()))
            elif self.function == "sigmoid":
                columns[f"{self.key}_tags"].append([i for i, score in enumerate(scores.tolist()) if score >= 0.5])
            columns[f"{self.key}_values" if self.function == "none" else f"{self.key}_scores"].append(scores.tolist())
            if self.window_scores:
                columns[f"{self.key}_window_scores"].append(clip_scores(logits, self.function).tolist())
            if self.embeddings:
                columns[f"{self.key}_embedding"].append(values[:, num_labels:].mean(0).tolist())
        return columns


# The generation settings that decide a caption, as a run records them.
DECODING = (
    "max_new_tokens", "min_new_tokens", "max_length", "num_beams", "early_stopping", "length_penalty", "do_sample",
    "temperature", "top_k", "top_p", "repetition_penalty", "no_repeat_ngram_size", "suppress_tokens", "bad_words_ids",
)


class CaptionHead(Head):
    """A captioner: its first window (the start of the track, as its pipeline captions it) through `generate` with
    the model's saved generation settings, updated by `generation`."""

    kind = "caption"

    def __init__(self, key: str, name: str, model: AudioEncoderT5ForCaptioning, processor: AudioCapProcessor,
                 generation: dict | None = None):
        audio = windowed_by_config(processor.audio, model.config)
        super().__init__(key, name, model, audio, min_input_samples(model.encoder, model.config.encoder), True)
        self.tokenizer = processor.tokenizer
        self.generation = dict(generation or {})

    @property
    def settings(self) -> dict[str, Any]:
        """With the decoding settings used (the model's saved ones, updated by `generation`)."""
        config = {**self.model.generation_config.to_dict(), **self.generation}
        return {**super().settings, "generation": {k: config[k] for k in DECODING if config.get(k) is not None}}

    def features(self) -> dict[str, Any]:
        import datasets

        return {f"{self.key}_caption": datasets.Value("string")}

    @torch.inference_mode()
    def __call__(self, batch: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        return list(self.model.generate(**self.inputs(batch), **self.generation).cpu())

    def columns(self, tracks: list[Track], head: int) -> dict[str, list]:
        ids = [track.head_results(head)[0] for track in tracks]
        return {f"{self.key}_caption": [
            text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        ]}


class EmbeddingHead(Head):
    """A pretrained encoder (anything `audiocap-embed` takes): every window through the extraction engine's
    `LayerEmbedder` (mean-pooled frames of each asked layer); per track the mean over its windows, `(layers, width)`,
    the windows' embeddings `audiocap-embed` writes averaged."""

    kind = "embedding"

    def __init__(self, key: str, name: str, encoder, window_seconds: float | None = None, layers="-1"):
        loaded = load_encoder(encoder)
        window = window_seconds or float(loaded.family.default_window_seconds(loaded.config))
        audio = AudioCapFeatureExtractor(loaded.feature_extractor, window_seconds=window, normalize=loaded.normalize)
        super().__init__(key, name, loaded.model, audio, min_input_samples(loaded.model, loaded.config))
        self.loaded = loaded
        self.layers = resolve_layers(layers, loaded.num_layers)
        self.embedder: LayerEmbedder | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "layers": self.layers}

    def to(self, device: torch.device) -> Head:
        self.device = torch.device(device)
        self.embedder = LayerEmbedder(self.loaded, self.layers, "mean", self.device).__enter__()  # for the whole run
        return self

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.__exit__(None, None, None)
            self.embedder = None

    def features(self) -> dict[str, Any]:
        import datasets

        return {f"{self.key}_embedding": datasets.List(datasets.List(datasets.Value("float32")))}

    def __call__(self, batch: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        return list(self.embedder(batch))  # per window: (layers, width)

    def columns(self, tracks: list[Track], head: int) -> dict[str, list]:
        return {f"{self.key}_embedding": [np.stack(track.head_results(head)).mean(0).tolist() for track in tracks]}


def column_key(name: str, taken: set[str]) -> str:
    """A column prefix for a model: its folder's (or repo's) name, made unique."""
    base = re.sub(r"\W+", "_", os.path.basename(os.path.normpath(name))).strip("_") or "model"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


def load_heads(models: Sequence[str], window_scores: bool = False, embeddings: bool = False,
               generation: dict | None = None, window_seconds: float | None = None, layers="-1",
               **hub_kwargs) -> list[Head]:
    """A head per model: a saved audiocap genre model or captioner (a folder or Hub id) with its saved preprocessing,
    or any encoder `audiocap-embed` takes (`window_seconds`: its windows, the family's default when None; `layers`:
    the hidden states it gives, the top one by default)."""
    heads: list[Head] = []
    taken: set[str] = set()
    for name in models:
        name = os.path.abspath(name) if os.path.isdir(name) else os.fspath(name)
        model_type = audiocap_model_type(name, **hub_kwargs)
        key = column_key(name, taken)
        if model_type == "audiocap_genre":
            model = AudioEncoderForGenreClassification.from_pretrained(name, **hub_kwargs)
            audio = windowed_by_config(AudioCapFeatureExtractor.from_pretrained(name, **hub_kwargs), model.config)
            heads.append(GenreHead(key, name, model, audio, window_scores, embeddings))
        elif model_type == "audiocap_caption":
            model = AudioEncoderT5ForCaptioning.from_pretrained(name, **hub_kwargs)
            heads.append(CaptionHead(key, name, model, AudioCapProcessor.from_pretrained(name, **hub_kwargs), generation))
        else:
            try:
                heads.append(EmbeddingHead(key, name, name, window_seconds, layers))
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"{name} is neither a saved audiocap genre model or captioner nor an encoder audiocap can load "
                    f"({error})"
                ) from error
    if not heads:
        raise ValueError("Give at least one model")
    return heads


__all__ = ["CaptionHead", "EmbeddingHead", "GenreHead", "Head", "column_key", "load_heads"]
