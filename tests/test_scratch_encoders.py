"""audiocap's from-scratch encoders (SampleCNN, mel CNN, CLDNN, SoundNet, SoundNet + LSTM, spectrogram LSTM): uniform
hidden states, frame masks, the genre classifier's training step and save/load round trip, learning a toy task,
reloading trained encoders from a directory, and loading saved models with remote code only."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import LABELS, assert_same_state, encode_layers, featurize, tiny_t5_config, tone
from transformers import AutoModel, Wav2Vec2FeatureExtractor

from modeling_audiocap import (
    AudioCaptionConfig,
    AudioEncoderForGenreClassification,
    AudioEncoderT5ForCaptioning,
    AudioGenreConfig,
    MelCNNConfig,
    resolve_encoder,
)
from modeling_audiocap.encoder_families import SCRATCH_ENCODER_NAMES, encoder_family
from modeling_audiocap.modeling_scratch import SCRATCH_MODEL_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread


NAMES = ("samplecnn", "melcnn", "cldnn", "soundnet", "soundnet-lstm", "speclstm")
MODEL_TYPES = {
    "samplecnn": "audiocap_samplecnn",
    "melcnn": "audiocap_melcnn",
    "cldnn": "audiocap_cldnn",
    "soundnet": "audiocap_soundnet",
    "soundnet-lstm": "audiocap_soundnet",
    "speclstm": "audiocap_speclstm",
}
# Indices (in the hidden-state stack) of the LSTM layers of the encoders that have some.
LSTM_LAYERS = {
    "cldnn": lambda c: range(1, 1 + c.num_lstm_layers),
    "speclstm": lambda c: range(1, 1 + c.num_hidden_layers),
    "soundnet-lstm": lambda c: range(len(c.conv_dim), len(c.conv_dim) + c.lstm_layers),
}


def test_every_short_name_is_tested():
    from test_music2vec import MUSIC2VEC_NAMES  # the music2vec models at the paper's sizes: tested there

    assert set(SCRATCH_ENCODER_NAMES) == {f"audiocap/{name}" for name in (*NAMES, *MUSIC2VEC_NAMES)}


def padded_batch(resolved, seconds=(1.0, 0.6)) -> dict:
    """Two clips of different lengths through the encoder's own (trivial) feature extractor."""
    rate = resolved.sampling_rate
    audios = [tone(s, rate, 220.0 * (i + 1), seed=i) for i, s in enumerate(seconds)]
    return featurize(resolved.feature_extractor, audios)


def config_dict(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in ("_name_or_path", "dtype")}


def genre_model(name: str, **kwargs):
    resolved = resolve_encoder(f"audiocap/{name}")
    config = AudioGenreConfig(
        encoder=resolved.config, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        sampling_rate=resolved.sampling_rate, **kwargs,
    )
    return AudioEncoderForGenreClassification(config).eval(), resolved


@pytest.mark.parametrize("name", NAMES)
def test_hidden_states_share_one_shape(name):
    resolved = resolve_encoder(f"audiocap/{name}")
    config, model = resolved.config, resolved.model.eval()
    assert config.model_type == MODEL_TYPES[name] and isinstance(model, SCRATCH_MODEL_CLASSES[config.model_type])
    family = encoder_family(config)
    assert family.waveform
    assert resolved.num_layers == family.num_layers(config) == config.num_hidden_layers + 1
    assert resolved.hidden_size == family.layer_width(config) == config.hidden_size
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    extractor = resolved.feature_extractor
    assert isinstance(extractor, Wav2Vec2FeatureExtractor) and not extractor.do_normalize
    assert extractor.return_attention_mask and resolved.sampling_rate == extractor.sampling_rate == config.sampling_rate

    batch = padded_batch(resolved)
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
        plain = model(**batch)
        as_tuple = model(**batch, output_hidden_states=True, return_dict=False)
    assert len(out.hidden_states) == family.num_layers(config)
    frames = out.last_hidden_state.shape[1]
    assert frames >= 1
    assert {tuple(h.shape) for h in out.hidden_states} == {(2, frames, config.hidden_size)}
    assert all(torch.isfinite(h).all() for h in out.hidden_states)
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    assert plain.hidden_states is None
    torch.testing.assert_close(plain.last_hidden_state, out.last_hidden_state)
    assert len(as_tuple) == 2 and len(as_tuple[1]) == family.num_layers(config)

    hidden, mask, _ = encode_layers(model, config, batch["input_values"], batch["attention_mask"])
    assert hidden.shape == (2, family.num_layers(config), frames, config.hidden_size)
    assert mask.shape == (2, frames) and mask.dtype == torch.bool and mask[0].all()


