"""Every shipped run config parses into the training scripts' arguments."""

from pathlib import Path

import pytest
from conftest import script
from transformers import Seq2SeqTrainingArguments, TrainingArguments

from modeling_audiocap.training.arguments import AudioDataArguments, EncoderArguments, parse_with_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_config_parses(path, tmp_path):
    if path.startswith(("musiccaps", "paper-musiccaps", "demo-caption")):
        dataclasses = (EncoderArguments, script("train_caption").CaptionArguments, AudioDataArguments,
                       Seq2SeqTrainingArguments)
    elif path.startswith(("gtzan", "paper-gtzan", "paper-fma", "fma", "demo.yaml", "demo-tags", "demo-tempo", "mtt-",
                          "jamendo-", "emo-")):
        dataclasses = (EncoderArguments, script("train_genre").GenreArguments, AudioDataArguments, TrainingArguments)
    elif path in ("clmr-gtzan.yaml", "demo-contrastive.yaml", "samplecnn-contrastive-fma.yaml"):
        dataclasses = (script("train_contrastive").ContrastiveArguments, AudioDataArguments, TrainingArguments)
    else:
        pytest.fail(f"{path}: which script runs it? (add it to this test)")
    parsed = parse_with_config(dataclasses, ["--config", str(ROOT / "configs" / path), "--output_dir", str(tmp_path)])
    assert parsed[0].encoder_name_or_path and parsed[-1].output_dir == str(tmp_path)


def test_command_line_overrides_the_config(tmp_path):
    genre = script("train_genre")
    enc, _, data, training = parse_with_config(
        (EncoderArguments, genre.GenreArguments, AudioDataArguments, TrainingArguments),
        ["--config", str(ROOT / "configs" / "gtzan-mert-frozen.yaml"), "--learning_rate", "3e-4",
         "--split_protocol", "filtered"],
    )
    assert training.learning_rate == 3e-4 and data.split_protocol == "filtered"
    assert enc.encoder_name_or_path == "m-a-p/MERT-v1-95M" and training.num_train_epochs == 10
