"""Genre classifier and captioner on every encoder family: shapes, training steps, save/load round trips."""

import logging

import pytest
import torch
from conftest import (
    ENCODER_FAMILIES,
    LABELS,
    assert_same_state,
    batch_for,
    caption_model,
    genre_model,
    tiny_encoder_config,
    tiny_t5_config,
    tone,
)

from modeling_audiocap import (
    AudioCapFeatureExtractor,
    AudioEncoderForGenreClassification,
    AudioEncoderT5ForCaptioning,
    AudioGenreConfig,
    resolve_encoder,
)

@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_a_classifier_from_an_encoder_folder_keeps_its_weights_and_attention_dispatch(family, tmp_path):
    """Built from a plain transformers encoder folder, the classifier holds the encoder's weights as saved, and the
    encoder keeps the attention implementation it loaded with: no forward warns that the dispatch went wrong."""
    from transformers.utils import logging as hf_logging

    resolved = resolve_encoder(tiny_encoder_config(family))
    resolved.model.save_pretrained(tmp_path)
    resolved.feature_extractor.save_pretrained(tmp_path)
    warnings = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    hf_logging.warning_once.cache_clear()  # warned once per process: let this test see it
    hf_logging.get_logger("transformers").addHandler(handler)
    try:
        model = AudioEncoderForGenreClassification.from_encoder_pretrained(str(tmp_path), LABELS).eval()
        with torch.no_grad():
            model(**batch_for(resolved))
    finally:
        hf_logging.get_logger("transformers").removeHandler(handler)
    assert_same_state(model.encoder, resolved.model)
    assert not [message for message in warnings if "AttentionInterface" in message]


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_genre_model_trains_and_round_trips(family, tmp_path):
    model, resolved = genre_model(family)
    batch = batch_for(resolved)
    model.train()
    out = model(**batch, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3)
    assert out.embeddings.shape == (2, resolved.hidden_size)
    out.loss.backward()
    assert model.head[0].weight.grad is not None and model.layer_weighting.weight.grad is not None
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not (tmp_path / "pytorch_model.bin").exists()
    loaded = AudioEncoderForGenreClassification.from_pretrained(tmp_path).eval()
    assert_same_state(model, loaded)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected)
    assert loaded.config.id2label == LABELS


def test_genre_model_attention_pooling_and_last_layer_only():
    model, resolved = genre_model("wav2vec2", pooling="attention", use_layer_weighting=False)
    assert model.layer_weighting is None
    out = model(**batch_for(resolved))
    assert out.logits.shape == (2, 3)


def test_head_hidden_size_zero_is_a_linear_probe_that_round_trips(tmp_path):
    model, resolved = genre_model("wav2vec2", head_hidden_size=0)
    linear = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linear) == 1 and linear[0].out_features == 3
    batch = batch_for(resolved)
    model.save_pretrained(tmp_path)
    reloaded = AudioEncoderForGenreClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_long_inputs_average_logits_over_windows():
    model, resolved = genre_model("wav2vec2", window_seconds=0.5)
    audio = torch.from_numpy(tone(1.25, 16000))[None]
    window = 8000
    with torch.no_grad():
        logits = model(input_values=audio).logits
        starts = [0, 8000, 12000]  # the last window is aligned to the end
        per_window = [model(input_values=audio[:, s : s + window]).logits for s in starts]
    torch.testing.assert_close(logits, torch.stack(per_window).mean(0))


def test_a_padded_batch_is_windowed_clip_by_clip_over_its_valid_samples():
    """Each clip of a padded batch is cut as the processor cuts it alone (its own end-aligned last window), and the
    windows of its padding are never scored."""
    model, _ = genre_model("wav2vec2", window_seconds=0.5)
    long, short = torch.from_numpy(tone(1.25, 16000)), torch.from_numpy(tone(0.7, 16000, 330.0))
    batch = torch.stack([long, torch.nn.functional.pad(short, (0, long.shape[0] - short.shape[0]))])
    mask = torch.stack([torch.ones(long.shape[0]), (torch.arange(long.shape[0]) < short.shape[0]).float()]).long()
    with torch.no_grad():
        logits = model(input_values=batch, attention_mask=mask).logits
        alone = [
            torch.stack([model(input_values=clip[None, s : s + 8000]).logits[0] for s in starts]).mean(0)
            for clip, starts in ((long, [0, 8000, 12000]), (short, [0, 3200]))
        ]
    torch.testing.assert_close(logits, torch.stack(alone), atol=1e-5, rtol=1e-4)


