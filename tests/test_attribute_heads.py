"""The captioner's attribute heads: what `--attribute_columns` builds, what the collator feeds them, the loss they add,
what they learn and that they are saved with the model."""

import datasets
import numpy as np
import pytest
import torch
from conftest import assert_same_state, caption_model, featurize, tone

from modeling_audiocap import AudioCaptionConfig, AudioCapProcessor, AudioEncoderT5ForCaptioning
from modeling_audiocap.training.captioning import CaptionTrainer, attribute_heads
from modeling_audiocap.training.collators import CaptionCollator
from modeling_audiocap.training.crops import EpochCrops
from modeling_audiocap.training.lora import apply_lora
from modeling_audiocap.training.text import train_caption_tokenizer

HEADS = {"pitch": {"labels": ["high", "low"]}, "hz": {"mean": 330.0, "std": 110.0}}


def test_attribute_columns_become_heads_from_the_training_clips():
    train = datasets.Dataset.from_dict({
        "mode": ["minor", "major", "minor"], "tempo_bpm": [90.0, 120.0, 150.0], "drums": [2, 0, 1], "caption": ["a"] * 3,
        "bpm_text": ["90", "120.0", "150"],  # a metadata.csv column read as text
    }).cast_column("drums", datasets.ClassLabel(names=["none", "backbeat", "swing"]))
    heads = attribute_heads(train, "mode, tempo_bpm,drums,bpm_text", "my-set")
    assert heads["bpm_text"] == heads["tempo_bpm"]
    assert heads["mode"] == {"labels": ["major", "minor"]}
    assert heads["tempo_bpm"] == {"mean": 120.0, "std": pytest.approx(np.std([90, 120, 150]))}
    assert heads["drums"] == {"labels": ["none", "backbeat", "swing"]}
    assert attribute_heads(train, None, "my-set") is None
    with pytest.raises(ValueError, match=r"my-set has no attribute column 'key' \(columns: mode, tempo_bpm, drums, caption, bpm_text\)"):
        attribute_heads(train, "key", "my-set")
    with pytest.raises(ValueError, match="'caption' needs either two or more 'labels'"):
        attribute_heads(train.select([0]), "caption", "my-set")
    # A clip without a value is refused (not a "None" class, not a NaN mean), whatever the column's type.
    gaps = datasets.Dataset.from_dict({"bpm": [90.0, None, float("nan")], "mode": ["major", "", "minor"],
                                       "key": ["C", None, "D"]})
    for column, count, row in (("bpm", 2, 1), ("mode", 1, 1), ("key", 1, 1)):
        with pytest.raises(ValueError, match=rf"column '{column}' of my-set's training clips has no value in {count} "
                                             rf"of 3 clips \(the first is row {row}\)"):
            attribute_heads(gaps, column, "my-set")


@pytest.mark.parametrize("spec", [{"labels": ["one"]}, {"mean": 1.0, "std": 0.0}, {"labels": ["a", "b"], "mean": 0, "std": 1}])
def test_a_head_that_cannot_learn_is_refused(spec):
    with pytest.raises(ValueError, match="needs either"):
        AudioCaptionConfig(attribute_heads={"x": spec})
    with pytest.raises(ValueError, match="without '.'"):
        AudioCaptionConfig(attribute_heads={"a.b": {"labels": ["x", "y"]}})


def test_the_collator_feeds_the_heads_while_training_only():
    processor = AudioCapProcessor(
        feature_extractor=caption_model("wav2vec2")[1].feature_extractor,
        tokenizer=train_caption_tokenizer(["a high tone", "a low tone"], 64), window_seconds=0.5,
    )
    collator = CaptionCollator(processor, EpochCrops(processor.audio, 0), 16, HEADS)
    rows = [{"waveform": tone(0.5, 16000, f), "clip_index": i, "caption": "a tone", "pitch": p, "hz": f}
            for i, (f, p) in enumerate([(440.0, "high"), (220.0, "low")])]
    batch = collator(rows)
    torch.testing.assert_close(batch["attribute_labels"]["pitch"], torch.tensor([0, 1]))
    torch.testing.assert_close(batch["attribute_labels"]["hz"], torch.tensor([440.0, 220.0]))
    assert "attribute_labels" not in collator.for_evaluation()(rows)
    assert "attribute_labels" in collator(rows)


