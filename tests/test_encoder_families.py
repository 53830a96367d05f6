"""Every encoder family through the scripts: tiny MERT (m-a-p's layout), CLAP, Whisper and AST encoders, saved as
checkpoints, train a genre model (frozen and LoRA) and a captioner (frozen), and each result is served through
`pipeline()` with remote code only."""

import json
import subprocess
import sys

import pytest
from conftest import run_script, tiny_encoder_config

from modeling_audiocap import resolve_encoder

pytestmark = pytest.mark.slow  # whole training runs

COMMON = [
    "--dataset_name", "builtin", "--builtin_clips_per_genre", "4", "--builtin_seconds", "1.5",
    "--max_length_seconds", "1.0", "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "8", "--eval_strategy", "epoch", "--save_strategy", "no", "--report_to", "none",
]


@pytest.mark.parametrize("family", ["mert", "clap", "whisper", "ast"])
def test_family_trains_genre_and_caption_models_that_serve(tmp_path, tmp_path_factory, monkeypatch, family):
    encoder = tmp_path / "encoder"
    resolved = resolve_encoder(tiny_encoder_config(family))
    resolved.model.save_pretrained(encoder)
    resolved.feature_extractor.save_pretrained(encoder)
    data = [*COMMON, "--builtin_dir", str(tmp_path_factory.getbasetemp() / "families-set")]  # one set for all
    monkeypatch.chdir(tmp_path)
    for mode in ("frozen", "lora"):
        run_script(monkeypatch, "train_genre", "--encoder_name_or_path", str(encoder), "--encoder_mode", mode, *data,
                   "--embedding_cache_dir", str(tmp_path / "cache"), "--head_hidden_size", "16",
                   "--output_dir", str(tmp_path / f"genre-{mode}"))
    run_script(monkeypatch, "train_caption", "--encoder_name_or_path", str(encoder), "--encoder_mode", "frozen", *data,
               "--text_model_name_or_path", "scratch", "--scratch_vocab_size", "300", "--scratch_d_model", "32",
               "--scratch_layers", "1", "--max_new_tokens", "6", "--output_dir", str(tmp_path / "caption"))

    labels = json.loads((tmp_path / "genre-frozen" / "results.json").read_text())["label_names"]
    clip = str(next((tmp_path_factory.getbasetemp() / "families-set").rglob("*.wav")))
    script = (
        "import sys; sys.modules['modeling_audiocap'] = None\n"
        "from transformers import pipeline\n"
        "for mode in ('frozen', 'lora'):\n"
        f"    scores = pipeline('audio-classification', model={str(tmp_path)!r} + '/genre-' + mode,\n"
        f"                      trust_remote_code=True)({clip!r}, top_k=None)\n"
        "    print('GENRE', mode, sorted(s['label'] for s in scores), round(sum(s['score'] for s in scores), 4))\n"
        f"captioner = pipeline('music-captioning', model={str(tmp_path / 'caption')!r}, trust_remote_code=True)\n"
        f"print('CAPTION', captioner({clip!r}, max_new_tokens=5))\n"
    )
    check = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-3000:]
    for mode in ("frozen", "lora"):
        assert f"GENRE {mode} {sorted(labels)} 1.0" in check.stdout
    assert "CAPTION [{'generated_text':" in check.stdout