def test_cached_layer_embeddings_give_the_same_logits_as_the_encoder():
    model, resolved = genre_model("hubert")
    batch = batch_for(resolved)
    with torch.no_grad():
        hidden, mask = model.layer_hidden_states(batch["input_values"], batch.get("attention_mask"))
        from modeling_audiocap import mean_pool

        cached = mean_pool(hidden, mask)  # (B, L, D)
        torch.testing.assert_close(model(layer_embeddings=cached).logits, model(**batch).logits)


def test_from_encoder_pretrained_loads_the_encoder_weights(tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2"))
    resolved.model.save_pretrained(tmp_path)
    resolved.feature_extractor.save_pretrained(tmp_path)
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(str(tmp_path), id2label=LABELS, head_hidden_size=16)
    assert_same_state(resolved.model, model.encoder)
    assert model.config.head_hidden_size == 16 and model.config.sampling_rate == 16000
    assert model.config.label2id == {"rock": 0, "jazz": 1, "ambient": 2}


def test_unsupported_encoder_is_a_clear_error():
    from transformers import BertConfig

    with pytest.raises(ValueError, match="Unsupported audio encoder model_type 'bert'"):
        resolve_encoder(BertConfig())


@pytest.mark.parametrize("family,connector", [("wav2vec2", "t5_encoder"), ("mert", "cross_attention"), ("whisper", "t5_encoder"), ("clap", "cross_attention")])
def test_captioner_trains_generates_and_round_trips(family, connector, tmp_path):
    model, resolved = caption_model(family, connector=connector, time_reduction_stride=2)
    batch = batch_for(resolved)
    labels = torch.tensor([[5, 6, 7, 1], [8, 9, 1, -100]])
    model.train()
    out = model(**batch, labels=labels)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.audio_projection.weight.grad is not None
    model.eval()
    generated = model.generate(**batch, max_new_tokens=5, num_beams=2, do_sample=False)
    assert generated.shape[0] == 2 and generated.shape[1] <= 6
    model.generation_config.update(max_new_tokens=7, num_beams=3)
    model.save_pretrained(tmp_path)
    loaded = AudioEncoderT5ForCaptioning.from_pretrained(tmp_path).eval()
    assert_same_state(model, loaded)
    assert (loaded.generation_config.max_new_tokens, loaded.generation_config.num_beams) == (7, 3)
    torch.testing.assert_close(loaded.generate(**batch, max_new_tokens=5, num_beams=2, do_sample=False), generated)


def test_from_encoder_decoder_pretrained_loads_both_parts_from_local_dirs(tmp_path):
    from transformers import T5ForConditionalGeneration

    resolved = resolve_encoder(tiny_encoder_config("hubert"))
    resolved.model.save_pretrained(tmp_path / "encoder")
    resolved.feature_extractor.save_pretrained(tmp_path / "encoder")
    t5 = T5ForConditionalGeneration(tiny_t5_config())
    t5.save_pretrained(tmp_path / "t5")
    model = AudioEncoderT5ForCaptioning.from_encoder_decoder_pretrained(
        str(tmp_path / "encoder"), str(tmp_path / "t5"), connector="cross_attention", time_reduction_stride=3
    )
    assert_same_state(resolved.model, model.encoder)
    assert_same_state(t5, model.t5)
    assert model.config.connector == "cross_attention" and model.config.time_reduction_stride == 3


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "mert"])
def test_freezing_modes(family):
    model, resolved = genre_model(family)
    model.freeze_feature_encoder()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("encoder.feature_extractor.") for n in frozen)
    model.freeze_encoder()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("encoder.") for n in trainable)
    # a frozen encoder records no graph (its activations are not kept), and the head still trains
    model.train()
    batch = batch_for(resolved)
    hidden, _ = model.layer_hidden_states(batch["input_values"], batch.get("attention_mask"))
    assert not hidden.requires_grad
    model(**batch, labels=torch.tensor([0, 1])).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("head."))
    clap, _ = genre_model("clap")
    with pytest.raises(ValueError, match="no convolutional feature encoder"):
        clap.freeze_feature_encoder()