def test_training_batches_stay_training_batches_through_evaluations(tmp_path):
    """The trainer builds its training loader once: building evaluation and test loaders (every evaluation) must
    leave it with random crops and attribute labels. (It once switched the shared collator for good, so from the first
    evaluation on training saw only first windows and first captions, and the heads no labels.)"""
    from transformers import Seq2SeqTrainingArguments

    model, resolved = caption_model("wav2vec2", attribute_heads=HEADS)
    processor = AudioCapProcessor(feature_extractor=resolved.feature_extractor, window_seconds=0.5,
                                  tokenizer=train_caption_tokenizer(["a high tone", "a low tone"], 64))
    clips = datasets.Dataset.from_list([
        {"waveform": tone(1.0, 16000, f), "clip_index": i, "caption": "a tone", "pitch": p, "hz": f}
        for i, (f, p) in enumerate([(440.0, "high"), (220.0, "low"), (460.0, "high"), (200.0, "low")])
    ])
    crops = EpochCrops(processor.audio, 0)
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, report_to="none",
                                    per_device_eval_batch_size=2, remove_unused_columns=False)
    trainer = CaptionTrainer(model=model, args=args, train_dataset=clips, eval_dataset=clips,
                             data_collator=CaptionCollator(processor, crops, 16, HEADS), callbacks=[crops])
    train_loader = trainer.get_train_dataloader()
    assert "attribute_labels" in next(iter(train_loader))
    assert "attribute_labels" not in next(iter(trainer.get_eval_dataloader()))
    assert "attribute_labels" not in next(iter(trainer.get_test_dataloader(clips)))
    assert "attribute_labels" in next(iter(train_loader)) and trainer.data_collator.training


def test_heads_add_their_weighted_loss_learn_and_are_saved_with_the_model(tmp_path):
    torch.manual_seed(0)
    model, resolved = caption_model("wav2vec2", attribute_heads=HEADS, attribute_loss_weight=2.0)
    freqs = [220.0, 440.0, 260.0, 400.0]
    batch = featurize(resolved.feature_extractor, [tone(0.5, resolved.sampling_rate, f, seed=i) for i, f in enumerate(freqs)])
    labels = torch.tensor([[5, 6, 1]] * len(freqs))
    attributes = {"pitch": torch.tensor([1, 0, 1, 0]), "hz": torch.tensor(freqs)}
    captions_only = model(**batch, labels=labels).loss  # in eval mode: no dropout between the calls
    with_heads = model(**batch, labels=labels, attribute_labels=attributes)
    outputs = model.attribute_outputs(*model.audio_states(batch["input_values"], batch.get("attention_mask")))
    expected = 2.0 * (torch.nn.functional.cross_entropy(outputs["pitch"], attributes["pitch"])
                      + torch.nn.functional.mse_loss(outputs["hz"], (attributes["hz"] - 330.0) / 110.0))
    torch.testing.assert_close(with_heads.loss, captions_only + expected)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        model(**batch, labels=labels, attribute_labels=attributes).loss.backward()
        optimizer.step()
    model.eval()
    predicted = model.predict_attributes(**batch)
    assert predicted["pitch"] == ["low", "high", "low", "high"]
    assert np.abs(np.array(predicted["hz"]) - freqs).max() < 40.0

    model.save_pretrained(tmp_path)
    loaded = AudioEncoderT5ForCaptioning.from_pretrained(tmp_path).eval()
    assert_same_state(model, loaded)
    assert loaded.config.attribute_heads == HEADS and loaded.predict_attributes(**batch) == predicted


def test_the_heads_teach_the_audio_encoder_and_leave_t5_to_the_captions():
    """The heads read the audio encoder's states, before the projection to T5: their loss alone moves the encoder (and
    the layer weighting), never T5, whose states stay free for what the captions need."""
    model, resolved = caption_model("wav2vec2", attribute_heads=HEADS)
    batch = featurize(resolved.feature_extractor, [tone(0.5, resolved.sampling_rate, f) for f in (220.0, 440.0)])
    outputs = model.attribute_outputs(*model.audio_states(batch["input_values"], batch.get("attention_mask")))
    sum(out.square().sum() for out in outputs.values()).backward()
    moved = {name.split(".")[0] for name, p in model.named_parameters()
             if p.grad is not None and p.grad.abs().sum() > 0}
    assert moved == {"encoder", "layer_weighting", "attribute_heads"}


def test_a_captioner_without_heads_refuses_attribute_labels():
    model, resolved = caption_model("wav2vec2")
    assert model.attribute_heads is None
    batch = featurize(resolved.feature_extractor, [tone(0.5, resolved.sampling_rate)])
    with pytest.raises(ValueError, match="no attribute heads"):
        model(**batch, labels=torch.tensor([[5, 1]]), attribute_labels={"pitch": torch.tensor([0])})


def test_lora_trains_the_heads_fully():
    model, _ = caption_model("wav2vec2", attribute_heads=HEADS)
    wrapped = apply_lora(model, 4, 8, 0.0, False)
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad and "attribute_heads" in name}
    assert {n.split("attribute_heads.")[-1] for n in trainable} == {
        f"{head}.modules_to_save.default.{p}" for head in HEADS for p in ("weight", "bias")}