def test_configs_reject_inconsistent_settings_and_take_overrides():
    with pytest.raises(Exception, match="stage_channels, layers_per_stage and stage_strides"):
        MelCNNConfig(stage_channels=[16, 32], layers_per_stage=[2, 2, 2])
    with pytest.raises(Exception, match="conv_dim needs num_hidden_layers"):
        resolve_encoder("audiocap/samplecnn", config_overrides={"num_hidden_layers": 3, "conv_dim": [8, 8]})
    with pytest.raises(ValueError, match="config_overrides only apply"):
        resolve_encoder(MelCNNConfig(), config_overrides={"hidden_size": 8})
    # Narrower blocks are projected to the common width; the hidden states stay one shape.
    resolved = resolve_encoder(
        "audiocap/melcnn", config_overrides={"stage_channels": [8, 16, 16, 32], "hidden_size": 32, "n_mels": 32}
    )
    assert resolved.hidden_size == 32 and resolved.config.n_mels == 32
    assert isinstance(resolved.model.projections[0], torch.nn.Linear)
    with torch.no_grad():
        out = resolved.model(**padded_batch(resolved), output_hidden_states=True)
    assert len({tuple(h.shape) for h in out.hidden_states}) == 1 and out.last_hidden_state.shape[-1] == 32
    lstm = resolve_encoder("audiocap/soundnet-lstm", config_overrides={"lstm_layers": 1, "lstm_bidirectional": True})
    assert lstm.num_layers == len(lstm.config.conv_dim) + 1


def test_log_frequency_front_end_shifts_every_interval_by_the_same_bands(tmp_path):
    """`frequency_scale="log"`: 12 bands per octave from 55 Hz (83 bands, 85 points over 7 octaves), so a note k semitones above 55 Hz peaks in band
    k - 1 at every pitch (a major third is 4 bands up, a minor third 3), no band is empty even where the bands are
    narrower than the FFT's bins, and the filterbank is saved and reloaded with the model."""
    overrides = {"frequency_scale": "log", "f_min": 55.0, "f_max": 7040.0, "n_mels": 83, "n_fft": 2048,
                 "win_length": 2048}
    model = resolve_encoder("audiocap/melcnn", config_overrides=overrides).model.eval()
    spectrogram = model.front_end.mel_spectrogram
    assert spectrogram.mel_scale.fb.shape == (1025, 83) and (spectrogram.mel_scale.fb.sum(0) > 0).all()

    def peak_band(semitones_above_55: int) -> int:
        wave = torch.from_numpy(tone(1.0, 16000, 55.0 * 2 ** (semitones_above_55 / 12)))
        return int(spectrogram(wave[None])[0].mean(-1).argmax())

    assert [peak_band(k) for k in (12, 24, 36, 48, 60)] == [11, 23, 35, 47, 59]
    c4 = peak_band(15)
    assert (peak_band(18) - c4, peak_band(19) - c4) == (3, 4)

    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.frequency_scale == "log"
    assert_same_state(model, reloaded)
    batch = {"input_values": torch.from_numpy(np.stack([tone(1.0, 16000, 220.0), tone(1.0, 16000, 330.0)]))}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).last_hidden_state, model(**batch).last_hidden_state)
    with pytest.raises(Exception, match="needs f_min > 0"):
        MelCNNConfig(frequency_scale="log")
    with pytest.raises(Exception, match="frequency_scale must be 'mel' or 'log'"):
        MelCNNConfig(frequency_scale="bark", f_min=55.0)


