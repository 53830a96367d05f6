"""audiocap's models: an audio encoder under a genre classifier or a T5 captioner.

Shapes: `B` batch, `L` hidden-state layers, `T` frames, `D` encoder width, `N` samples.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedModel, T5ForConditionalGeneration
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .audio import window_starts
from .configuration_audiocap import AudioCaptionConfig, AudioGenreConfig
from .encoders import resolve_encoder
from .modeling_encoders import build_encoder, encode_layers, is_waveform_encoder, layer_width, num_layers
from .pipelines import register_audio_classification
from .processing_audiocap import average_windows


class LayerWeighting(nn.Conv1d):
    """Learnable weighting of an encoder's layers: a Conv1d with the layer axis as channels and kernel 1.

    Input `(B, L, T, D)`, output `(B, T, D)`: out[b, t, d] = sum_l w[l] * h[b, l, t, d] + bias. Each clip is
    weighted on its own (the layer axis is never confused with the batch axis).
    """

    def __init__(self, num_layers: int):
        super().__init__(num_layers, 1, kernel_size=1)
        self.num_layers = num_layers

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, layers, frames, width = hidden_states.shape
        if layers != self.num_layers:
            raise ValueError(f"LayerWeighting expects {self.num_layers} layers on dim 1, got shape {tuple(hidden_states.shape)}")
        mixed = super().forward(hidden_states.reshape(batch, layers, frames * width))  # (B, 1, T * D)
        return mixed.reshape(batch, frames, width)


def mean_pool(hidden_states: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over valid frames: `(..., T, D)` with mask `(B, T)` -> `(..., D)`; all frames when mask is None."""
    if frame_mask is None:
        return hidden_states.mean(dim=-2)
    mask = frame_mask.to(hidden_states.dtype)
    while mask.dim() < hidden_states.dim() - 1:  # (B, T) -> (B, 1, ..., T)
        mask = mask.unsqueeze(1)
    summed = (hidden_states * mask.unsqueeze(-1)).sum(dim=-2)
    return summed / mask.sum(dim=-1, keepdim=True).clamp(min=1.0)


class AttentionPooling(nn.Module):
    """Softmax attention over valid frames with a learned scoring vector: `(B, T, D)` -> `(B, D)`."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1)

    def forward(self, hidden_states: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        scores = self.score(hidden_states).squeeze(-1)  # (B, T)
        if frame_mask is not None:
            scores = scores.masked_fill(~frame_mask.bool(), torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        return torch.einsum("bt,btd->bd", weights, hidden_states)


class HeadBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a one-row training batch with its running statistics, where batch statistics do
    not exist: a training split whose last batch holds a single clip trains instead of failing."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.training and hidden.shape[0] == 1:
            return nn.functional.batch_norm(hidden, self.running_mean, self.running_var, self.weight, self.bias,
                                            training=False, eps=self.eps)
        return super().forward(hidden)


class GenreHead(nn.Sequential):
    """The reference head: Linear(D -> H), ReLU, BatchNorm, Dropout, Linear(H -> labels); with `hidden=0` a linear
    probe, Linear(D -> labels)."""

    def __init__(self, width: int, hidden: int, num_labels: int, dropout: float):
        if hidden == 0:
            super().__init__(nn.Linear(width, num_labels))
            return
        super().__init__(
            nn.Linear(width, hidden), nn.ReLU(), HeadBatchNorm(hidden), nn.Dropout(dropout), nn.Linear(hidden, num_labels)
        )


def reduce_time(hidden_states: torch.Tensor, frame_mask: torch.Tensor | None, stride: int):
    """Masked average of non-overlapping groups of `stride` frames: `(B, T, D)` -> `(B, ceil(T / stride), D)`."""
    batch, frames, width = hidden_states.shape
    if frame_mask is None:
        frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=hidden_states.device)
    pad = (-frames) % stride
    mask = nn.functional.pad(frame_mask.to(hidden_states.dtype), (0, pad))
    hidden = nn.functional.pad(hidden_states, (0, 0, 0, pad)) * mask.unsqueeze(-1)
    groups = (frames + pad) // stride
    counts = mask.reshape(batch, groups, stride).sum(-1)
    reduced = hidden.reshape(batch, groups, stride, width).sum(2) / counts.clamp(min=1.0).unsqueeze(-1)
    return reduced, counts > 0


@dataclass
class GenreClassifierOutput(ModelOutput):
    """Output of [`AudioEncoderForGenreClassification`].

    Args:
        loss: cross-entropy, when labels are given.
        logits: `(B, num_labels)`, averaged over windows for long inputs.
        embeddings: the pooled, layer-weighted embedding fed to the head, `(B, D)` (averaged over windows).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None


