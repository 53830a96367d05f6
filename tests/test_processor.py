"""AudioCapFeatureExtractor and AudioCapProcessor: per-family outputs feeding the models, windows, labels, save/load,
the Auto classes, remote code."""

import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest
import torch
from conftest import (
    CAPTION_WORDS,
    LABELS,
    WITHOUT_PACKAGE,
    caption_model,
    genre_model,
    tiny_encoder_config,
    tone,
    word_tokenizer,
)
from transformers import AutoFeatureExtractor, AutoProcessor

from modeling_audiocap import (
    AudioCapFeatureExtractor,
    AudioCapProcessor,
    AudioDecodingError,
    average_windows,
    resolve_encoder,
)

def write_wav(path, audio: np.ndarray, rate: int, channels: int = 1) -> str:
    frames = np.repeat(audio[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes())
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three clips of different lengths, rates and channel counts: two wav files and a raw array."""
    root = tmp_path_factory.mktemp("clips")
    return [
        write_wav(root / "a.wav", tone(1.0, 44100, 330.0), 44100, channels=2),
        write_wav(root / "b.wav", tone(0.6, 22050, 550.0, seed=1), 22050),
        (tone(0.8, 8000, 440.0, seed=2), 8000),
    ]


# family -> expected {key: shape} for the three clips (whole clips, no windows)
EXPECTED = {
    "wav2vec2": {"input_values": (3, 16000)},  # group norm: trained without an attention mask
    "wav2vec2-layernorm": {"input_values": (3, 16000), "attention_mask": (3, 16000)},
    "mert": {"input_values": (3, 24000), "attention_mask": (3, 24000)},
    "whisper": {"input_features": (3, 80, 3000), "attention_mask": (3, 3000)},
    "ast": {"input_values": (3, 128, 32)},
    "clap": {"input_features": (3, 1, 1001, 64), "is_longer": (3, 1)},
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_outputs_per_family_feed_the_genre_model(family, clips):
    model, resolved = genre_model(family)
    processor = AudioCapFeatureExtractor(resolved.feature_extractor)
    assert processor.sampling_rate == resolved.sampling_rate
    batch = processor(clips)
    assert {k: tuple(v.shape) for k, v in batch.items()} == EXPECTED[family]
    if "attention_mask" in batch:
        lengths = batch["attention_mask"].sum(-1).tolist()
        assert lengths[0] > lengths[2] > lengths[1]  # 1.0 s, 0.8 s, 0.6 s
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (3, len(LABELS)) and torch.isfinite(logits).all()


def test_waveform_inputs_match_the_feature_extractor_on_decoded_audio(clips):
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2-layernorm"))
    processor = AudioCapFeatureExtractor(resolved.feature_extractor)
    waves = processor.load(clips)
    assert [w.shape[0] for w in waves] == [16000, 9600, 12800]
    expected = resolved.feature_extractor(
        [w.numpy() for w in waves],
        sampling_rate=16000, padding="longest", return_attention_mask=True, return_tensors="pt",
    )
    batch = processor(clips)
    torch.testing.assert_close(batch["input_values"], expected["input_values"])
    assert torch.equal(batch["attention_mask"], expected["attention_mask"])


def test_evaluation_windows_map_back_to_their_clips(clips):
    model, resolved = genre_model("wav2vec2-layernorm")
    processor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5, hop_seconds=0.25)
    batch = processor(clips)
    # 1.0 s -> starts 0, .25, .5; 0.6 s -> 0, .1; 0.8 s -> 0, .25, .3
    assert batch["window_clip_index"].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert batch["input_values"].shape == (8, 8000) and batch["attention_mask"].all()
    window_clip_index = batch.pop("window_clip_index")
    with torch.no_grad():
        window_logits = model(**batch).logits
    clip_logits = average_windows(window_logits, window_clip_index)
    assert clip_logits.shape == (3, len(LABELS))
    torch.testing.assert_close(clip_logits[1], window_logits[3:5].mean(0))


def test_short_clips_are_one_window_padded_by_the_feature_extractor():
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2-layernorm"))
    processor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=1.0)
    batch = processor([(tone(0.25, 16000), 16000), (tone(1.5, 16000), 16000)])
    assert batch["window_clip_index"].tolist() == [0, 1, 1]
    assert batch["attention_mask"].sum(-1).tolist() == [4000, 16000, 16000]


def test_random_crop_is_reproducible_and_one_window_per_clip(clips):
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2"))
    processor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5, normalize=True)

    def crop(seed):
        return processor(clips, random_crop=True, generator=torch.Generator().manual_seed(seed))

    first, again = crop(3), crop(3)
    assert set(first) == {"input_values"} and first["input_values"].shape == (3, 8000)
    torch.testing.assert_close(first["input_values"], again["input_values"])
    assert any(not torch.equal(first["input_values"], crop(s)["input_values"]) for s in range(4, 8))


def test_peak_normalisation_before_the_feature_extractor():
    resolved = resolve_encoder(tiny_encoder_config("whisper"))
    quiet, loud = (0.1 * tone(1.0, 16000), 16000), (tone(1.0, 16000), 16000)
    plain = AudioCapFeatureExtractor(resolved.feature_extractor)
    normalized = AudioCapFeatureExtractor(resolved.feature_extractor, normalize=True)
    assert plain.load(quiet)[0].abs().max() < 0.1
    assert normalized.load(quiet)[0].abs().max() == pytest.approx(1.0)
    features = normalized([quiet, loud])["input_features"]
    torch.testing.assert_close(features[0], features[1], atol=0.05, rtol=0)  # same clip up to its level
    silence = normalized((np.zeros(1600, dtype=np.float32), 16000))["input_features"]
    assert torch.isfinite(silence).all()


def test_captions_become_labels_padded_with_minus_100(clips):
    model, resolved = caption_model("wav2vec2-layernorm")
    processor = AudioCapProcessor(resolved.feature_extractor, word_tokenizer())
    batch = processor(clips, text=["calm piano", "loud guitar solo with drums", "a piano"])
    ids = {w: i for i, w in enumerate(CAPTION_WORDS)}
    assert batch["labels"].tolist() == [
        [ids["calm"], ids["piano"], -100, -100, -100],
        [ids["loud"], ids["guitar"], ids["solo"], ids["with"], ids["drums"]],
        [ids["a"], ids["piano"], -100, -100, -100],
    ]
    out = model(**batch)
    assert torch.isfinite(out.loss)
    assert processor(clips, text=["calm piano"] * 3, max_length=1)["labels"].shape == (3, 1)
    assert processor.batch_decode([[ids["calm"], ids["piano"]]]) == ["calm piano"]


def test_input_errors(clips, tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2"))
    processor = AudioCapFeatureExtractor(resolved.feature_extractor)
    with pytest.raises(ValueError, match="sampling_rate"):
        processor(tone(1.0, 16000))
    assert processor(tone(1.0, 16000), sampling_rate=16000)["input_values"].shape == (1, 16000)
    assert processor(np.stack([tone(1.0, 8000)] * 2), sampling_rate=8000)["input_values"].shape == (2, 16000)
    with pytest.raises(TypeError, match="needs the captioner's tokenizer"):
        AudioCapProcessor(resolved.feature_extractor)
    with pytest.raises(AudioDecodingError, match="missing.wav"):
        processor([clips[0], str(tmp_path / "missing.wav")])
    with pytest.raises(ValueError, match="hop_seconds"):
        AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=1.0, hop_seconds=2.0)
    with pytest.raises(ValueError, match="hop_seconds"):
        AudioCapProcessor(resolved.feature_extractor, word_tokenizer(), window_seconds=1.0, hop_seconds=2.0)
    with pytest.raises(ValueError, match="2 captions for 3 clips"):
        AudioCapProcessor(resolved.feature_extractor, word_tokenizer())(clips, text=["a", "a"])


def test_save_and_load_round_trip(clips, tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("mert"))
    processor = AudioCapProcessor(
        resolved.feature_extractor, word_tokenizer(), window_seconds=0.5, hop_seconds=0.25, normalize=True
    )
    expected = processor(clips, text=["calm piano", "loud guitar", "a solo"])
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["window_seconds"] == 0.5 and saved["hop_seconds"] == 0.25 and saved["normalize"] is True
    assert saved["feature_extractor"]["sampling_rate"] == 24000 and "tokenizer" not in saved
    loaded = AudioCapProcessor.from_pretrained(tmp_path)
    assert (loaded.window_seconds, loaded.hop_seconds, loaded.normalize) == (0.5, 0.25, True)
    assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
    assert loaded.tokenizer is not None and loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    got = loaded(clips, text=["calm piano", "loud guitar", "a solo"])
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])
    assert AudioCapProcessor.from_pretrained(tmp_path, window_seconds=1.0).window_seconds == 1.0


def test_feature_extractor_save_and_load_round_trip(clips, tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("mert"))
    extractor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5, hop_seconds=0.25, normalize=True)
    expected = extractor(clips)
    extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "AudioCapFeatureExtractor"
    assert saved["feature_extractor"]["feature_extractor_type"] == "Wav2Vec2FeatureExtractor"
    assert (saved["window_seconds"], saved["hop_seconds"], saved["normalize"]) == (0.5, 0.25, True)
    loaded = AudioCapFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.feature_extractor.to_dict() == resolved.feature_extractor.to_dict()
    got = loaded(clips)
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])
    assert AudioCapFeatureExtractor.from_pretrained(tmp_path, window_seconds=1.0).window_seconds == 1.0


def test_from_an_encoder_checkpoint_with_only_a_preprocessor_config(tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("whisper"))
    resolved.feature_extractor.save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)  # an encoder repo's own tokenizer (as Whisper's) is not the captioner's
    assert sorted(os.listdir(tmp_path)) == ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"]
    extractor = AudioCapFeatureExtractor.from_pretrained(tmp_path, window_seconds=10.0)
    assert type(extractor.feature_extractor) is type(resolved.feature_extractor)
    assert extractor.sampling_rate == 16000 and extractor.window_seconds == 10.0 and not extractor.normalize
    with pytest.raises(ValueError, match="no captioner's tokenizer"):
        AudioCapProcessor.from_pretrained(tmp_path)
    with_tokenizer = AudioCapProcessor.from_pretrained(tmp_path, tokenizer=word_tokenizer(), window_seconds=10.0)
    assert with_tokenizer.window_seconds == 10.0 and with_tokenizer.audio.window_seconds == 10.0
    assert AudioCapProcessor.from_pretrained(tmp_path, tokenizer=str(tmp_path)).tokenizer.get_vocab()["piano"] == 5


def test_the_auto_classes_find_them_on_saved_model_dirs(clips, tmp_path):
    model, resolved = genre_model("ast")
    extractor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=1.0)
    model.save_pretrained(tmp_path / "genre")
    extractor.save_pretrained(tmp_path / "genre")
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path / "genre")
    assert type(loaded) is AudioCapFeatureExtractor and loaded.window_seconds == 1.0
    torch.testing.assert_close(loaded(clips)["input_values"], extractor(clips)["input_values"])
    # a captioner's processor (the form genre models were saved in before the split): its audio side reads back
    caption, resolved = caption_model("wav2vec2-layernorm")
    processor = AudioCapProcessor(resolved.feature_extractor, word_tokenizer(), window_seconds=0.5, hop_seconds=0.25)
    caption.save_pretrained(tmp_path / "captioner")
    processor.save_pretrained(tmp_path / "captioner")
    assert type(AutoProcessor.from_pretrained(tmp_path / "captioner")) is AudioCapProcessor
    audio = AudioCapFeatureExtractor.from_pretrained(tmp_path / "captioner")
    assert (audio.window_seconds, audio.hop_seconds) == (0.5, 0.25)
    torch.testing.assert_close(audio(clips)["input_values"], processor(clips)["input_values"])


REMOTE_SCRIPT = WITHOUT_PACKAGE + r"""
import numpy as np, torch
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

model_dir, wav_path, out_path = sys.argv[1:4]
processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
audio = (np.sin(np.arange(6000) / 8000 * 2 * np.pi * 300).astype(np.float32), 8000)
batch = processor([wav_path, audio], text=["calm piano", "loud guitar solo"])
np.savez(out_path + ".npz", **{k: v.numpy() for k, v in batch.items()})
model = AutoModelForSpeechSeq2Seq.from_pretrained(model_dir, trust_remote_code=True).eval()
with torch.no_grad():
    loss = model(**batch).loss.item()
json.dump({"class": type(processor).__name__, "window_seconds": processor.window_seconds, "loss": loss,
           "has_tokenizer": processor.tokenizer is not None}, open(out_path, "w"))
"""


def test_saved_processor_loads_with_remote_code_only(tmp_path):
    model, resolved = caption_model("wav2vec2-layernorm")
    processor = AudioCapProcessor(resolved.feature_extractor, word_tokenizer(), window_seconds=2.0, normalize=True)
    model_dir = tmp_path / "captioner"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    assert json.loads((model_dir / "processor_config.json").read_text())["auto_map"] == {
        "AutoProcessor": "processing_audiocap.AudioCapProcessor"
    }
    assert (model_dir / "processing_audiocap.py").exists() and (model_dir / "audio.py").exists()
    wav_path = write_wav(tmp_path / "clip.wav", tone(1.5, 44100, 330.0), 44100, channels=2)
    audio = (np.sin(np.arange(6000) / 8000 * 2 * np.pi * 300).astype(np.float32), 8000)
    expected = processor([wav_path, audio], text=["calm piano", "loud guitar solo"])
    with torch.no_grad():
        expected_loss = model(**expected).loss.item()

    out_path = tmp_path / "result.json"
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(model_dir), wav_path, str(out_path)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out_path.read_text())
    assert result["class"] == "AudioCapProcessor" and result["window_seconds"] == 2.0 and result["has_tokenizer"]
    got = dict(np.load(str(out_path) + ".npz"))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value.numpy(), atol=1e-6)
    assert result["loss"] == pytest.approx(expected_loss, abs=1e-5)
