"""HEAR API: attributes, shapes, timestamps and the layer weighting of a saved audiocap model."""

import pytest
import torch
from conftest import genre_model, tiny_encoder_config

from modeling_audiocap import AudioCapFeatureExtractor, AudioDecodingError, hear, resolve_encoder


def test_hear_api_on_a_plain_encoder_dir(tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("mert"))
    resolved.model.save_pretrained(tmp_path)
    resolved.feature_extractor.save_pretrained(tmp_path)
    model = hear.load_model(str(tmp_path), window_seconds=1.0)
    assert model.sample_rate == 24000 and model.scene_embedding_size == model.timestamp_embedding_size == 32
    audio = torch.randn(2, int(2.5 * 24000)) * 0.1
    embeddings, times = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape[:2] == times.shape and embeddings.shape[0] == 2 and embeddings.shape[2] == 32
    assert (times.diff(dim=1) > 0).all() and times[0, 0] < 20 and 2400 < times[0, -1] < 2500
    assert embeddings.shape[1] > 150  # ~75 frames a second over 2.5 s
    scene = hear.get_scene_embeddings(audio, model)
    torch.testing.assert_close(scene, embeddings.mean(1))


def test_hear_uses_the_saved_models_layer_weighting(tmp_path):
    model, resolved = genre_model("wav2vec2")
    with torch.no_grad():
        model.layer_weighting.weight.zero_()
        model.layer_weighting.weight[0, 1, 0] = 1.0  # select layer 1 only
    model.save_pretrained(tmp_path)
    AudioCapFeatureExtractor(feature_extractor=resolved.feature_extractor).save_pretrained(tmp_path)
    wrapped = hear.load_model(str(tmp_path))
    audio = torch.randn(1, 16000) * 0.1
    embeddings, _ = hear.get_timestamp_embeddings(audio, wrapped)
    with torch.no_grad():
        inputs = resolved.feature_extractor(audio[0].numpy(), sampling_rate=16000, return_tensors="pt")
        hidden = model.encoder(inputs["input_values"], output_hidden_states=True).hidden_states[1]
    torch.testing.assert_close(embeddings[0], hidden[0])


def test_whisper_gives_its_frames_that_cover_the_sound():
    """Whisper pads every window to 30 s; its frame mask keeps the 50 frames a second of the sound itself."""
    resolved = resolve_encoder(tiny_encoder_config("whisper"))
    model = hear.HearModel(resolved.model, resolved.config, AudioCapFeatureExtractor(feature_extractor=resolved.feature_extractor))
    embeddings, times = hear.get_timestamp_embeddings(torch.randn(1, 2 * 16000) * 0.1, model)
    assert embeddings.shape == (1, 100, 32) and 1980 < times[0, -1] < 2000


@pytest.mark.parametrize("family", ["ast", "clap"])
def test_frameless_encoders_give_an_embedding_every_50_ms(family):
    """AST / CLAP: a window centred on each timestamp, 50 ms apart (HEAR's largest hop), zero-padded at the edges."""
    resolved = resolve_encoder(tiny_encoder_config(family))
    rate = resolved.sampling_rate
    model = hear.HearModel(resolved.model, resolved.config, AudioCapFeatureExtractor(feature_extractor=resolved.feature_extractor),
                           timestamp_window_seconds=0.5)
    audio = torch.randn(2, int(1.23 * rate)) * 0.1
    embeddings, times = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 25, model.timestamp_embedding_size)
    torch.testing.assert_close(times, torch.arange(0.0, 1230.0, 50.0).expand(2, -1))
    half = int(0.25 * rate)
    centre = int(0.6 * rate)  # the timestamp at 600 ms: audio from 350 ms to 850 ms
    alone = model.embed_windows([audio[1, centre - half : centre + half]])[0]
    torch.testing.assert_close(embeddings[1, 12], alone, rtol=1e-4, atol=1e-5)
    first = model.embed_windows([torch.cat([torch.zeros(half), audio[0, :half]])])[0]
    torch.testing.assert_close(embeddings[0, 0], first, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["mert", "ast"])
def test_non_finite_or_empty_sounds_are_named_never_embedded(family):
    resolved = resolve_encoder(tiny_encoder_config(family))
    model = hear.HearModel(resolved.model, resolved.config, AudioCapFeatureExtractor(feature_extractor=resolved.feature_extractor),
                           window_seconds=1.0)
    audio = torch.randn(3, resolved.sampling_rate) * 0.1
    audio[2, 100] = float("nan")
    with pytest.raises(AudioDecodingError, match="sound 2 of the batch: non-finite samples"):
        hear.get_scene_embeddings(audio, model)
    audio[2, 100] = float("inf")
    with pytest.raises(AudioDecodingError, match="sound 2 of the batch"):
        hear.get_timestamp_embeddings(audio, model)
    with pytest.raises(AudioDecodingError, match="sound 0 of the batch: empty audio"):
        hear.get_scene_embeddings(torch.zeros(1, 0), model)
