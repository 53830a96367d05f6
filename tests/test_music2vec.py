"""The music2vec models (Srinivasa & Hebbar 2017, supervised genre classification on FMA-small) as named encoders:
each at the paper's sizes with the shapes the paper gives, the auto-encoder's joint reconstruction + classification
loss, and each paper preset (`configs/paper-fma-music2vec-*.yaml`) trained end to end through train_genre.py on the
built-in set."""

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

from conftest import LABELS, assert_same_state, script

from modeling_audiocap import AudioEncoderForGenreClassification, AudioGenreConfig, resolve_encoder, window_starts
from modeling_audiocap.configuration_scratch import MUSIC2VEC_PRESETS, ConvAutoEncoderConfig
from modeling_audiocap.encoder_families import SCRATCH_ENCODER_NAMES
from modeling_audiocap.modeling_scratch import ConvAutoEncoderModel
from modeling_audiocap.training.arguments import AudioDataArguments, EncoderArguments, parse_with_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one intra-op thread


ROOT = Path(__file__).resolve().parents[1]
MUSIC2VEC_NAMES = (
    "music2vec-lstm",
    "music2vec-cldnn",
    "music2vec-autoencoder",
    "music2vec-soundnet",
    "music2vec-soundnet-lstm",
    "music2vec-soundnet-deep",
)
PRESETS = sorted(p.name for p in (ROOT / "configs").glob("paper-fma-music2vec-*.yaml"))


def segment_seconds(name: str) -> float:
    """The paper's segments: 3 s of 44.1 kHz audio for the spectrogram models, 3.75 s of 8 kHz for SoundNet's."""
    return 3.75 if "soundnet" in name else 3.0


def segments(name: str, batch: int = 2) -> tuple[object, dict]:
    """The named encoder (eval mode) and `batch` random segments of the paper's length at its rate."""
    resolved = resolve_encoder(f"audiocap/{name}")
    samples = int(round(segment_seconds(name) * resolved.sampling_rate))
    return resolved.model.eval(), {"input_values": 0.1 * torch.randn(batch, samples)}


@torch.no_grad()
def outputs_of(model, modules, inputs: dict) -> tuple[list[torch.Tensor], object]:
    """What each of `modules` returns during one forward pass of `model`, and the model's output."""
    seen = []
    hooks = [module.register_forward_hook(lambda _module, _args, out: seen.append(out)) for module in modules]
    try:
        output = model(**inputs, output_hidden_states=True)
    finally:
        for hook in hooks:
            hook.remove()
    return seen, output


def shapes(tensors) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in tensors]


def test_every_music2vec_model_is_a_short_name_at_the_papers_rate():
    assert set(MUSIC2VEC_PRESETS) == set(MUSIC2VEC_NAMES)
    assert {f"audiocap/{name}" for name in MUSIC2VEC_NAMES} <= set(SCRATCH_ENCODER_NAMES)
    for name in MUSIC2VEC_NAMES:
        config = SCRATCH_ENCODER_NAMES[f"audiocap/{name}"]()
        assert config.sampling_rate == (8000 if "soundnet" in name else 44100), name
    # Overrides still apply on top of the paper's sizes.
    assert SCRATCH_ENCODER_NAMES["audiocap/music2vec-cldnn"](hidden_size=120, lstm_dropout=0.1).lstm_dropout == 0.1


def test_lstm_baseline_reads_120_band_frames_into_one_lstm_of_256():
    model, inputs = segments("music2vec-lstm")
    (spectrogram,), out = outputs_of(model, [model.front_end], inputs)
    assert spectrogram.shape == (2, 120, 300)  # 3 s at 44.1 kHz: 120 mel bands x 300 frames
    assert isinstance(model.input_projection, torch.nn.Identity) and len(model.lstm.layers) == 1
    lstm = model.lstm.layers[0]
    assert (lstm.input_size, lstm.hidden_size, lstm.proj_size) == (120, 256, 0)
    assert shapes(out.hidden_states) == [(2, 300, 256)] * 2


def test_cldnn_convolves_over_frequency_into_a_300_by_120_sequence():
    model, inputs = segments("music2vec-cldnn")
    convs = [block[1] for block in model.convs]  # each block: same-padding, Conv2d, BatchNorm, ReLU(, MaxPool)
    assert all(conv.kernel_size == (2, 1) and conv.out_channels == 4 for conv in convs)
    assert [block[-1].kernel_size for block in model.convs[:2]] == [(2, 1)] * 2  # 2 pools over frequency only
    blocks, out = outputs_of(model, model.convs, inputs)
    assert shapes(blocks) == [(2, 4, 60, 300), (2, 4, 30, 300), (2, 4, 30, 300)]
    # (4 maps x 30 bands) per frame, reshaped to (300, 120) with no reduction layer, is the LSTM's input sequence.
    sequence = blocks[-1].permute(0, 3, 1, 2).flatten(2)
    assert sequence.shape == (2, 300, 120)
    torch.testing.assert_close(out.hidden_states[0], sequence)
    assert [(lstm.input_size, lstm.hidden_size) for lstm in model.lstm.layers] == [(120, 120)] * 2
    assert not model.dense and shapes(out.hidden_states) == [(2, 300, 120)] * 3


