"""audiocap's models: an audio encoder under a genre classifier or a T5 captioner.

Shapes: `B` batch, `L` hidden-state layers, `T` frames, `D` encoder width, `N` samples.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedModel, T5ForConditionalGeneration
from transformers import initialization as init
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.utils import ModelOutput, can_return_tuple

from .audio import window_starts
from .configuration_audiocap import AudioCaptionConfig, AudioGenreConfig
from .encoders import ResolvedEncoder, resolve_encoder
from .encoder_families import EncoderFamily, encoder_family
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


class AttentivePooling(nn.Module):
    """Softmax attention over valid frames with a learned scoring vector: `(B, T, D)` -> `(B, D)`.

    (Not named `*Attention*`: transformers reads such a class as an attention layer that cannot switch implementation.)
    """

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
        loss: cross-entropy, when labels are given, plus the encoder's `auxiliary_loss` when it has one.
        logits: `(B, num_labels)`, averaged over windows for long inputs.
        embeddings: the pooled, layer-weighted embedding fed to the head, `(B, D)` (averaged over windows).
        hidden_states: with `output_hidden_states`, the encoder's own hidden states (one `(B, T, D)` per layer for
            transformer encoders); per window `(windows, T, D)` when the input was cut into windows.
        attentions: with `output_attentions`, the encoder's attention weights (per window likewise).
        auxiliary_loss: a training loss of the encoder's own, weighted by the encoder's config (the auto-encoder's
            reconstruction error, `reconstruction_loss_weight`), over all windows; none from cached embeddings (frozen
            mode, where the encoder does not train).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    auxiliary_loss: torch.Tensor | None = None


class AudioCapPreTrainedModel(PreTrainedModel):
    """Shared loading, initialisation and freezing of audiocap models."""

    # The audio encoder is the base model: `model.base_model` is it, and a bare encoder checkpoint loads into it.
    base_model_prefix = "encoder"
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
        freeze = encoder_family(self.config.encoder).freeze_feature_encoder
        if freeze is None:
            raise ValueError(f"{type(self.encoder).__name__} has no convolutional feature encoder to freeze")
        freeze(self.encoder)

    def _encoder_inputs(self, input_values, input_features):
        inputs = input_values if input_values is not None else input_features
        if inputs is None:
            raise ValueError("Pass input_values (waveform or AST features) or input_features (Whisper, CLAP)")
        return inputs

    def _output_flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> dict[str, bool]:
        """A forward call's output flags, the config's where the call leaves one unset."""
        return {
            "output_attentions": self.config.output_attentions if output_attentions is None else output_attentions,
            "output_hidden_states": (
                self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
            ),
        }

    def _encode(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        """`encode_layers` of the encoder's family on this model's encoder: `(B, L, T, D)`, `(B, T)` mask, encoder
        output."""
        return self.family.encode_layers(self.encoder, inputs, attention_mask, **kwargs)

    @property
    def family(self) -> EncoderFamily:
        """The record of this model's encoder (and, for CLAP, of the output its config names)."""
        return encoder_family(self.config.encoder, output=self.config.clap_output)


def _checked_part(module: PreTrainedModel, config) -> PreTrainedModel:
    """A given sub-model, which must be of the family its config names (the composite config holds its config)."""
    if module.config.model_type != config.model_type:
        raise ValueError(
            f"the config describes a {config.model_type!r} sub-model, but a {module.config.model_type!r} model was given"
        )
    return module