class AudioCapPreTrainedModel(PreTrainedModel):
    """Shared loading, initialisation and freezing of audiocap models."""

    base_model_prefix = "audiocap"
    main_input_name = "input_values"
    # Losses are means over the batch: the Trainer must not pass `num_items_in_batch`, which `**extra` would hand to
    # the encoder (CLAP's rejects it).
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, LayerWeighting):
            init.constant_(module.weight, 1.0 / module.num_layers)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def freeze_encoder(self) -> None:
        """Keep every encoder weight fixed (frozen mode)."""
        self.encoder.requires_grad_(False)

    def freeze_feature_encoder(self) -> None:
        """Keep only the convolutional feature encoder of a waveform encoder fixed."""
        if hasattr(self.encoder, "freeze_feature_encoder"):
            self.encoder.freeze_feature_encoder()
        elif hasattr(getattr(self.encoder, "feature_extractor", None), "_freeze_parameters"):  # HuBERT, MERT
            self.encoder.feature_extractor._freeze_parameters()
        else:
            raise ValueError(f"{type(self.encoder).__name__} has no convolutional feature encoder to freeze")

    def _encoder_inputs(self, input_values, input_features):
        inputs = input_values if input_values is not None else input_features
        if inputs is None:
            raise ValueError("Pass input_values (waveform or AST features) or input_features (Whisper, CLAP)")
        return inputs