def test_autoencoder_encodes_to_10_by_25_by_128_and_a_250_latent_and_reconstructs_its_input():
    model, inputs = segments("music2vec-autoencoder")
    (spectrogram, *blocks, latent), out = outputs_of(model, [model.front_end, *model.convs, model.latent], inputs)
    assert spectrogram.shape == (2, 120, 300)
    assert shapes(blocks) == [(2, 16, 60, 150), (2, 32, 30, 75), (2, 64, 10, 25), (2, 128, 10, 25)]
    assert latent.shape == (2, 250) and model.latent[1].in_features == 128 * 10 * 25
    assert out.reconstruction.shape == spectrogram.shape
    assert shapes(out.hidden_states) == [(2, 1, 250)] * 5  # 4 blocks, then the latent: one frame per segment
    torch.testing.assert_close(out.last_hidden_state[:, 0], latent)
    expected = torch.nn.functional.mse_loss(out.reconstruction, spectrogram)
    torch.testing.assert_close(out.auxiliary_loss, expected)


@pytest.mark.parametrize(
    "name,conv_shapes",
    [
        ("music2vec-soundnet", [(16, 1872), (32, 116), (64, 109), (128, 102), (256, 33), (512, 15), (1024, 6)]),
        ("music2vec-soundnet-lstm", [(16, 1872), (32, 116), (64, 109), (128, 102), (256, 33), (512, 15)]),
        ("music2vec-soundnet-deep", [(16, 14997), (16, 7495), (16, 1872), (32, 933), (32, 463), (32, 114), (64, 107),
                                     (128, 100), (256, 33), (512, 15)]),
    ],
)
def test_soundnet_models_give_the_papers_6_by_1024_and_15_by_512_blocks(name, conv_shapes):
    model, inputs = segments(name)
    assert inputs["input_values"].shape == (2, 30000)  # 3.75 s at 8 kHz
    blocks, out = outputs_of(model, model.convs, inputs)
    assert shapes(blocks) == [(2, *shape) for shape in conv_shapes]
    strides = [block[0].stride[0] for block in model.convs]
    if name == "music2vec-soundnet-deep":
        assert strides[:6] == [2] * 6  # each stride-8 convolution of the others as three of stride 2
    else:
        assert strides[:2] == [8, 8]
    if name == "music2vec-soundnet":
        assert model.lstm is None and out.last_hidden_state.shape == (2, 6, 1024)
    else:
        assert [(lstm.input_size, lstm.hidden_size) for lstm in model.lstm.layers] == [(512, 256), (256, 256)]
        assert out.last_hidden_state.shape == (2, 15, 256)


def classifier(encoder_config, **kwargs) -> AudioEncoderForGenreClassification:
    return AudioEncoderForGenreClassification(AudioGenreConfig(
        encoder=encoder_config, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        sampling_rate=encoder_config.sampling_rate, use_layer_weighting=False, **kwargs,
    ))


def test_autoencoder_genre_loss_is_cross_entropy_plus_reconstruction_and_trains_the_decoder():
    config = SCRATCH_ENCODER_NAMES["audiocap/music2vec-autoencoder"]()
    model = classifier(config, head_hidden_size=64, window_seconds=3.0).train()
    labels = torch.tensor([0, 2])
    out = model(input_values=0.1 * torch.randn(2, 3 * 44100), labels=labels)
    cross_entropy = torch.nn.functional.cross_entropy(out.logits, labels)
    assert out.auxiliary_loss > 0
    torch.testing.assert_close(out.loss, cross_entropy + out.auxiliary_loss)
    out.loss.backward()
    decoder = [p for p in model.encoder.decoder.parameters() if p.requires_grad]
    assert decoder and all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder)


def test_reconstruction_weight_scales_the_encoders_loss():
    waves, labels = 0.1 * torch.randn(2, 15000), torch.tensor([1, 0])
    losses = {}
    for weight in (1.0, 0.25, 0.0):
        torch.manual_seed(0)
        model = classifier(ConvAutoEncoderConfig(reconstruction_loss_weight=weight), head_hidden_size=8).train()
        losses[weight] = model(input_values=waves, labels=labels)
    torch.testing.assert_close(losses[0.25].auxiliary_loss, 0.25 * losses[1.0].auxiliary_loss)
    torch.testing.assert_close(losses[0.0].loss, torch.nn.functional.cross_entropy(losses[0.0].logits, labels))
    # An encoder without a loss of its own leaves the cross-entropy alone.
    plain = classifier(SCRATCH_ENCODER_NAMES["audiocap/speclstm"](), head_hidden_size=8).train()
    out = plain(input_values=waves, labels=labels)
    assert out.auxiliary_loss is None
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))


