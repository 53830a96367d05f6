"""The paper presets (`configs/paper-*.yaml`): each names the table row it reproduces, the README sets that row's
numbers beside it, each holds the reference protocol, and each trains end to end on tiny data (a tiny encoder, the
built-in set, a scratch T5 and the offline sentence model standing in for the Hub models the presets name)."""

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import script
from datasets import Dataset, DatasetDict
from transformers import Seq2SeqTrainingArguments, TrainingArguments

from modeling_audiocap.metrics.music_captioning.music_captioning import DEFAULT_TEXT_MODEL
from modeling_audiocap.training.arguments import AudioDataArguments, EncoderArguments, parse_with_config
from modeling_audiocap.training.runs import evaluate_without_validation, without_validation

ROOT = Path(__file__).resolve().parents[1]
GENRE_PRESETS = sorted(p.name for p in (ROOT / "configs").glob("paper-gtzan-*.yaml"))
CAPTION_PRESETS = sorted(p.name for p in (ROOT / "configs").glob("paper-musiccaps-*.yaml"))
REPRODUCES = re.compile(r"^# reproduces: (Table \d), (.+?): (.+)$", re.MULTILINE)


def parse(preset: str):
    if preset.startswith("paper-gtzan"):
        types = (EncoderArguments, script("train_genre").GenreArguments, AudioDataArguments, TrainingArguments)
    else:
        types = (EncoderArguments, script("train_caption").CaptionArguments, AudioDataArguments, Seq2SeqTrainingArguments)
    return parse_with_config(types, ["--config", str(ROOT / "configs" / preset)])


def test_there_is_a_preset_for_every_row_of_both_tables():
    assert len(GENRE_PRESETS) == 6 and len(CAPTION_PRESETS) == 6
    rows = [REPRODUCES.search((ROOT / "configs" / p).read_text()).group(1, 2) for p in GENRE_PRESETS + CAPTION_PRESETS]
    assert len(set(rows)) == 12
    assert {table for table, _ in rows} == {"Table 1", "Table 2"}


@pytest.mark.parametrize("preset", GENRE_PRESETS + CAPTION_PRESETS)
def test_readme_sets_the_reference_numbers_beside_the_preset(preset):
    table, row, numbers = REPRODUCES.search((ROOT / "configs" / preset).read_text()).groups()
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| `{preset}` |")]
    assert len(lines) == 1, f"README has no row (or several) for {preset}"
    cells = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert cells[1] == f"{table}, {row}"
    assert [c for c in cells[2:] if c != "-"] == re.findall(r"\d+\.\d+", numbers)


@pytest.mark.parametrize("preset", GENRE_PRESETS)
def test_genre_presets_hold_the_papers_protocol(preset):
    enc, genre, data, training = parse(preset)
    assert data.validation_fraction == 0 and data.split_protocol == "random"  # 800 / 200, the last epoch
    assert not enc.use_layer_weighting and genre.head_dropout == 0 and genre.head_hidden_size == 512
    assert training.num_train_epochs == 10 and training.learning_rate == 1e-5 and training.weight_decay == 0
    assert training.eval_strategy == "no" and not training.load_best_model_at_end
    if "-mert-" in preset:
        assert enc.encoder_name_or_path == "m-a-p/MERT-v1-330M"  # the report's 1024-d MERT features


@pytest.mark.parametrize("preset", CAPTION_PRESETS)
def test_caption_presets_hold_the_papers_protocol(preset):
    enc, caption, data, training = parse(preset)
    assert (caption.num_beams, caption.max_new_tokens, caption.max_caption_tokens) == (5, 49, 64)
    assert caption.beam_early_stopping and caption.no_repeat_ngram_size == 0 and caption.repetition_penalty == 1.0
    assert caption.similarity_model == "sentence-transformers/bert-base-nli-mean-tokens"
    assert enc.use_layer_weighting == ("-mert-" in preset)  # the report weights layers for MERT captioning only
    assert training.num_train_epochs == 15 and training.learning_rate == 1e-4 and data.validation_fraction is None
    assert training.per_device_train_batch_size == (4 if preset == "paper-musiccaps-mert-frozen.yaml" else 8)


def test_without_validation_trains_on_train_and_validation_and_keeps_the_test_clips():
    splits = DatasetDict({name: Dataset.from_dict({"clip": [f"{name}{i}" for i in range(n)]})
                          for name, n in (("train", 7), ("validation", 1), ("test", 2))})
    joined = without_validation(splits)
    assert list(joined) == ["train", "test"]
    assert joined["train"]["clip"] == [f"train{i}" for i in range(7)] + ["validation0"]
    assert joined["test"]["clip"] == ["test0", "test1"]