def clip_loss(config: AudioGenreConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss of clip logits `(B, num_labels)` by the config's `problem_type`, as transformers' sequence classifiers
    compute it (and infer it when unset): cross-entropy of class indices `(B,)` (single label), binary cross-entropy
    of multi-hot targets `(B, num_labels)` (tagging), squared error of real targets `(B, num_labels)` (regression;
    on the standardised scale when the config holds the targets' `target_std`)."""
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    if problem == "regression":
        scale = 1.0 if config.target_std is None else logits.new_tensor(config.target_std)
        return nn.functional.mse_loss(logits / scale, labels.to(logits.dtype).reshape(logits.shape) / scale)
    if problem == "multi_label_classification":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return nn.functional.cross_entropy(logits, labels)


class AudioEncoderForGenreClassification(AudioCapPreTrainedModel):
    """Audio encoder -> layer weighting -> pooling -> MLP head.

    Inputs: `input_values` `(B, N)` waveforms (or the encoder's features, `input_features` for Whisper and CLAP),
    an optional `attention_mask`, optional `labels` `(B,)`. Waveforms longer than `config.window_seconds` are cut
    into windows and the logits are averaged over the windows of each clip. `layer_embeddings` `(B, L, D)`
    (per-layer mean-pooled embeddings from the embedding cache) replace the encoder pass in frozen training.
    `output_hidden_states` / `output_attentions` add the encoder's own; `return_dict=False` gives a tuple.

    The config records `pipelines.AudioGenreClassificationPipeline` as the model's `audio-classification` pipeline
    and `save_pretrained` ships that file with the model's code, so a saved model is served through the training
    path (`load_audio`, its `AudioCapFeatureExtractor`, every evaluation window).
    """

    config_class = AudioGenreConfig

    def __init__(self, config: AudioGenreConfig, encoder: PreTrainedModel | None = None):
        """`encoder`: the encoder module to use as is (pretrained weights kept); built from `config.encoder` with
        random weights when None."""
        super().__init__(config)
        register_audio_classification(self)
        family = self.family
        width = family.layer_width(config.encoder)
        self.layer_weighting = LayerWeighting(family.num_layers(config.encoder)) if config.use_layer_weighting else None
        self.attention_pooling = AttentivePooling(width) if config.pooling == "attention" else None
        self.head = GenreHead(width, config.head_hidden_size, config.num_labels, config.head_dropout)
        self.encoder = family.build_encoder(config.encoder) if encoder is None else _checked_part(encoder, config.encoder)
        self.post_init()

    @classmethod
    def from_encoder_pretrained(
        cls, encoder: "str | ResolvedEncoder", id2label: dict[int, str], **config_kwargs
    ) -> "AudioEncoderForGenreClassification":
        """A classifier around a pretrained encoder: a Hub id, a local dir, a short audiocap encoder name, or a
        `ResolvedEncoder` already made by `resolve_encoder`. The encoder is built once. Without `window_seconds`,
        the config's default window for the encoder family applies."""
        if not isinstance(encoder, ResolvedEncoder):
            encoder = resolve_encoder(encoder, clap_output=config_kwargs.get("clap_output", "projected"))
        config_kwargs.setdefault("sampling_rate", encoder.sampling_rate)
        config = AudioGenreConfig(
            encoder=encoder.config, id2label=dict(id2label), label2id={v: k for k, v in id2label.items()}, **config_kwargs
        )
        return cls(config, encoder=encoder.model)

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
        return self._encode(inputs, attention_mask, **extra)[:2]

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        layer_embeddings: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **extra,
    ) -> GenreClassifierOutput:
        flags = self._output_flags(output_attentions, output_hidden_states)
        encoder_output = None
        if layer_embeddings is not None:
            if self.attention_pooling is not None:
                raise ValueError("layer_embeddings are mean-pooled; attention pooling needs the encoder's frames")
            embeddings = self.weight_layers(layer_embeddings.unsqueeze(2)).squeeze(1)
        else:
            inputs = self._encoder_inputs(input_values, input_features)
            embeddings, encoder_output = self._embed(inputs, attention_mask, **flags, **extra)
        if isinstance(embeddings, tuple):  # windowed: per-window embeddings and the clip of each window
            window_embeddings, window_clip_index = embeddings
            num_clips = self._encoder_inputs(input_values, input_features).shape[0]
            logits = average_windows(self.head(window_embeddings), window_clip_index, num_clips)
            embeddings = average_windows(window_embeddings, window_clip_index, num_clips)
        else:
            logits = self.head(embeddings)
        if self.config.target_mean is not None:  # a regressor's standardised outputs in the targets' units
            logits = logits * logits.new_tensor(self.config.target_std) + logits.new_tensor(self.config.target_mean)
        auxiliary_loss = getattr(encoder_output, "auxiliary_loss", None)
        loss = None
        if labels is not None:
            loss = clip_loss(self.config, logits, labels)
            if auxiliary_loss is not None:
                loss = loss + auxiliary_loss
        hidden_states = attentions = None
        if encoder_output is not None:  # the encoder keeps its hidden states for the layer stack: returned if asked
            hidden_states = encoder_output.hidden_states if flags["output_hidden_states"] else None
            attentions = encoder_output.attentions
        return GenreClassifierOutput(
            loss=loss, logits=logits, embeddings=embeddings, hidden_states=hidden_states, attentions=attentions,
            auxiliary_loss=auxiliary_loss,
        )

    def _embed(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None, **kwargs):
        """Pooled embeddings `(B, D)` and the encoder's output; for waveforms longer than `config.window_seconds`,
        the embeddings are `(window embeddings (windows, D), window_clip_index (windows,))`: each clip's valid
        samples (its `attention_mask`) cut as the processor cuts a clip (`window_starts`), to be averaged per clip
        (`average_windows`)."""
        window = None
        if self.config.window_seconds and encoder_family(self.config.encoder).waveform:
            window = int(round(self.config.window_seconds * self.config.sampling_rate))
        if window is None or inputs.shape[-1] <= window:
            hidden, frame_mask, encoder_output = self._encode(inputs, attention_mask, **kwargs)
            return self.pool_layers(hidden, frame_mask), encoder_output
        lengths = [inputs.shape[-1]] * inputs.shape[0] if attention_mask is None else attention_mask.sum(-1).tolist()
        cuts = [(clip, start) for clip, length in enumerate(lengths) for start in window_starts(int(length), window)]
        windows = torch.stack([inputs[clip, start : start + window] for clip, start in cuts])  # (windows, window)
        masks = None
        if attention_mask is not None:
            masks = torch.stack([attention_mask[clip, start : start + window] for clip, start in cuts])
        window_clip_index = torch.tensor([clip for clip, _ in cuts], device=inputs.device)
        hidden, frame_mask, encoder_output = self._encode(windows, masks, **kwargs)
        return (self.pool_layers(hidden, frame_mask), window_clip_index), encoder_output


# The captioner's audio projection is saved as `projection.*`, the name it had before it became `audio_projection`
# (peft picks LoRA's fully trained modules by name suffix, and `projection` also matched the `feature_projection`
# of wav2vec2-family encoders): loading maps the saved name to the module, saving maps it back.
register_checkpoint_conversion_mapping(
    "AudioEncoderT5ForCaptioning", [WeightRenaming(r"^projection\.", "audio_projection.")], overwrite=True
)


class AudioEncoderT5ForCaptioning(AudioCapPreTrainedModel):
    """Audio encoder -> layer weighting -> time reduction -> Linear(D -> d_model) -> T5.

    `forward(input_values, attention_mask, labels)` returns T5's seq2seq output (loss with labels; with
    `output_hidden_states` / `output_attentions`, T5's encoder and decoder states and attentions: none of the T5
    encoder with `connector="cross_attention"`, which skips it; `return_dict=False` gives a tuple);
    `generate(input_values, attention_mask, **generation_kwargs)` returns token ids from raw audio. The caption's
    token embeddings are T5's (`get_input_embeddings`, `resize_token_embeddings`).
    """

    config_class = AudioCaptionConfig
    _keys_to_ignore_on_load_missing = [r"t5\.encoder\.embed_tokens\.weight", r"t5\.decoder\.embed_tokens\.weight"]

    def __init__(
        self,
        config: AudioCaptionConfig,
        encoder: PreTrainedModel | None = None,
        text_model: T5ForConditionalGeneration | None = None,
    ):
        """`encoder` / `text_model`: modules to use as they are (pretrained weights kept); built from the config with
        random weights when None."""
        super().__init__(config)
        family = self.family
        self.layer_weighting = LayerWeighting(family.num_layers(config.encoder)) if config.use_layer_weighting else None
        width = family.layer_width(config.encoder)
        self.audio_projection = nn.Linear(width, config.text_config.d_model)
        self.encoder = family.build_encoder(config.encoder) if encoder is None else _checked_part(encoder, config.encoder)
        if text_model is None:
            text_model = T5ForConditionalGeneration(config.text_config)
        self.t5 = _checked_part(text_model, config.text_config)
        heads = config.attribute_heads or {}
        self.attribute_heads = nn.ModuleDict(
            {name: nn.Linear(width, len(spec.get("labels") or [0])) for name, spec in heads.items()}
        ) if heads else None
        self.post_init()

    @classmethod
    def from_encoder_decoder_pretrained(
        cls,
        encoder: "str | ResolvedEncoder",
        text_model: str | T5ForConditionalGeneration,
        **config_kwargs,
    ) -> "AudioEncoderT5ForCaptioning":
        """A captioner from a pretrained encoder (Hub id, local dir, short name, or a `ResolvedEncoder`) and a T5
        (Hub id, local dir, or a model); each is built once."""
        if not isinstance(encoder, ResolvedEncoder):
            encoder = resolve_encoder(encoder, clap_output=config_kwargs.get("clap_output", "projected"))
        if not isinstance(text_model, T5ForConditionalGeneration):
            text_model = T5ForConditionalGeneration.from_pretrained(text_model)
        config_kwargs.setdefault("sampling_rate", encoder.sampling_rate)
        config = AudioCaptionConfig(encoder=encoder.config, text_config=text_model.config, **config_kwargs)
        return cls(config, encoder=encoder.model, text_model=text_model)

    @classmethod
    def can_generate(cls) -> bool:
        """`generate()` delegates to T5; saying so makes `save_pretrained` write `generation_config.json`."""
        return True

    def adjust_generation_fn(self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path, **kwargs):
        """Called by `from_pretrained`: restore the saved generation settings (beams, lengths, ...) into T5; none to
        restore without a checkpoint folder (`from_pretrained(None, config=..., state_dict=...)`)."""
        if generation_config is None:
            if pretrained_model_name_or_path is None:
                return
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

    def get_input_embeddings(self) -> nn.Embedding:
        return self.t5.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.t5.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        return self.t5.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.t5.set_output_embeddings(value)

    def encode_audio(
        self,
        inputs: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        **extra,
    ):
        """Audio -> `(BaseModelOutput with (B, T', d_model), mask (B, T'))` ready for T5's decoder; the output flags go
        to T5's encoder (connector `t5_encoder`)."""
        states, mask = self.audio_states(inputs, attention_mask, **extra)
        return self._text_side(states, mask, output_attentions, output_hidden_states)

    def audio_states(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None, **extra):
        """Audio -> the encoder's layer-weighted, time-reduced states `(B, T', D)` and their mask `(B, T')`: what the
        attribute heads read and the projection hands to T5."""
        hidden, frame_mask, _ = self._encode(inputs, attention_mask, **extra)
        hidden = hidden[:, -1] if self.layer_weighting is None else self.layer_weighting(hidden)
        reduced, reduced_mask = reduce_time(hidden, frame_mask, self.config.time_reduction_stride)
        return reduced, reduced_mask.long()

    def _text_side(self, states: torch.Tensor, mask: torch.Tensor, output_attentions: bool = False,
                   output_hidden_states: bool = False) -> tuple[BaseModelOutput, torch.Tensor]:
        """Audio states -> projection -> T5's encoder (or straight to the decoder with connector `cross_attention`)."""
        embeds = self.audio_projection(states)
        if self.config.connector == "cross_attention":
            return BaseModelOutput(last_hidden_state=embeds), mask
        encoded = self.t5.encoder(
            inputs_embeds=embeds,
            attention_mask=mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        # T5 reads any other output type by position, which a missing `hidden_states` would shift.
        return BaseModelOutput(encoded.last_hidden_state, encoded.hidden_states, encoded.attentions), mask

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        attribute_labels: dict[str, torch.Tensor] | None = None,
        **extra,
    ) -> Seq2SeqLMOutput:
        r"""
        attribute_labels (`dict[str, torch.Tensor]`, optional): per attribute head, each clip's class index or
            number `(B,)`; their weighted losses are added to the caption loss.
        """
        flags = self._output_flags(output_attentions, output_hidden_states)
        inputs = self._encoder_inputs(input_values, input_features)
        states, mask = self.audio_states(inputs, attention_mask, **extra)
        encoder_outputs, mask = self._text_side(states, mask, **flags)
        outputs = self.t5(
            encoder_outputs=encoder_outputs,
            attention_mask=mask,
            labels=labels,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            **flags,
        )
        if attribute_labels is not None:
            attribute_loss = self._attribute_loss(self.attribute_outputs(states, mask), attribute_labels)
            outputs["loss"] = attribute_loss if outputs.loss is None else outputs.loss + attribute_loss
        return outputs

    def attribute_outputs(self, audio_states: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each attribute head on the mean over valid frames of the audio states (`audio_states`): class logits
        `(B, C)` or a standardised number `(B,)`."""
        if self.attribute_heads is None:
            raise ValueError("this captioner has no attribute heads (config.attribute_heads)")
        pooled = mean_pool(audio_states, mask)
        outputs = {name: head(pooled) for name, head in self.attribute_heads.items()}
        return {name: out if "labels" in self.config.attribute_heads[name] else out[:, 0] for name, out in outputs.items()}

    def _attribute_loss(self, outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
        losses = []
        for name, spec in self.config.attribute_heads.items():
            if "labels" in spec:
                losses.append(nn.functional.cross_entropy(outputs[name], labels[name].long()))
            else:
                target = (labels[name].to(outputs[name].dtype) - spec["mean"]) / spec["std"]
                losses.append(nn.functional.mse_loss(outputs[name], target))
        return self.config.attribute_loss_weight * torch.stack(losses).sum()

    @torch.no_grad()
    def predict_attributes(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
    ) -> dict[str, list]:
        """What the attribute heads say of each clip: a class name, or a number in the column's own units."""
        states, mask = self.audio_states(self._encoder_inputs(input_values, input_features), attention_mask)
        outputs = self.attribute_outputs(states, mask)
        predictions = {}
        for name, spec in self.config.attribute_heads.items():
            if "labels" in spec:
                predictions[name] = [spec["labels"][i] for i in outputs[name].argmax(-1).tolist()]
            else:
                predictions[name] = (outputs[name] * spec["std"] + spec["mean"]).tolist()
        return predictions

    @torch.no_grad()
    def generate(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        **generation_kwargs,
    ) -> torch.Tensor:
        """Caption token ids `(B, length)` from audio; `generation_kwargs` go to T5's `generate`."""
        extra_inputs = encoder_family(self.config.encoder).extra_inputs
        extra = {k: generation_kwargs.pop(k) for k in extra_inputs if k in generation_kwargs}
        encoder_outputs, mask = self.encode_audio(self._encoder_inputs(input_values, input_features), attention_mask, **extra)
        return self.t5.generate(encoder_outputs=encoder_outputs, attention_mask=mask, **generation_kwargs)