def test_clap_outputs_are_two_records_and_the_config_picks_one(tmp_path):
    """CLAP's projected embedding and its last stage's frames are two registered records of one model_type: the model's
    `clap_output` picks the record, which sets the width, what the layers are, and what a saved model gives HEAR."""
    from modeling_audiocap import hear
    from modeling_audiocap.encoder_families import encoder_family

    projected, resolved = genre_model("clap")
    frames, _ = genre_model("clap", clap_output="last_hidden_state")
    config = resolved.config
    assert (projected.family.name, frames.family.name) == ("clap", "clap-frames")
    assert encoder_family(config) is projected.family  # the default record
    assert encoder_family(tiny_encoder_config("wav2vec2"), output="last_hidden_state").name == "wav2vec2"  # one record
    with pytest.raises(ValueError, match="outputs 'projected', 'last_hidden_state', not 'pooled'"):
        encoder_family(config, output="pooled")
    batch = batch_for(resolved)
    for model, width in ((projected, config.projection_dim), (frames, config.hidden_size)):
        hidden, _ = model.layer_hidden_states(batch["input_features"], None, is_longer=batch["is_longer"])
        assert hidden.shape[1] == 1 and hidden.shape[-1] == width
        assert (hidden.shape[2] == 1) == (model is projected)  # one vector, or the last stage's frames
        with torch.no_grad():
            assert model(**batch).logits.shape == (2, len(LABELS))
    assert resolve_encoder(config, clap_output="last_hidden_state").hidden_size == config.hidden_size
    frames.save_pretrained(tmp_path)
    AudioCapFeatureExtractor(resolved.feature_extractor).save_pretrained(tmp_path)
    assert hear.load_model(str(tmp_path)).scene_embedding_size == config.hidden_size


@pytest.mark.parametrize("family", ["mert", "whisper"])
def test_a_saved_genre_model_is_an_encoder_with_what_it_learned(tmp_path, family):
    """`resolve_encoder(genre_model_dir)`: the fine-tuned encoder (not the checkpoint it started from) with the feature
    extractor of the model's processor, e.g. to caption with a genre model trained on one's own data."""
    from modeling_audiocap import AudioCapFeatureExtractor

    model, resolved = genre_model(family)
    with torch.no_grad():
        for parameter in model.encoder.parameters():
            parameter.add_(0.01)  # "fine-tuned"
    model.save_pretrained(tmp_path)
    AudioCapFeatureExtractor(feature_extractor=resolved.feature_extractor).save_pretrained(tmp_path)
    again = resolve_encoder(str(tmp_path))
    assert_same_state(again.model, model.encoder)
    assert again.sampling_rate == resolved.sampling_rate and again.num_layers == resolved.num_layers
    assert type(again.feature_extractor) is type(resolved.feature_extractor)


def test_genre_outputs_honour_the_output_flags_and_return_dict():
    """The encoder's own hidden states and attentions come back when asked (by argument or config), a tuple with
    `return_dict=False`; the attention implementation asked for reaches the encoder."""
    model, resolved = genre_model("wav2vec2")
    model.set_attn_implementation("eager")
    assert model.encoder.config._attn_implementation == "eager"
    batch = batch_for(resolved)
    with torch.no_grad():
        plain = model(**batch)
        out = model(**batch, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**batch, output_hidden_states=True, return_dict=False)
    assert plain.hidden_states is None and plain.attentions is None
    assert len(out.hidden_states) == resolved.num_layers and len(out.attentions) == resolved.num_layers - 1
    assert out.attentions[0].shape[:2] == (2, 2)  # (B, heads, T, T)
    torch.testing.assert_close(out.logits, plain.logits)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3  # logits, embeddings, hidden states
    torch.testing.assert_close(as_tuple[2][-1], out.hidden_states[-1])
    model.config.output_hidden_states = True
    with torch.no_grad():
        assert len(model(**batch).hidden_states) == resolved.num_layers


@pytest.mark.parametrize("connector", ["t5_encoder", "cross_attention"])
def test_captioner_outputs_honour_the_output_flags_and_return_dict(connector):
    model, resolved = caption_model("wav2vec2", connector=connector, time_reduction_stride=2)
    model.set_attn_implementation("eager")
    assert model.encoder.config._attn_implementation == model.t5.config._attn_implementation == "eager"
    batch = batch_for(resolved)
    decoder_input_ids = torch.tensor([[0, 5, 6], [0, 8, 9]])
    with torch.no_grad():
        out = model(**batch, decoder_input_ids=decoder_input_ids, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**batch, decoder_input_ids=decoder_input_ids, return_dict=False)
    assert len(out.decoder_hidden_states) == 2 and len(out.decoder_attentions) == len(out.cross_attentions) == 1
    assert out.decoder_hidden_states[-1].shape == (2, 3, 32)
    if connector == "t5_encoder":  # T5's encoder: its input (the projected audio frames) and its one layer
        assert len(out.encoder_hidden_states) == 2 and len(out.encoder_attentions) == 1
    else:  # T5's encoder is skipped: the decoder reads the projected frames
        assert out.encoder_hidden_states is None and out.encoder_attentions is None
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.logits)