def test_attention_mask_maps_proportionally_onto_frames():
    model = resolve_encoder("audiocap/speclstm").model
    sample_mask = torch.zeros(5, 100, dtype=torch.long)
    for row, length in enumerate([100, 50, 1, 0, 55]):
        sample_mask[row, :length] = 1
    frame_mask = model._get_feature_vector_attention_mask(10, sample_mask)
    assert frame_mask.dtype == torch.bool and frame_mask.shape == (5, 10)
    assert frame_mask.sum(-1).tolist() == [10, 5, 1, 0, 6]
    # Valid frames are a prefix.
    assert torch.equal(frame_mask, torch.arange(10)[None] < frame_mask.sum(-1, keepdim=True))


@pytest.mark.parametrize("name", NAMES)
def test_frame_mask_of_a_padded_clip(name):
    resolved = resolve_encoder(f"audiocap/{name}")
    model, config = resolved.model.eval(), resolved.config
    batch = padded_batch(resolved, seconds=(2.0, 1.0))
    with torch.no_grad():
        hidden, mask, _ = encode_layers(model, config, batch["input_values"], batch["attention_mask"])
    frames = hidden.shape[2]
    assert mask[0].all()
    valid = int(mask[1].sum())
    assert 1 <= valid <= frames and abs(valid - frames / 2) <= 1
    if name in LSTM_LAYERS:
        # Packed LSTMs: the padded clip's outputs past its valid frames are exactly 0 in every LSTM layer.
        layers = list(LSTM_LAYERS[name](config))
        assert len(layers) >= 1 and torch.count_nonzero(hidden[0, layers]) > 0
        assert torch.count_nonzero(hidden[1, layers, valid:]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_genre_model_trains_and_round_trips(name, tmp_path):
    model, resolved = genre_model(name)
    batch = padded_batch(resolved)
    model.train()
    out = model(**batch, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and out.embeddings.shape == (2, resolved.hidden_size)
    out.loss.backward()
    assert model.layer_weighting.weight.grad is not None
    assert all(p.grad is not None for p in model.encoder.parameters()), "every encoder weight gets a gradient"
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    model.save_pretrained(tmp_path)
    loaded = AudioEncoderForGenreClassification.from_pretrained(tmp_path).eval()
    assert type(loaded.encoder) is type(model.encoder)
    assert config_dict(loaded.config.encoder) == config_dict(model.config.encoder)
    assert_same_state(model, loaded)
    with torch.no_grad():
        # Same weights bit for bit; float32 tolerance only for kernels that take another path on differently aligned
        # (memory-mapped) tensors, which moves LSTM outputs by ~1e-9.
        torch.testing.assert_close(loaded(**batch).logits, expected)


def toy_task(resolved, n: int = 8, seconds: float = 0.5, seed: int = 0):
    """Low tones (100-250 Hz) are class 0, high tones (2-4 kHz) class 1; random amplitudes, phases, a little noise."""
    rng = np.random.default_rng(seed)
    rate = resolved.sampling_rate
    t = np.arange(int(seconds * rate)) / rate
    labels = np.arange(n) % 2
    audios = []
    for label in labels:
        freq = rng.uniform(100, 250) if label == 0 else rng.uniform(2000, 4000)
        wave = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        audios.append((wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return featurize(resolved.feature_extractor, audios), torch.from_numpy(labels)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_steps_learn_low_vs_high_tones(name):
    resolved = resolve_encoder(f"audiocap/{name}")
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(
        resolved, {0: "low", 1: "high"}, head_hidden_size=32, head_dropout=0.0
    ).train()
    batch, labels = toy_task(resolved)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_saved_encoder_reloads_from_its_directory(name, tmp_path):
    resolved = resolve_encoder(f"audiocap/{name}")
    model = resolved.model
    # "Train" it a little so that the weights and BatchNorm statistics differ from any fresh initialisation.
    batch, _ = toy_task(resolved, n=4, seconds=0.3)
    model.train()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
        model(**batch)
    model.eval()
    with torch.no_grad():
        expected = model(**batch, output_hidden_states=True).hidden_states
    model.save_pretrained(tmp_path)
    resolved.feature_extractor.save_pretrained(tmp_path)

    reloaded = resolve_encoder(str(tmp_path))
    assert type(reloaded.model) is type(model) and config_dict(reloaded.config) == config_dict(model.config)
    assert (reloaded.num_layers, reloaded.hidden_size, reloaded.sampling_rate) == (
        resolved.num_layers, resolved.hidden_size, resolved.sampling_rate,
    )
    assert reloaded.feature_extractor.to_dict() == resolved.feature_extractor.to_dict()
    assert_same_state(model, reloaded.model)
    with torch.no_grad():
        hidden = reloaded.model.eval()(**batch, output_hidden_states=True).hidden_states
    for a, b in zip(hidden, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert type(AutoModel.from_pretrained(tmp_path)) is type(model)

    # A directory without a feature extractor gets the encoder's trivial one; the classifier takes the trained weights.
    (tmp_path / "preprocessor_config.json").unlink()
    again = resolve_encoder(str(tmp_path))
    assert again.feature_extractor.sampling_rate == resolved.sampling_rate and not again.feature_extractor.do_normalize
    classifier = AudioEncoderForGenreClassification.from_encoder_pretrained(str(tmp_path), id2label=LABELS)
    assert_same_state(model, classifier.encoder)


@pytest.mark.parametrize("name,connector", [("samplecnn", "t5_encoder"), ("cldnn", "cross_attention")])
def test_captioner_on_a_scratch_encoder(name, connector, tmp_path):
    resolved = resolve_encoder(f"audiocap/{name}")
    config = AudioCaptionConfig(
        encoder=resolved.config, text_config=tiny_t5_config(), sampling_rate=resolved.sampling_rate,
        connector=connector, time_reduction_stride=2,
    )
    model = AudioEncoderT5ForCaptioning(config).train()
    batch = padded_batch(resolved)
    out = model(**batch, labels=torch.tensor([[5, 6, 7, 1], [8, 9, 1, -100]]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    model.eval()
    generated = model.generate(**batch, max_new_tokens=4, do_sample=False)
    model.save_pretrained(tmp_path)
    loaded = AudioEncoderT5ForCaptioning.from_pretrained(tmp_path).eval()
    assert_same_state(model, loaded)
    torch.testing.assert_close(loaded.generate(**batch, max_new_tokens=4, do_sample=False), generated)


REMOTE_CODE_SCRIPT = r"""
import sys
sys.modules["modeling_audiocap"] = None  # the package is not available in this process
import numpy as np, torch
from transformers import AutoModel, AutoModelForAudioClassification

genre_dir, encoder_dir, out_path = sys.argv[1:4]
inputs = {k: torch.from_numpy(v) for k, v in np.load(genre_dir + "/inputs.npz").items()}
model = AutoModelForAudioClassification.from_pretrained(genre_dir, trust_remote_code=True).eval()
encoder = AutoModel.from_pretrained(encoder_dir, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert type(encoder).__module__.startswith("transformers_modules"), type(encoder).__module__
with torch.no_grad():
    logits = model(**inputs).logits
    hidden = encoder(**inputs, output_hidden_states=True).hidden_states
np.savez(out_path, logits=logits.numpy(), hidden=torch.stack(hidden, 1).numpy())
"""


def test_saved_models_with_a_scratch_encoder_load_with_remote_code_only(tmp_path):
    genre_dir, encoder_dir = tmp_path / "genre", tmp_path / "encoder"
    model, resolved = genre_model("melcnn")
    batch = padded_batch(resolved)
    model.save_pretrained(genre_dir)
    resolved.model.save_pretrained(encoder_dir)
    assert (genre_dir / "modeling_scratch.py").exists() and (genre_dir / "configuration_scratch.py").exists()
    assert (encoder_dir / "modeling_scratch.py").exists()
    np.savez(genre_dir / "inputs.npz", **{k: v.numpy() for k, v in batch.items()})
    with torch.no_grad():
        expected_logits = model(**batch).logits
        expected_hidden = torch.stack(resolved.model.eval()(**batch, output_hidden_states=True).hidden_states, 1)
    out_path = tmp_path / "out.npz"
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(genre_dir), str(encoder_dir), str(out_path)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = np.load(out_path)
    torch.testing.assert_close(torch.from_numpy(result["logits"]), expected_logits)
    torch.testing.assert_close(torch.from_numpy(result["hidden"]), expected_hidden)