class AudioEncoderForGenreClassification(AudioCapPreTrainedModel):
    """Audio encoder -> layer weighting -> pooling -> MLP head.

    Inputs: `input_values` `(B, N)` waveforms (or the encoder's features, `input_features` for Whisper and CLAP),
    an optional `attention_mask`, optional `labels` `(B,)`. Waveforms longer than `config.window_seconds` are cut
    into windows and the logits are averaged over the windows of each clip. `layer_embeddings` `(B, L, D)`
    (per-layer mean-pooled embeddings from the embedding cache) replace the encoder pass in frozen training.

    The config records `pipelines.AudioGenreClassificationPipeline` as the model's `audio-classification` pipeline
    and `save_pretrained` ships that file with the model's code, so a saved model is served through the training
    path (`load_audio`, its `AudioCapProcessor`, every evaluation window).
    """

    config_class = AudioGenreConfig

    def __init__(self, config: AudioGenreConfig):
        super().__init__(config)
        register_audio_classification(self)
        width = layer_width(config.encoder, config.clap_output)
        self.encoder = build_encoder(config.encoder)
        self.layer_weighting = LayerWeighting(num_layers(config.encoder)) if config.use_layer_weighting else None
        self.attention_pooling = AttentionPooling(width) if config.pooling == "attention" else None
        self.head = GenreHead(width, config.head_hidden_size, config.num_labels, config.head_dropout)
        self.post_init()

    @classmethod
    def from_encoder_pretrained(
        cls, encoder_name_or_path: str, id2label: dict[int, str], **config_kwargs
    ) -> "AudioEncoderForGenreClassification":
        """A classifier around a pretrained encoder (Hub id, local dir, or a short audiocap encoder name). Without
        `window_seconds`, the config's default window for the encoder family applies."""
        resolved = resolve_encoder(encoder_name_or_path)
        config_kwargs.setdefault("sampling_rate", resolved.sampling_rate)
        config = AudioGenreConfig(
            encoder=resolved.config, id2label=dict(id2label), label2id={v: k for k, v in id2label.items()}, **config_kwargs
        )
        model = cls(config)
        model.encoder = resolved.model
        return model

    def pool_layers(self, hidden_states: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """`(B, L, T, D)` -> pooled embedding `(B, D)`: layer weighting, then masked mean or attention pooling."""
        if self.attention_pooling is None:
            return self.weight_layers(mean_pool(hidden_states, frame_mask).unsqueeze(2)).squeeze(1)
        return self.attention_pooling(self.weight_layers(hidden_states), frame_mask)

    def weight_layers(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(B, L, T, D)` -> `(B, T, D)` with the learned weighting, or the last layer without one."""
        if self.layer_weighting is None:
            return hidden_states[:, -1]
        return self.layer_weighting(hidden_states)

    def layer_hidden_states(self, inputs: torch.Tensor, attention_mask=None, **extra):
        """The encoder's layer stack `(B, L, T, D)` and frame mask `(B, T)` (see `encode_layers`)."""
        return encode_layers(self.encoder, self.config.encoder, inputs, attention_mask, self.config.clap_output, **extra)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        layer_embeddings: torch.Tensor | None = None,
        **extra,
    ) -> GenreClassifierOutput:
        if layer_embeddings is not None:
            if self.attention_pooling is not None:
                raise ValueError("layer_embeddings are mean-pooled; attention pooling needs the encoder's frames")
            embeddings = self.weight_layers(layer_embeddings.unsqueeze(2)).squeeze(1)
        else:
            embeddings = self._embed(self._encoder_inputs(input_values, input_features), attention_mask, **extra)
        if isinstance(embeddings, tuple):  # windowed: per-window embeddings and the clip of each window
            window_embeddings, window_clip_index = embeddings
            num_clips = self._encoder_inputs(input_values, input_features).shape[0]
            logits = average_windows(self.head(window_embeddings), window_clip_index, num_clips)
            embeddings = average_windows(window_embeddings, window_clip_index, num_clips)
        else:
            logits = self.head(embeddings)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return GenreClassifierOutput(loss=loss, logits=logits, embeddings=embeddings)

    def _embed(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None, **extra):
        """Pooled embeddings `(B, D)`; for waveforms longer than `config.window_seconds`, `(window embeddings
        (windows, D), window_clip_index (windows,))`: each clip's valid samples (its `attention_mask`) cut as the
        processor cuts a clip (`window_starts`), to be averaged per clip (`average_windows`)."""
        window = None
        if self.config.window_seconds and is_waveform_encoder(self.config.encoder):
            window = int(round(self.config.window_seconds * self.config.sampling_rate))
        if window is None or inputs.shape[-1] <= window:
            return self.pool_layers(*self.layer_hidden_states(inputs, attention_mask, **extra))
        lengths = [inputs.shape[-1]] * inputs.shape[0] if attention_mask is None else attention_mask.sum(-1).tolist()
        cuts = [(clip, start) for clip, length in enumerate(lengths) for start in window_starts(int(length), window)]
        windows = torch.stack([inputs[clip, start : start + window] for clip, start in cuts])  # (windows, window)
        masks = None
        if attention_mask is not None:
            masks = torch.stack([attention_mask[clip, start : start + window] for clip, start in cuts])
        window_clip_index = torch.tensor([clip for clip, _ in cuts], device=inputs.device)
        return self.pool_layers(*self.layer_hidden_states(windows, masks, **extra)), window_clip_index


class AudioEncoderT5ForCaptioning(AudioCapPreTrainedModel):
    """Audio encoder -> layer weighting -> time reduction -> Linear(D -> d_model) -> T5.

    `forward(input_values, attention_mask, labels)` returns T5's seq2seq output (loss with labels);
    `generate(input_values, attention_mask, **generation_kwargs)` returns token ids from raw audio.
    """

    config_class = AudioCaptionConfig
    _keys_to_ignore_on_load_missing = [r"t5\.encoder\.embed_tokens\.weight", r"t5\.decoder\.embed_tokens\.weight"]

    def __init__(self, config: AudioCaptionConfig):
        super().__init__(config)
        self.encoder = build_encoder(config.encoder)
        self.layer_weighting = LayerWeighting(num_layers(config.encoder)) if config.use_layer_weighting else None
        self.projection = nn.Linear(layer_width(config.encoder, config.clap_output), config.text_config.d_model)
        self.t5 = T5ForConditionalGeneration(config.text_config)
        self.post_init()

    @classmethod
    def from_encoder_decoder_pretrained(
        cls, encoder_name_or_path: str, text_model_name_or_path: str, **config_kwargs
    ) -> "AudioEncoderT5ForCaptioning":
        """A captioner from a pretrained encoder and a pretrained T5 (Hub ids or local dirs)."""
        resolved = resolve_encoder(encoder_name_or_path)
        t5 = T5ForConditionalGeneration.from_pretrained(text_model_name_or_path)
        config_kwargs.setdefault("sampling_rate", resolved.sampling_rate)
        model = cls(AudioCaptionConfig(encoder=resolved.config, text_config=t5.config, **config_kwargs))
        model.encoder = resolved.model
        model.t5 = t5
        return model

    @classmethod
    def can_generate(cls) -> bool:
        """`generate()` delegates to T5; saying so makes `save_pretrained` write `generation_config.json`."""
        return True

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path, **kwargs):
        """Called by `from_pretrained`: restore the saved generation settings (beams, lengths, ...) into T5."""
        if generation_config is None:
            hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "local_files_only", "revision", "token") if k in kwargs}
            try:
                generation_config = GenerationConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
            except OSError:
                return
        self.generation_config = generation_config

    @property
    def generation_config(self):
        return self.t5.generation_config

    @generation_config.setter
    def generation_config(self, value) -> None:
        if "t5" in self._modules:
            self.t5.generation_config = value

    def encode_audio(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None, **extra):
        """Audio -> `(BaseModelOutput with (B, T', d_model), mask (B, T'))` ready for T5's decoder."""
        hidden, frame_mask = encode_layers(
            self.encoder, self.config.encoder, inputs, attention_mask, self.config.clap_output, **extra
        )
        hidden = hidden[:, -1] if self.layer_weighting is None else self.layer_weighting(hidden)
        reduced, reduced_mask = reduce_time(hidden, frame_mask, self.config.time_reduction_stride)
        embeds = self.projection(reduced)
        mask = reduced_mask.long()
        if self.config.connector == "t5_encoder":
            return self.t5.encoder(inputs_embeds=embeds, attention_mask=mask), mask
        return BaseModelOutput(last_hidden_state=embeds), mask

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        **extra,
    ):
        encoder_outputs, mask = self.encode_audio(self._encoder_inputs(input_values, input_features), attention_mask, **extra)
        return self.t5(
            encoder_outputs=encoder_outputs,
            attention_mask=mask,
            labels=labels,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
        )

    @torch.no_grad()
    def generate(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        **generation_kwargs,
    ) -> torch.Tensor:
        """Caption token ids `(B, length)` from audio; `generation_kwargs` go to T5's `generate`."""
        extra = {k: generation_kwargs.pop(k) for k in ("is_longer",) if k in generation_kwargs}
        encoder_outputs, mask = self.encode_audio(self._encoder_inputs(input_values, input_features), attention_mask, **extra)
        return self.t5.generate(encoder_outputs=encoder_outputs, attention_mask=mask, **generation_kwargs)
