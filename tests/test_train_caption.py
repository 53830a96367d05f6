"""train_caption.py end to end on a small built-in set with a scratch T5; the music-captioning pipeline reloads it."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import run_script

from modeling_audiocap import AudioCapProcessor

pytestmark = pytest.mark.slow  # whole training runs


@pytest.mark.parametrize("mode,connector,attributes", [("unfrozen", "t5_encoder", None), ("lora", "cross_attention", "tempo_bpm,mode")])
def test_train_caption_writes_a_publishable_captioner(tmp_path, encoder_dir, monkeypatch, mode, connector, attributes):
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    run_script(
        monkeypatch, "train_caption", "--encoder_name_or_path", str(encoder_dir), "--encoder_mode", mode, "--connector", connector,
        "--text_model_name_or_path", "scratch", "--scratch_vocab_size", "300", "--scratch_d_model", "32",
        "--scratch_layers", "1", "--dataset_name", "builtin", "--builtin_dir", str(tmp_path / "set"),
        "--builtin_clips_per_genre", "4", "--builtin_seconds", "1.0", "--max_length_seconds", "1.0",
        "--output_dir", str(out), "--num_train_epochs", "1", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--max_new_tokens", "12",
        "--eval_strategy", "epoch", "--save_strategy", "epoch", "--report_to", "none", "--seed", "0",
        "--num_sample_captions", "3", "--max_train_eval_samples", "4",
        *(["--attribute_columns", attributes] if attributes else []),
    )
    results = json.loads((out / "results.json").read_text())
    for key in ("bert_similarity", "bleu_4", "rouge_l", "cider_d", "distinct_captions", "genre_accuracy"):
        assert key in results["test"], key
    assert {"bert_similarity", "bleu_4"} <= set(results["train"]) and results["train_eval_clips"] == 4
    assert results["similarity_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (out / "training_curves.png").exists()
    assert len(results["sample_captions"]["test"]) == 3
    assert all(set(s) == {"generated", "reference"} for s in results["sample_captions"]["test"])
    config = json.loads((out / "config.json").read_text())
    assert config["custom_pipelines"]["music-captioning"]["impl"] == "pipelines.MusicCaptioningPipeline"
    if attributes:  # heads trained beside the captions (through the LoRA wrapper), saved with the model
        assert config["attribute_heads"]["mode"] == {"labels": ["major", "minor"]}
        assert 56 < config["attribute_heads"]["tempo_bpm"]["mean"] < 176
        assert results["hyperparameters"]["attribute_columns"] == attributes
    assert (out / "pipelines.py").exists() and (out / "tokenizer.json").exists()
    checkpoint = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    saved = AudioCapProcessor.from_pretrained(checkpoint)  # a checkpoint is a complete captioner folder
    assert saved.tokenizer is not None and saved.window_seconds == 1.0
    card = (out / "README.md").read_text()
    assert yaml.safe_load(card.split("---")[1])["model-index"][0]["results"]
    assert "| metric | train | validation | test |" in card and "![training_curves.png]" in card

    clip = next((tmp_path / "set").rglob("*.wav"))
    script = (
        "import sys; sys.modules['modeling_audiocap'] = None\n"
        "from transformers import pipeline\n"
        f"captioner = pipeline('music-captioning', model={str(out)!r}, trust_remote_code=True)\n"
        f"print('CAPTION', captioner({str(clip)!r}, max_new_tokens=8))"
    )
    check = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-3000:]
    assert "CAPTION [{'generated_text':" in check.stdout
    assert "seem to have been set" not in check.stderr  # the saved generation settings do not conflict
