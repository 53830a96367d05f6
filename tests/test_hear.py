"""HEAR API: attributes, shapes, timestamps and the layer weighting of a saved audiocap model."""

import torch
from conftest import tiny_encoder_config
from test_modeling import genre_model

from modeling_audiocap import hear, resolve_encoder


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
    from modeling_audiocap import AudioCapProcessor

    AudioCapProcessor(feature_extractor=resolved.feature_extractor).save_pretrained(tmp_path)
    wrapped = hear.load_model(str(tmp_path))
    audio = torch.randn(1, 16000) * 0.1
    embeddings, _ = hear.get_timestamp_embeddings(audio, wrapped)
    with torch.no_grad():
        inputs = resolved.feature_extractor(audio[0].numpy(), sampling_rate=16000, return_tensors="pt")
        hidden = model.encoder(inputs["input_values"], output_hidden_states=True).hidden_states[1]
    torch.testing.assert_close(embeddings[0], hidden[0])


def test_frameless_encoders_give_one_embedding_per_window():
    resolved = resolve_encoder(tiny_encoder_config("ast"))
    from modeling_audiocap import AudioCapProcessor

    model = hear.HearModel(resolved.model, resolved.config, AudioCapProcessor(feature_extractor=resolved.feature_extractor),
                           window_seconds=1.0)
    embeddings, times = hear.get_timestamp_embeddings(torch.randn(1, 3 * 16000) * 0.1, model)
    assert embeddings.shape == (1, 3, 32)
    torch.testing.assert_close(times, torch.tensor([[500.0, 1500.0, 2500.0]]))
