"""Contrastive pre-training: NT-Xent against a slow reference, reproducible augmentations, late fusion, and a tiny
train_contrastive.py run whose saved encoder reloads with the weights it was probed with."""

import importlib.util
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_script
from transformers import TrainingArguments

from modeling_audiocap import AudioCapFeatureExtractor, AudioEncoderForGenreClassification, resolve_encoder
from modeling_audiocap.training.arguments import AudioDataArguments, parse_with_config
from modeling_audiocap.training.augment import (
    AugmentationChain,
    Delay,
    FrequencyMasking,
    Gain,
    GaussianNoise,
    PitchShift,
    PolarityInversion,
    RandomFilter,
    Reverb,
    SpectrogramNoise,
    TimeMasking,
    attach_spectrogram_augmentation,
    clmr_augmentations,
    spectrogram_augmentations,
)
from modeling_audiocap.training.contrastive import (
    ContrastiveModel,
    clip_embeddings,
    fuse_embeddings,
    linear_probe,
    nt_xent_loss,
)
from modeling_audiocap.training.probe import class_scores

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's loss written out view by view."""
    views = [v / v.norm() for v in torch.cat([z1, z2]).double()]
    n = z1.shape[0]
    total = 0.0
    for i, anchor in enumerate(views):
        positive = (i + n) % (2 * n)
        numerator = math.exp(float(anchor @ views[positive]) / temperature)
        denominator = sum(math.exp(float(anchor @ views[k]) / temperature) for k in range(2 * n) if k != i)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_slow_reference(temperature):
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=generator), torch.randn(6, 5, generator=generator)
    loss = nt_xent_loss(z1, z2, temperature)
    assert loss.item() == pytest.approx(nt_xent_reference(z1, z2, temperature), rel=1e-5)


def test_nt_xent_is_lower_for_matched_pairs_and_differentiable():
    generator = torch.Generator().manual_seed(1)
    z1 = torch.randn(16, 8, generator=generator)
    z2 = z1 + 0.1 * torch.randn(16, 8, generator=generator)
    shuffled = z2[torch.randperm(16, generator=generator)]
    assert nt_xent_loss(z1, z2).item() < nt_xent_loss(z1, shuffled).item()
    z = z1.clone().requires_grad_()
    nt_xent_loss(z, z2).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        nt_xent_loss(z1, z2[:4])