def test_autoencoder_pads_short_segments_and_refuses_long_ones():
    model = ConvAutoEncoderModel(ConvAutoEncoderConfig()).eval()  # 96 frames of 160 samples: up to 15359 samples
    with torch.no_grad():
        out = model(input_values=0.1 * torch.randn(2, 8000))
    assert out.reconstruction.shape == (2, 64, 96) and out.last_hidden_state.shape == (2, 1, 64)
    with pytest.raises(ValueError, match="at most 96 spectrogram frames .*15359 samples at 16000 Hz"):
        model(input_values=torch.zeros(1, 15360))
    with pytest.raises(Exception, match="multiples of the product of pool_size"):
        ConvAutoEncoderConfig(num_frames=100)


def test_autoencoder_genre_model_windows_long_clips_and_round_trips(tmp_path):
    model = classifier(ConvAutoEncoderConfig(), head_hidden_size=8, window_seconds=0.9).eval()
    batch = {"input_values": 0.1 * torch.randn(2, 40000)}  # 2.5 s: three 0.9 s windows per clip
    with torch.no_grad():
        expected = model(**batch)
    assert expected.logits.shape == (2, 3) and expected.auxiliary_loss > 0
    model.save_pretrained(tmp_path)
    loaded = AudioEncoderForGenreClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded.encoder, ConvAutoEncoderModel)
    assert_same_state(model, loaded)
    with torch.no_grad():
        again = loaded(**batch)
    torch.testing.assert_close(again.logits, expected.logits)
    torch.testing.assert_close(again.auxiliary_loss, expected.auxiliary_loss)


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_name_their_model_and_hold_the_papers_protocol(preset):
    assert len(PRESETS) == len(MUSIC2VEC_NAMES)
    name = preset.removeprefix("paper-fma-").removesuffix(".yaml")
    text = (ROOT / "configs" / preset).read_text()
    assert "# reproduces: Fig. " in text
    enc, genre, data, training = parse_with_config(
        (EncoderArguments, script("train_genre").GenreArguments, AudioDataArguments, TrainingArguments),
        ["--config", str(ROOT / "configs" / preset)],
    )
    assert enc.encoder_name_or_path == f"audiocap/{name}" and enc.encoder_mode == "unfrozen"
    assert not enc.use_layer_weighting and genre.pooling == "mean"
    assert genre.head_hidden_size == (128 if "soundnet" in name else 64)  # the paper's FC layer before the output
    assert data.max_length_seconds == segment_seconds(name) and data.split_protocol == "predefined"
    rate = SCRATCH_ENCODER_NAMES[enc.encoder_name_or_path]().sampling_rate
    window, hop = int(round(data.max_length_seconds * rate)), int(round(data.hop_seconds * rate))
    assert len(window_starts(30 * rate, window, hop)) == 20  # the paper's 20 overlapping segments per 30 s track
    assert training.output_dir == f"runs/{preset.removesuffix('.yaml')}"


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_end_to_end_on_the_builtin_set(preset, tmp_path, tmp_path_factory, monkeypatch):
    """`train_genre.py --config <preset>` on 18 built-in clips (6 genres, 1 training step), in this process."""
    shared = tmp_path_factory.getbasetemp() / "music2vec"
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", [
        "train_genre.py", "--config", str(ROOT / "configs" / preset), "--dataset_name", "builtin",
        "--builtin_dir", str(shared / "set"), "--builtin_clips_per_genre", "3", "--builtin_seconds", "4.0",
        "--decoded_cache_dir", str(shared / "decoded"), "--embedding_cache_dir", str(shared / "embeddings"),
        "--num_train_epochs", "1", "--per_device_train_batch_size", "6", "--per_device_eval_batch_size", "6",
        "--dataloader_num_workers", "0", "--output_dir", str(out),
    ])
    script("train_genre").main()
    results = json.loads((out / "results.json").read_text())
    assert results["split_sizes"] == {"train": 6, "validation": 6, "test": 6}
    assert sum(map(sum, results["test"]["confusion_matrix"])) == 6 and results["encoder_mode"] == "unfrozen"
    assert (results["test"]["accuracy"] * 6).is_integer()  # every test clip scored once
    name = preset.removeprefix("paper-fma-").removesuffix(".yaml")
    encoder_class, sizes = MUSIC2VEC_PRESETS[name]
    loaded = AudioEncoderForGenreClassification.from_pretrained(out).config.encoder  # the paper's sizes, saved
    assert isinstance(loaded, encoder_class) and {key: getattr(loaded, key) for key in sizes} == sizes
    assert results["window_seconds"] == segment_seconds(name)