def test_no_validation_turns_evaluation_off_and_refuses_early_stopping(tmp_path, caplog):
    args = TrainingArguments(output_dir=str(tmp_path), eval_strategy="epoch", save_strategy="epoch",
                             load_best_model_at_end=True, report_to="none")
    evaluate_without_validation(args, None)
    assert args.eval_strategy == "no" and not args.do_eval and not args.load_best_model_at_end
    assert "--eval_strategy epoch -> no" in caplog.text and "--load_best_model_at_end true -> false" in caplog.text
    with pytest.raises(ValueError, match="early_stopping_patience"):
        evaluate_without_validation(args, 3)
    with pytest.raises(ValueError, match="validation_fraction takes 0"):
        AudioDataArguments(validation_fraction=0.2)


def run_preset(monkeypatch, tmp_path_factory, encoder_dir, preset: str, out: Path, *overrides: str) -> dict:
    """`python train_<task>.py --config <preset>` in this process (the imports are paid once) on tiny data: the tiny
    encoder, the built-in set of 1 s clips, one epoch; returns its results."""
    name = "train_genre" if preset.startswith("paper-gtzan") else "train_caption"
    shared = tmp_path_factory.getbasetemp() / name
    monkeypatch.setattr(sys, "argv", [
        f"{name}.py", "--config", str(ROOT / "configs" / preset), "--encoder_name_or_path", str(encoder_dir),
        "--dataset_name", "builtin", "--builtin_dir", str(shared / "set"), "--builtin_seconds", "1.0",
        "--max_length_seconds", "1.0", "--decoded_cache_dir", str(shared / "decoded"), "--num_train_epochs", "1",
        "--output_dir", str(out), *overrides,
    ])
    script(name).main()
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("preset", GENRE_PRESETS)
def test_genre_preset_runs_end_to_end(preset, tmp_path, tmp_path_factory, encoder_dir, monkeypatch):
    out = tmp_path / "run"
    results = run_preset(monkeypatch, tmp_path_factory, encoder_dir, preset, out, "--builtin_clips_per_genre", "10",
                         "--embedding_cache_dir", str(tmp_path_factory.getbasetemp() / "paper-embeddings"))
    assert results["split_sizes"] == {"train": 48, "test": 12}  # the random protocol's 42 / 6 / 12, validation joined
    assert results["model_selection"] == "last epoch" and results["config"]["training"]["eval_strategy"] == "no"
    for split in ("train", "test"):
        assert {"accuracy", "macro_f1", "map", "roc_auc"} <= set(results[split])
        assert sum(map(sum, results[split]["confusion_matrix"])) == results["split_sizes"][split]
        assert set(results["mean_cosine"][split]) == {"before", "after"}
        assert (out / f"pca_{split}_embeddings.png").exists()
    assert results["train_accuracy"] == results["train"]["accuracy"] and not results["use_layer_weighting"]
    card = (out / "README.md").read_text()
    assert "| train |" in card and "| validation |" not in card and "the model is the last epoch" in card


@pytest.mark.slow
@pytest.mark.parametrize("preset", CAPTION_PRESETS)
def test_caption_preset_runs_end_to_end(preset, tmp_path, tmp_path_factory, encoder_dir, monkeypatch):
    out = tmp_path / "run"
    results = run_preset(
        monkeypatch, tmp_path_factory, encoder_dir, preset, out, "--text_model_name_or_path", "scratch",
        "--scratch_vocab_size", "300", "--scratch_d_model", "32", "--scratch_layers", "1",
        "--builtin_clips_per_genre", "2", "--max_new_tokens", "4", "--max_train_eval_samples", "3",
        "--similarity_model", DEFAULT_TEXT_MODEL,
    )
    for split in ("train", "validation", "test"):
        assert {"bert_similarity", "bleu_4"} <= set(results[split]), split
    assert results["train_eval_clips"] == 3 and len(results["sample_captions"]["train"]) == 3
    assert results["similarity_model"] == DEFAULT_TEXT_MODEL and results["hyperparameters"]["num_beams"] == 5
    assert results["model_selection"] == "best validation loss"
    assert (out / "training_curves.png").exists() and "training_curves.png" in results["plots"]
    assert "| metric | train | validation | test |" in (out / "README.md").read_text()
