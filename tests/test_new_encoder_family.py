"""A new encoder family is one `EncoderFamily` record in `encoder_families`: registered here for UniSpeech-SAT (a
transformers audio model audiocap has no record for), it resolves, trains a genre model end to end (train_genre.py,
frozen through the embedding engine and with LoRA adapters) and loads back."""

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from conftest import WAVEFORM_KWARGS
from transformers import UniSpeechSatConfig, UniSpeechSatModel

import modeling_audiocap.encoder_families as encoder_families
from modeling_audiocap import AudioEncoderForGenreClassification, resolve_encoder
from modeling_audiocap.encoder_families import EncoderFamily, encoder_family, register_encoder_family

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def unispeech_sat(monkeypatch):
    """The record of the new family, registered for this test only."""
    monkeypatch.setattr(encoder_families, "ENCODER_FAMILIES", list(encoder_families.ENCODER_FAMILIES))
    # a waveform transformer like wav2vec2 (the record's defaults), with LoRA on its key projections
    return register_encoder_family(EncoderFamily("unispeech-sat", ("unispeech-sat",), lora_targets=("k_proj",)))


def test_an_unknown_family_is_refused_until_registered(unispeech_sat, monkeypatch):
    config = UniSpeechSatConfig(**WAVEFORM_KWARGS)
    assert encoder_family(config) is unispeech_sat
    monkeypatch.setattr(encoder_families, "ENCODER_FAMILIES", [f for f in encoder_families.ENCODER_FAMILIES
                                                               if f is not unispeech_sat])
    with pytest.raises(ValueError, match="Unsupported audio encoder model_type 'unispeech-sat'"):
        resolve_encoder(config)


@pytest.mark.parametrize("mode", ["frozen", "lora"])
def test_a_registered_family_trains_a_genre_model(unispeech_sat, tmp_path, monkeypatch, mode):
    encoder_dir, out = tmp_path / "encoder", tmp_path / "genre"
    resolved = resolve_encoder(UniSpeechSatConfig(**WAVEFORM_KWARGS))
    assert isinstance(resolved.model, UniSpeechSatModel) and resolved.num_layers == WAVEFORM_KWARGS["num_hidden_layers"] + 1
    resolved.model.save_pretrained(encoder_dir)
    resolved.feature_extractor.save_pretrained(encoder_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [
        "train_genre.py", "--encoder_name_or_path", str(encoder_dir), "--encoder_mode", mode,
        "--dataset_name", "builtin", "--builtin_dir", str(tmp_path / "set"), "--builtin_clips_per_genre", "3",
        "--builtin_seconds", "1.0", "--max_length_seconds", "1.0", "--embedding_cache_dir", str(tmp_path / "cache"),
        "--head_hidden_size", "8", "--output_dir", str(out), "--num_train_epochs", "1",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--eval_strategy", "no",
        "--save_strategy", "no", "--report_to", "none", "--seed", "0",
    ])
    runpy.run_path(str(ROOT / "train_genre.py"), run_name="__main__")

    results = json.loads((out / "results.json").read_text())
    assert results["encoder_mode"] == mode and results["test_accuracy"] == results["test"]["accuracy"]
    assert sum(map(sum, results["test"]["confusion_matrix"])) == results["split_sizes"]["test"]
    model = AudioEncoderForGenreClassification.from_pretrained(out).eval()
    assert isinstance(model.encoder, UniSpeechSatModel)
    trained, initial = model.encoder.state_dict(), resolved.model.state_dict()
    key = "encoder.layers.0.attention.k_proj.weight"
    assert torch.equal(trained[key], initial[key]) == (mode == "frozen")  # LoRA's adapters were merged into it
    assert torch.equal(trained["encoder.layers.0.attention.q_proj.weight"], initial["encoder.layers.0.attention.q_proj.weight"])