def music(batch=4, seconds=0.5, seed=0) -> torch.Tensor:
    """Sums of a few random sines (peak 0.5) plus a little noise, `(batch, samples)`."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * RATE)) / RATE
    freqs = 200 + 800 * torch.rand(batch, 3, 1, generator=generator)
    wave = torch.sin(2 * math.pi * freqs * t).sum(1)
    wave = wave + 0.01 * torch.randn(wave.shape, generator=generator)
    return 0.5 * wave / wave.abs().amax(-1, keepdim=True)


WAVEFORM_AUGMENTATIONS = [
    PolarityInversion(1.0),
    GaussianNoise(1.0),
    Gain(1.0),
    RandomFilter(1.0, RATE),
    PitchShift(1.0),
    Delay(1.0, RATE),
    Reverb(1.0, RATE),
    clmr_augmentations(RATE, noise_p=0.5),
]


@pytest.mark.parametrize("augmentation", WAVEFORM_AUGMENTATIONS, ids=lambda a: type(a).__name__)
def test_waveform_augmentations_are_reproducible_and_keep_shapes(augmentation):
    x = music()
    a = augmentation(x, torch.Generator().manual_seed(3))
    b = augmentation(x, torch.Generator().manual_seed(3))
    c = augmentation(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    if not isinstance(augmentation, PolarityInversion):
        assert not torch.equal(a, c)


def test_gain_stays_within_minus_six_and_zero_db_and_p_selects_examples():
    x = music(batch=64)
    out = Gain(1.0)(x, torch.Generator().manual_seed(0))
    gain_db = 20 * torch.log10(out.abs().amax(-1) / x.abs().amax(-1))
    assert gain_db.min() >= -6.0 - 1e-4 and gain_db.max() <= 1e-4
    assert gain_db.max() - gain_db.min() > 3.0  # spread over the range, not one value
    assert torch.equal(Gain(0.0)(x, torch.Generator().manual_seed(0)), x)
    half = Gain(0.5, -6.0, -6.0)(x, torch.Generator().manual_seed(0))
    changed = (half != x).any(-1).float().mean().item()
    assert 0.2 < changed < 0.8


def test_delay_adds_one_echo_between_200_and_500_ms_without_raising_the_peak():
    click = torch.zeros(16, RATE)
    click[:, 100] = 1.0
    out = Delay(1.0, RATE)(click, torch.Generator().manual_seed(0))
    echo_at = out[:, 101:].abs().argmax(-1) + 101
    delay_ms = (echo_at - 100).float() * 1000 / RATE
    assert delay_ms.min() >= 199 and delay_ms.max() <= 501 and len(set(delay_ms.round().tolist())) > 1
    assert torch.allclose(out[:, 100], torch.full((16,), 1 / 1.5)) and out.abs().max() <= 1.0
    assert torch.allclose(out[torch.arange(16), echo_at], torch.full((16,), 0.5 / 1.5))


def test_reverb_spreads_a_click_into_a_decaying_tail_and_keeps_loudness():
    reverb = Reverb(1.0, RATE, rt60_s=(0.3, 0.3), wet=(0.5, 0.5))
    click = torch.zeros(4, RATE)
    click[:, 0] = 1.0
    out = reverb(click, torch.Generator().manual_seed(0))
    early, late = out[:, 1 : RATE // 20].pow(2).sum(-1), out[:, RATE // 5 : RATE // 4].pow(2).sum(-1)
    assert (early > 0).all() and (late < early / 100).all()  # the tail decays (60 dB by 0.3 s)
    x = music()
    wet = Reverb(1.0, RATE)(x, torch.Generator().manual_seed(1))
    rms_ratio = wet.pow(2).mean(-1).sqrt() / x.pow(2).mean(-1).sqrt()
    assert ((rms_ratio > 0.5) & (rms_ratio < 1.5)).all()


def test_pitch_shift_moves_a_tone_by_at_most_five_semitones():
    t = torch.arange(RATE) / RATE
    tone = 0.5 * torch.sin(2 * math.pi * 440.0 * t).repeat(8, 1)
    shifted = PitchShift(1.0, max_semitones=5.0)(tone, torch.Generator().manual_seed(0))
    peaks = torch.fft.rfft(shifted).abs().argmax(-1).float()  # 1 Hz bins over one second
    semitones = 12 * torch.log2(peaks / 440.0)
    assert semitones.abs().max() <= 5.05 and semitones.abs().max() > 1.0


@pytest.mark.parametrize(
    "augmentation",
    [TimeMasking(1.0, 10), FrequencyMasking(1.0, 6), SpectrogramNoise(1.0), spectrogram_augmentations(1.0, 1.0, 1.0)],
    ids=lambda a: type(a).__name__,
)
def test_spectrogram_augmentations_are_reproducible_and_keep_shapes(augmentation):
    spec = -40 + 10 * torch.randn(3, 32, 50, generator=torch.Generator().manual_seed(0))
    a = augmentation(spec, torch.Generator().manual_seed(5))
    b = augmentation(spec, torch.Generator().manual_seed(5))
    assert a.shape == spec.shape and torch.equal(a, b) and not torch.equal(a, spec)
    with pytest.raises(ValueError):
        augmentation(spec[0], torch.Generator().manual_seed(5))


def test_spectrogram_augmentation_hook_runs_in_training_mode_only():
    encoder = resolve_encoder("audiocap/melcnn").model
    calls = []

    class Spy(torch.nn.Module):
        def forward(self, batch, generator=None):
            calls.append(batch.shape)
            return batch

    handle = attach_spectrogram_augmentation(encoder, AugmentationChain([Spy()]))
    x = music(batch=2)
    encoder.train()
    encoder(input_values=x)
    encoder.eval()
    encoder(input_values=x)
    assert len(calls) == 1 and calls[0][:2] == (2, encoder.config.n_mels)
    handle.remove()
    assert attach_spectrogram_augmentation(resolve_encoder("audiocap/samplecnn").model, AugmentationChain([])) is None


def test_saved_encoder_reloads_identically_and_goes_under_a_genre_head(tmp_path):
    overrides = {"hidden_size": 16, "sampling_rate": RATE}
    model = ContrastiveModel.from_encoder("audiocap/samplecnn", overrides, projection_dim=8)
    with torch.no_grad():
        for param in model.encoder.parameters():
            param.add_(0.01)  # not the default initialisation
    assert model(music(batch=3)).shape == (3, 8)
    path = model.save_encoder(tmp_path / "encoder")
    loaded = resolve_encoder(str(path))
    assert loaded.sampling_rate == RATE and loaded.hidden_size == 16
    saved, reloaded = model.encoder.state_dict(), loaded.model.state_dict()
    assert saved.keys() == reloaded.keys()
    assert all(torch.equal(saved[k], reloaded[k]) for k in saved)
    classifier = AudioEncoderForGenreClassification.from_encoder_pretrained(str(path), id2label={0: "a", 1: "b"})
    assert classifier(input_values=music(batch=2)).logits.shape == (2, 2)


def test_clip_embeddings_and_late_fusion():
    resolved = resolve_encoder("audiocap/samplecnn", config_overrides={"hidden_size": 16, "sampling_rate": RATE})
    encoder, extractor = resolved.model, resolved.feature_extractor
    waves = [music(batch=1, seconds=s, seed=i)[0].numpy() for i, s in enumerate((0.3, 1.0, 1.7))]
    last = clip_embeddings(encoder, waves, AudioCapFeatureExtractor(extractor, window_seconds=0.5))
    every = clip_embeddings(encoder, waves, AudioCapFeatureExtractor(extractor, window_seconds=0.5, hop_seconds=0.25), "all")
    assert last.shape == (3, 16) and every.shape == (3, 16 * (encoder.config.num_hidden_layers + 1))
    fused = fuse_embeddings([last, torch.as_tensor(every)])
    assert fused.shape == (3, 16 + every.shape[1])
    np.testing.assert_array_equal(fused[:, :16], last)
    with pytest.raises(ValueError):
        fuse_embeddings([last, every[:2]])


def test_contrastive_views_and_probe_windows_are_featurised_as_every_other_path(tmp_path):
    """A wav2vec2-family encoder normalises its input: pre-training views and probe windows get that normalisation
    (the feature extractor, through the processor), and the probe's clip embeddings are the extraction engine's."""
    import soundfile as sf
    from conftest import tiny_encoder_config, tone

    from modeling_audiocap import extract_embeddings
    from modeling_audiocap.training.collators import TwoViewCollator

    resolved = resolve_encoder(tiny_encoder_config("wav2vec2"))
    processor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5, hop_seconds=0.3)
    wave = 0.2 + 0.3 * tone(1.3, 16000, 330.0)  # an offset and a scale the feature extractor removes
    views = TwoViewCollator([{"waveform": wave}], lambda crops, generator: crops, 0, processor)([0])
    assert views["view1"].shape == (1, 8000)
    for view in views.values():
        assert abs(float(view.mean())) < 1e-3 and abs(float(view.std()) - 1.0) < 1e-2
    path = tmp_path / "clip.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    probe = clip_embeddings(resolved.model, [wave], processor, layers="all")
    engine = extract_embeddings([str(path)], resolved, tmp_path / "out", window_seconds=0.5, hop_seconds=0.3,
                                batch_size=2, dtype="float32", device="cpu", progress=False).with_format("numpy")
    windows = np.asarray(engine["embeddings"][0])  # (windows, layers, width)
    assert windows.shape[0] == 4  # at 0, 0.3 and 0.6 s, and the last aligned to the end
    np.testing.assert_allclose(probe[0], windows.mean(axis=0).reshape(-1), rtol=1e-4, atol=1e-5)


def test_linear_probe_separates_separable_classes():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 4

    def split(n):
        labels = np.arange(n) % 3
        return centers[labels] + rng.normal(size=(n, 8)), labels

    result = linear_probe(split(60), split(30), split(30))
    assert result["accuracy"] > 0.9 and result["best_c"] in [float(c) for c in result["validation_accuracy_by_c"]]
    assert result["map"] > 0.9 and result["roc_auc"] > 0.95


def test_a_class_missing_from_the_probe_training_set_scores_zero():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x_train, y_train = rng.normal(size=(40, 4)), np.arange(40) % 3 * 2  # classes 0, 2, 4; 1 and 3 only in test
    x_test, y_test = rng.normal(size=(10, 4)), np.arange(10) % 5
    scores = class_scores(LogisticRegression().fit(x_train, y_train), x_test, 5)
    assert scores.shape == (10, 5) and not scores[:, [1, 3]].any()
    np.testing.assert_allclose(scores.sum(1), 1.0)
    result = linear_probe((x_train, y_train), (x_test, y_test), (x_test, y_test))
    assert 0.0 < result["map"] < 1.0 and 0.0 < result["roc_auc"] < 1.0


def load_script():
    spec = importlib.util.spec_from_file_location("train_contrastive", ROOT / "train_contrastive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["demo-contrastive", "clmr-gtzan", "samplecnn-contrastive-fma"])
def test_configs_parse(name):
    script = load_script()
    args, data, training = parse_with_config(
        (script.ContrastiveArguments, AudioDataArguments, TrainingArguments),
        ["--config", str(ROOT / "configs" / f"{name}.yaml")],
    )
    assert args.encoder_name_or_path and training.output_dir.startswith("runs/")
    assert training.per_device_train_batch_size == 48 and training.max_grad_norm == 0.0
    if name == "clmr-gtzan":
        assert args.crop_samples == 59049 and data.split_protocol == "filtered" and data.max_length_seconds == 5.0
        assert args.config_overrides()["sampling_rate"] == 22050
    if name == "samplecnn-contrastive-fma":
        assert data.max_length_seconds == 3.0 and data.window_overlap == 0.5 and data.dataset_config_name == "small"


def contrastive_run(monkeypatch, tmp_path, out, *extra) -> None:
    monkeypatch.chdir(tmp_path)
    run_script(
        monkeypatch, "train_contrastive", "--encoder_name_or_path", "audiocap/samplecnn",
        "--encoder_config_overrides", "{hidden_size: 16, num_hidden_layers: 6, sampling_rate: 16000}",
        "--dataset_name", "builtin", "--builtin_dir", str(tmp_path / "set"), "--builtin_clips_per_genre", "4",
        "--builtin_seconds", "1.5", "--max_length_seconds", "1.0", "--decoded_cache_dir", str(tmp_path / "decoded"),
        "--crop_seconds", "0.5", "--num_train_epochs", "2", "--learning_rate", "1e-3", "--projection_dim", "8",
        "--num_threads", "1", "--seed", "3", "--output_dir", str(out), *extra,
    )


@pytest.mark.slow
def test_train_contrastive_tiny_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    contrastive_run(monkeypatch, tmp_path, out, "--per_device_train_batch_size", "6", "--logging_steps", "1")
    results = json.loads((out / "results.json").read_text())
    probe = results["linear_probe"]
    for name in ("pretrained", "random_init"):
        assert (probe[f"{name}_accuracy"] * 6).is_integer()  # a share of the 6 test clips
        for key in ("accuracy", "map", "roc_auc"):
            assert probe[f"{name}_{key}"] == probe[name][key]
    assert probe["margin"] == probe["pretrained_accuracy"] - probe["random_init_accuracy"]
    assert results["steps"] == 4 and len(results["loss_curve"]["step_loss"]) == 4
    assert results["split_sizes"] == {"train": 12, "validation": 6, "test": 6}
    assert results["config"]["contrastive"]["temperature"] == 0.5 and results["versions"]["torch"]
    assert (out / "loss_curve.png").stat().st_size > 0

    # The encoder directory loads as a normal encoder, with the weights the probe saw: its embeddings give the same
    # probe, to the validation accuracy of every C.
    loaded = resolve_encoder(str(out / "encoder"))
    assert loaded.config.model_type == "audiocap_samplecnn" and loaded.hidden_size == 16
    from modeling_audiocap.data.genre import load_genre_dataset
    from modeling_audiocap.training.genre_data import decode_dataset

    splits = load_genre_dataset(str(tmp_path / "set"), label_column_name="genre")
    data = {}
    for split, ds in splits.items():
        decoded = decode_dataset(ds, RATE)[0]
        processor = AudioCapFeatureExtractor(loaded.feature_extractor, window_seconds=1.0)
        data[split] = (clip_embeddings(loaded.model, decoded["waveform"], processor), np.asarray(decoded["label"]))
    again = linear_probe(data["train"], data["validation"], data["test"])
    assert again["accuracy"] == probe["pretrained_accuracy"] and again["map"] == probe["pretrained_map"]
    assert again["validation_accuracy_by_c"] == probe["pretrained"]["validation_accuracy_by_c"]


def test_two_view_collator_draws_by_seed_epoch_and_batch():
    from modeling_audiocap.training.collators import TwoViewCollator

    rows = [{"waveform": music(batch=1, seconds=1.0, seed=i)[0].numpy()} for i in range(4)]
    processor = AudioCapFeatureExtractor(resolve_encoder("audiocap/samplecnn").feature_extractor, window_seconds=0.25)
    collator = TwoViewCollator(rows, clmr_augmentations(RATE, noise_p=0.5), seed=0, processor=processor)
    first = collator([0, 2])
    view = processor.window_samples  # 0.25 s at the encoder's rate
    assert first["view1"].shape == first["view2"].shape == (2, view)
    assert not torch.equal(first["view1"], first["view2"])
    again = TwoViewCollator(rows, clmr_augmentations(RATE, noise_p=0.5), 0, processor)([0, 2])
    assert all(torch.equal(first[k], again[k]) for k in first)  # no running state: a fresh copy draws the same
    collator.epoch = 1
    assert not torch.equal(collator([0, 2])["view1"], first["view1"])
    short = TwoViewCollator([{"waveform": rows[0]["waveform"][: view // 2]}], lambda crops, generator: crops, 0, processor)
    assert short([0])["view1"].shape == (1, view)  # a clip shorter than a view: zero-padded to its length


@pytest.mark.slow
def test_a_resumed_contrastive_run_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch, caplog):
    """Killed after its first epoch (its last checkpoint gone) and resumed, with another number of DataLoader workers,
    a run draws the same views in the same steps and ends with the same encoder."""
    from safetensors.torch import load_file

    settings = ("--per_device_train_batch_size", "4", "--save_strategy", "epoch")
    contrastive_run(monkeypatch, tmp_path, tmp_path / "whole", *settings)
    contrastive_run(monkeypatch, tmp_path, tmp_path / "resumed", *settings, "--dataloader_num_workers", "1")
    checkpoints = sorted((tmp_path / "resumed").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert len(checkpoints) == 2
    shutil.rmtree(checkpoints[-1])
    shutil.rmtree(tmp_path / "resumed" / "encoder")
    caplog.set_level(logging.INFO)
    contrastive_run(monkeypatch, tmp_path, tmp_path / "resumed", *settings)
    assert f"Resuming from {checkpoints[0]}" in caplog.text
    whole = load_file(tmp_path / "whole" / "encoder" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "encoder" / "model.safetensors")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
