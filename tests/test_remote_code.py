"""A saved model loads with trust_remote_code=True in a process where the audiocap package cannot be imported."""

import json
import subprocess
import sys
import wave

import numpy as np
import torch
from conftest import LABELS, WITHOUT_PACKAGE, caption_model, featurize, genre_model, tone

SCRIPT = WITHOUT_PACKAGE + r"""
import numpy as np, torch
from safetensors.torch import load_file
from transformers import AutoModelForAudioClassification, AutoModelForSpeechSeq2Seq, pipeline

genre_dir, caption_dir, wav_path, out_path = sys.argv[1:5]
result = {}
inputs = dict(np.load(genre_dir + "/inputs.npz"))
model = AutoModelForAudioClassification.from_pretrained(genre_dir, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
saved = load_file(genre_dir + "/model.safetensors")
loaded = model.state_dict()
result["genre_keys_equal"] = sorted(saved) == sorted(loaded)
result["genre_weights_equal"] = all(torch.equal(saved[k], loaded[k]) for k in saved)
with torch.no_grad():
    result["genre_logits"] = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.tolist()
classifier = pipeline("audio-classification", model=genre_dir, trust_remote_code=True)
result["pipeline"] = classifier(wav_path, top_k=3)

caption_inputs = dict(np.load(caption_dir + "/inputs.npz"))
captioner = AutoModelForSpeechSeq2Seq.from_pretrained(caption_dir, trust_remote_code=True).eval()
# the captioner's audio projection is saved under its former name, `projection.*` (mapped on load and save)
saved = {k.replace("projection.", "audio_projection.", 1) if k.startswith("projection.") else k: v
         for k, v in load_file(caption_dir + "/model.safetensors").items()}
loaded = captioner.state_dict()
result["caption_weights_equal"] = all(torch.equal(saved[k], loaded[k]) for k in saved)
result["caption_missing"] = sorted(set(loaded) - set(saved))
ids = captioner.generate(**{k: torch.from_numpy(v) for k, v in caption_inputs.items()}, max_new_tokens=6, do_sample=False)
result["caption_ids"] = ids.tolist()
json.dump(result, open(out_path, "w"))
"""


def write_wav(path, audio: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def test_saved_models_load_with_remote_code_only(tmp_path):
    genre_dir, caption_dir = tmp_path / "genre", tmp_path / "caption"
    model, resolved = genre_model("mert")
    batch = featurize(resolved.feature_extractor, [tone(1.0, 24000, 330.0)])
    model.save_pretrained(genre_dir)
    resolved.feature_extractor.save_pretrained(genre_dir)
    np.savez(genre_dir / "inputs.npz", **{k: v.numpy() for k, v in batch.items()})
    with torch.no_grad():
        expected_logits = model(**batch).logits
    config = json.loads((genre_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForAudioClassification"].endswith("AudioEncoderForGenreClassification")
    assert (genre_dir / "modeling_mert.py").exists() and (genre_dir / "encoder_families.py").exists()
    assert (genre_dir / "encoder_families.py").exists()

    captioner, cresolved = caption_model("wav2vec2")
    cbatch = featurize(cresolved.feature_extractor, [tone(1.0, 16000, 500.0)])
    captioner.save_pretrained(caption_dir)
    np.savez(caption_dir / "inputs.npz", **{k: v.numpy() for k, v in cbatch.items()})
    expected_ids = captioner.generate(**cbatch, max_new_tokens=6, do_sample=False)

    wav_path = tmp_path / "clip.wav"
    write_wav(wav_path, tone(1.5, 44100, 330.0), 44100)
    out_path = tmp_path / "result.json"
    env_cache = {"HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    import os

    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(genre_dir), str(caption_dir), str(wav_path), str(out_path)],
        env={**os.environ, **env_cache}, capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out_path.read_text())
    assert result["genre_keys_equal"] and result["genre_weights_equal"]
    torch.testing.assert_close(torch.tensor(result["genre_logits"]), expected_logits)
    assert {p["label"] for p in result["pipeline"]} == set(LABELS.values())
    assert abs(sum(p["score"] for p in result["pipeline"]) - 1.0) < 1e-4
    assert result["caption_weights_equal"]
    assert result["caption_ids"] == expected_ids.tolist()
