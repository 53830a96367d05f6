"""Tiny encoder configs built in code, shared test audio, and an offline Hub."""

import csv
import importlib.util
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest
import torch
from transformers import ASTConfig, ClapAudioConfig, HubertConfig, T5Config, Wav2Vec2Config, WhisperConfig

from modeling_audiocap import (
    AudioCaptionConfig,
    AudioEncoderForGenreClassification,
    AudioEncoderT5ForCaptioning,
    AudioGenreConfig,
    MERTConfig,
    resolve_encoder,
)
from modeling_audiocap.data import musiccaps

WAVEFORM_KWARGS = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16, 16),
    conv_stride=(5, 4, 4),
    conv_kernel=(10, 4, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    vocab_size=16,
)


def tiny_encoder_config(family: str):
    """A tiny, randomly initialisable config of each supported encoder family."""
    if family == "wav2vec2":
        return Wav2Vec2Config(**WAVEFORM_KWARGS)
    if family == "wav2vec2-layernorm":
        return Wav2Vec2Config(**WAVEFORM_KWARGS, feat_extract_norm="layer", do_stable_layer_norm=True)
    if family == "hubert":
        return HubertConfig(**WAVEFORM_KWARGS)
    if family == "mert":
        return MERTConfig(**WAVEFORM_KWARGS)
    if family == "whisper":
        return WhisperConfig(
            d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
            decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80, vocab_size=51865,
        )
    if family == "ast":
        return ASTConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_length=128,
            num_mel_bins=32,
        )
    if family == "clap":
        return ClapAudioConfig(
            depths=[1, 1], num_attention_heads=[2, 2], hidden_size=64, projection_dim=16,
            patch_embeds_hidden_size=32, num_mel_bins=64, spec_size=256, patch_size=4, window_size=8,
        )
    raise ValueError(family)


ENCODER_FAMILIES = ("wav2vec2", "hubert", "mert", "whisper", "ast", "clap")


def tiny_t5_config(vocab_size: int = 64) -> T5Config:
    return T5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )


def tone(seconds: float, rate: int, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A sine with a little noise, float32 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: whole training or multi-process runs (`make test-latest` skips them)")


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    """A tiny wav2vec2 encoder checkpoint (model + feature extractor) in a folder, as the scripts take one."""
    from modeling_audiocap import resolve_encoder

    path = tmp_path_factory.mktemp("encoder")
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2"))
    resolved.model.save_pretrained(path)
    resolved.feature_extractor.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def featurize(feature_extractor, audios: list[np.ndarray]) -> dict:
    """Run an encoder's own feature extractor on a list of mono clips at its rate."""
    kwargs = {"padding": True} if hasattr(feature_extractor, "do_normalize") else {}
    out = feature_extractor(audios, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt", **kwargs)
    return dict(out)


def encode_layers(model, config, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
    """`encode_layers` of `config`'s encoder family: `(B, L, T, D)` layers, `(B, T)` frame mask, encoder output."""
    from modeling_audiocap.encoder_families import encoder_family

    return encoder_family(config).encode_layers(model, inputs, attention_mask, **kwargs)


# The head of a script run in a subprocess where the audiocap package cannot be imported (remote-code loading).
WITHOUT_PACKAGE = r"""
import json, sys
sys.modules["modeling_audiocap"] = None  # the package is not available in this process
try:
    import modeling_audiocap  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("modeling_audiocap should not be importable here")
"""


ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    """A training script (`train_genre`, ...) imported as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(monkeypatch, name: str, *args: str) -> None:
    """`python <name>.py <args>` in this process: the imports are paid once per test session. A run's thread setting
    (`--num_threads`) ends with it; relative default paths resolve against the current folder (`monkeypatch.chdir`
    to the test's own)."""
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    threads = torch.get_num_threads()
    try:
        script(name).main()
    finally:
        torch.set_num_threads(threads)


# -- helpers the test modules share ----------------------------------------------------------------------------------

LABELS = {0: "rock", 1: "jazz", 2: "ambient"}



CAPTION_WORDS = ["<pad>", "</s>", "<unk>", "a", "calm", "piano", "loud", "guitar", "solo", "with", "drums"]


def word_tokenizer(words: list[str] = CAPTION_WORDS):
    """A word-level tokenizer built in code, `<pad>`, `</s>` and `<unk>` first (ids < the tiny T5's vocabulary of 64
    for the default words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def genre_model(family: str, **kwargs) -> tuple[AudioEncoderForGenreClassification, object]:
    resolved = resolve_encoder(tiny_encoder_config(family))
    config = AudioGenreConfig(
        encoder=resolved.config, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        sampling_rate=resolved.sampling_rate, **kwargs,
    )
    return AudioEncoderForGenreClassification(config).eval(), resolved


def caption_model(family: str, **kwargs):
    resolved = resolve_encoder(tiny_encoder_config(family))
    config = AudioCaptionConfig(
        encoder=resolved.config, text_config=tiny_t5_config(), sampling_rate=resolved.sampling_rate, **kwargs
    )
    return AudioEncoderT5ForCaptioning(config).eval(), resolved


def batch_for(resolved, seconds: float = 1.0, n: int = 2) -> dict:
    audios = [tone(seconds, resolved.sampling_rate, 220.0 * (i + 1), seed=i) for i in range(n)]
    return featurize(resolved.feature_extractor, audios)


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=f"{key} differs after loading")


def write_wav(path, audio: np.ndarray, rate: int) -> None:
    """16-bit PCM; `audio` is `(samples,)` or `(samples, channels)`."""
    audio = audio if audio.ndim == 2 else audio[:, None]
    with wave.open(str(path), "wb") as f:
        f.setnchannels(audio.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def write_float_wav(path, audio: np.ndarray, rate: int) -> None:
    """32-bit float WAV (format 3), which can hold NaN; the stdlib `wave` module only writes PCM."""
    payload = audio.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def ffmpeg(src, dst, *args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True, timeout=60)


YTID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"



def make_ytids(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = ["-" + "".join(rng.choice(list(YTID_CHARS), 10))]  # YouTube ids may start with "-"
    while len(ids) < n:
        ids.append("".join(rng.choice(list(YTID_CHARS), 11)))
    return ids


def write_musiccaps_csv(path: Path, ytids: list[str], spans=None, eval_every: int = 2) -> list[dict]:
    rows = []
    for i, ytid in enumerate(ytids):
        start, end = spans[i] if spans else (30.0, 40.0)
        rows.append({
            "ytid": ytid, "start_s": f"{start:g}", "end_s": f"{end:g}", "audioset_positive_labels": "/m/04rlf",
            "aspect_list": "['low quality', 'piano', \"player's hum\"]",
            "caption": f'Clip {i}: a "calm" piano, slow, with hum.', "author_id": str(i % 9),
            "is_balanced_subset": "False", "is_audioset_eval": "True" if i % eval_every == 0 else "False",
        })
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=musiccaps.CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models (`pytestmark = pytest.mark.usefixtures("one_thread")`): one intra-op thread is as fast, and it does not stall (OpenMP barriers) when other
    processes busy the machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
