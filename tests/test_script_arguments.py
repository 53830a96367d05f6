"""The training scripts' flags reach what they name: the label column on the built-in set, encoder config overrides."""

import csv
from pathlib import Path

import pytest

import train_caption
import train_genre
from modeling_audiocap.training.arguments import AudioDataArguments, EncoderArguments, public_settings


@pytest.fixture(scope="module")
def builtin_args(tmp_path_factory):
    return AudioDataArguments(
        dataset_name="builtin", builtin_dir=str(tmp_path_factory.mktemp("set") / "music-set"),
        builtin_clips_per_genre=3, builtin_seconds=1.0, max_length_seconds=1.0,
    )


@pytest.mark.parametrize(("column", "names"), [(None, 6), ("mode", ["major", "minor"]), ("drums", 6)])
def test_the_builtin_set_trains_on_the_label_column_asked_for(builtin_args, column, names):
    splits, task = train_genre.genre_splits(builtin_args, train_genre.GenreArguments(label_column_name=column), seed=0)
    labels = splits["train"].features["label"].names
    assert task.problem_type == "single_label_classification" and list(task.names) == labels
    assert labels == names if isinstance(names, list) else len(labels) == names
    if column is None:
        assert "rock" in labels
    with open(Path(builtin_args.builtin_dir) / "metadata.csv", newline="") as f:
        truth = {row["file_name"]: row[column or "genre"] for row in csv.DictReader(f)}
    for row in splits["test"]:
        assert labels[row["label"]] == truth[row["file_name"]]


def test_encoder_config_overrides_reach_the_genre_and_caption_encoders(builtin_args):
    overrides = EncoderArguments(encoder_name_or_path="audiocap/melcnn", encoder_config_overrides="{n_fft: 1024, n_mels: 48}")
    assert overrides.config_overrides() == {"n_fft": 1024, "n_mels": 48}
    genre, _ = train_genre.build_model(overrides, train_genre.GenreArguments(), builtin_args, ["a", "b"])
    captions = ["a slow piece at 60 bpm", "a fast one at 150 bpm"]
    caption_args = train_caption.CaptionArguments(text_model_name_or_path="scratch", scratch_vocab_size=64)
    captioner, _ = train_caption.build_model(overrides, caption_args, builtin_args, captions)
    for model in (genre, captioner):
        assert (model.config.encoder.n_fft, model.config.encoder.n_mels) == (1024, 48)
    with pytest.raises(ValueError, match="must be a mapping"):
        EncoderArguments(encoder_config_overrides="[1, 2]").config_overrides()
    with pytest.raises(ValueError, match="short names"):
        train_genre.build_model(
            EncoderArguments(encoder_name_or_path="m-a-p/MERT-v1-95M", encoder_config_overrides="{n_mels: 48}"),
            train_genre.GenreArguments(), builtin_args, ["a", "b"],
        )


def test_on_a_machine_without_an_accelerator_loaders_pin_no_memory(tmp_path):
    """`make demo` on CPU: the Trainer's loaders must not ask to pin memory (torch warns at every epoch's loader)."""
    import warnings

    import torch
    from transformers import TrainingArguments

    from modeling_audiocap.training.arguments import parse_with_config

    (_, training_args) = parse_with_config((EncoderArguments, TrainingArguments), ["--output_dir", str(tmp_path)])
    assert training_args.dataloader_pin_memory == torch.accelerator.is_available()
    loader = torch.utils.data.DataLoader(list(range(4)), batch_size=2, pin_memory=training_args.dataloader_pin_memory)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(loader)) == 2


def test_hub_arguments_reach_from_pretrained_and_the_token_stays_out_of_results():
    args = EncoderArguments(model_revision="v1", cache_dir="/tmp/cache", token="hf_secret")
    assert args.hub_kwargs() == {"revision": "v1", "cache_dir": "/tmp/cache", "token": "hf_secret"}
    assert args.hub_kwargs(revision="abc")["revision"] == "abc"
    assert EncoderArguments().hub_kwargs() == {"revision": "main"}
    settings = public_settings(args)
    assert settings["token"] == "<TOKEN>" and settings["model_revision"] == "v1"
    assert "hf_secret" not in str(settings)