def test_captioner_resizes_its_token_embeddings(tmp_path):
    model, resolved = caption_model("wav2vec2")
    assert model.get_input_embeddings() is model.t5.shared and model.get_output_embeddings() is model.t5.lm_head
    model.resize_token_embeddings(80)
    assert model.config.text_config.vocab_size == 80 and model.t5.lm_head.out_features == 80
    assert model.t5.encoder.embed_tokens.num_embeddings == model.t5.decoder.embed_tokens.num_embeddings == 80
    batch = batch_for(resolved)
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=torch.tensor([[0, 79], [0, 70]])).logits
    assert logits.shape == (2, 2, 80)
    model.save_pretrained(tmp_path)
    assert AudioEncoderT5ForCaptioning.from_pretrained(tmp_path).config.text_config.vocab_size == 80


@pytest.mark.parametrize("build", [genre_model, caption_model])
def test_loading_without_a_checkpoint_folder(build):
    """`from_pretrained(None, config=..., state_dict=...)` (config-only construction with given weights)."""
    model, _ = build("wav2vec2")
    loaded = type(model).from_pretrained(None, config=model.config, state_dict=model.state_dict())
    assert_same_state(model, loaded)


def test_the_encoder_is_the_base_model_and_a_bare_encoder_checkpoint_loads_into_it(tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("mert"))
    resolved.model.save_pretrained(tmp_path)
    config = AudioGenreConfig(encoder=resolved.config, id2label=LABELS, pooling="attention")
    model, info = AudioEncoderForGenreClassification.from_pretrained(tmp_path, config=config, output_loading_info=True)
    assert model.base_model is model.encoder
    assert_same_state(resolved.model, model.encoder)
    assert info["missing_keys"]
    assert all(key.startswith(("head.", "layer_weighting.", "attention_pooling.")) for key in info["missing_keys"])
    assert "attention_pooling.score.weight" in model.state_dict()  # the key saved models carry


def test_the_attention_implementation_reaches_every_sub_model(tmp_path):
    model, _ = caption_model("wav2vec2")
    model.save_pretrained(tmp_path)
    for requested, expected in ((None, "sdpa"), ("eager", "eager")):
        kwargs = {"attn_implementation": requested} if requested else {}
        loaded = AudioEncoderT5ForCaptioning.from_pretrained(tmp_path, **kwargs)
        implementations = {loaded.encoder.config._attn_implementation, loaded.t5.config._attn_implementation}
        assert implementations == {expected}, (requested, implementations)


def test_each_part_is_built_once(monkeypatch, encoder_dir):
    """Models are built from their parts (as SpeechEncoderDecoderModel is): `from_encoder_pretrained`,
    `from_encoder_decoder_pretrained` and the training scripts' `build_model` construct the encoder (and T5) once,
    never a random one that is then replaced, and keep the given weights."""
    from test_paper_presets import script
    from transformers import T5ForConditionalGeneration, Wav2Vec2Model

    from modeling_audiocap.training.arguments import AudioDataArguments, EncoderArguments

    built = []

    def count_constructions(cls) -> None:
        original = cls.__init__

        def init(self, *args, **kwargs):
            built.append(cls.__name__)
            original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    count_constructions(Wav2Vec2Model)
    count_constructions(T5ForConditionalGeneration)
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(str(encoder_dir), {0: "a", 1: "b"})
    assert built == ["Wav2Vec2Model"] and model.base_model is model.encoder
    reference = Wav2Vec2Model.from_pretrained(encoder_dir)
    assert all(torch.equal(p, reference.state_dict()[k]) for k, p in model.encoder.state_dict().items())
    built.clear()
    t5 = T5ForConditionalGeneration(tiny_t5_config())
    AudioEncoderT5ForCaptioning.from_encoder_decoder_pretrained(str(encoder_dir), t5)
    assert sorted(built) == ["T5ForConditionalGeneration", "Wav2Vec2Model"]
    built.clear()
    train_genre = script("train_genre")
    train_genre.build_model(EncoderArguments(encoder_name_or_path=str(encoder_dir)), train_genre.GenreArguments(),
                            AudioDataArguments(max_length_seconds=1.0), ["a", "b"])
    assert built == ["Wav2Vec2Model"]
    with pytest.raises(ValueError, match="'t5' model was given"):
        AudioEncoderForGenreClassification(model.config, encoder=T5ForConditionalGeneration(tiny_t5_config()))
