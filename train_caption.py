"""Train and evaluate a music captioner: `accelerate launch train_caption.py --config configs/<run>.yaml [--flag value]`.

Audio encoder (frozen, unfrozen or LoRA) -> layer weighting -> time reduction -> Linear -> T5 (`t5-small` by
default; `--text_model_name_or_path scratch` builds a small T5 and trains a tokenizer on the training captions).
`output_dir` ends as a publishable model repo with `results.json` (metrics per split, sample captions), a model
card and the `music-captioning` pipeline.
"""

import logging
import os
from dataclasses import dataclass, field

import modeling_audiocap  # noqa: F401  (first: checks the torch trio before transformers loads torchaudio)
from transformers import (
    AutoTokenizer,
    EarlyStoppingCallback,
    Seq2SeqTrainingArguments,
    T5ForConditionalGeneration,
)

from modeling_audiocap import AudioEncoderT5ForCaptioning, resolve_encoder
from modeling_audiocap.data.captions import load_caption_dataset
from modeling_audiocap.data.synthetic import CAPTION_COLUMNS
from modeling_audiocap.hub import render_caption_card, take_hub_settings
from modeling_audiocap.metrics import load_metric
from modeling_audiocap.metrics.music_captioning.music_captioning import DEFAULT_TEXT_MODEL
from modeling_audiocap.pipelines import register_music_captioning, save_pipeline_code
from modeling_audiocap.processing_audiocap import AudioCapProcessor
from modeling_audiocap.training.arguments import (
    AudioDataArguments,
    EncoderArguments,
    parse_with_config,
)
from modeling_audiocap.training.captioning import (
    CaptionTrainer,
    attribute_heads,
    attribute_references,
    decode_captions,
)
from modeling_audiocap.training.collators import CaptionCollator
from modeling_audiocap.training.crops import EpochCrops
from modeling_audiocap.training.genre_data import decode_splits
from modeling_audiocap.training.lora import apply_lora
from modeling_audiocap.training.optim import make_optimizer
from modeling_audiocap.training.plots import plot_training_curves
from modeling_audiocap.training.runs import (
    evaluate_without_validation,
    load_splits,
    publish_run,
    run_settings,
    seeded_sample,
    set_script_arguments,
    start_run,
    train_resuming,
    trained_model,
)
from modeling_audiocap.training.text import small_t5_config, train_caption_tokenizer

logger = logging.getLogger("audiocap.train_caption")
SCRATCH = "scratch"
# CaptionArguments results.json lists among the hyper-parameters.
CAPTION_HYPERPARAMETERS = (
    "time_reduction_stride", "max_caption_tokens", "attribute_columns", "attribute_loss_weight", "num_beams",
    "beam_early_stopping", "max_new_tokens", "no_repeat_ngram_size", "repetition_penalty",
)
# Seq2SeqTrainingArguments this script owns: name -> (value, why).
SCRIPT_ARGUMENTS = {
    "remove_unused_columns": (False, "the collator reads columns the model does not take (waveforms, captions)"),
    "predict_with_generate": (True, "evaluation scores generated captions"),
    "label_names": (["labels"], "the collator puts the caption tokens in `labels`"),
}


@dataclass
class CaptionArguments:
    """The text side: T5, captions, connector and generation."""

    text_model_name_or_path: str = field(
        default="t5-small", metadata={"help": "Hub id or local dir of a T5; 'scratch' builds a small one."}
    )
    text_model_revision: str = field(
        default="main", metadata={"help": "The T5's Hub revision: a branch, a tag or a commit (a commit pins it)."}
    )
    caption_column_name: str = field(
        default="caption",
        metadata={"help": "Column holding the captions; several separated by commas (e.g. caption_1,...,caption_5)."},
    )
    max_caption_tokens: int = field(default=64, metadata={"help": "Captions are cut to this many tokens."})
    attribute_columns: str | None = field(
        default=None,
        metadata={"help": "Columns the audio encoder also learns to predict, one small head each on its states "
                          "beside the captions (comma-separated; classes or numbers; best one per attribute the "
                          "captions name, e.g. tempo_bpm,mode,instrument,drums on the built-in set)."},
    )
    attribute_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of the attribute heads' losses (they pull the shared encoder; the demo "
                                       "uses 0.1)."}
    )
    connector: str = field(default="t5_encoder", metadata={"help": "t5_encoder (reference) | cross_attention"})
    time_reduction_stride: int = field(default=4, metadata={"help": "Frames averaged into one T5 input step."})
    lora_text_model: bool = field(default=False, metadata={"help": "LoRA mode: put adapters on T5 too."})
    scratch_vocab_size: int = field(default=1000, metadata={"help": "Scratch T5: tokenizer vocabulary size."})
    scratch_d_model: int = field(default=128, metadata={"help": "Scratch T5: width."})
    scratch_layers: int = field(default=2, metadata={"help": "Scratch T5: encoder and decoder layers."})
    num_beams: int = field(default=1, metadata={"help": "Beam search width at evaluation."})
    beam_early_stopping: bool = field(
        default=False, metadata={"help": "Beam search ends as soon as num_beams captions are complete (reference: true)."}
    )
    max_new_tokens: int = field(default=48, metadata={"help": "Longest generated caption."})
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "Forbid repeating n-grams (0: off)."})
    repetition_penalty: float = field(default=1.0, metadata={"help": "Generation repetition penalty."})
    num_sample_captions: int = field(default=10, metadata={"help": "Generated vs reference captions to report."})
    similarity_model: str = field(
        default=DEFAULT_TEXT_MODEL,
        metadata={"help": "sentence-transformers model (Hub id or local dir) of bert_similarity and BERTScore."},
    )
    max_train_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Caption metrics of the train split on at most this many clips (a seeded sample; default: all)."},
    )
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Evaluations without improvement."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start afresh instead of resuming."})


def build_model(enc_args: EncoderArguments, cap_args: CaptionArguments, data_args: AudioDataArguments, train_captions,
                heads: dict | None = None):
    """The captioner (with the attribute `heads`, if any) and its processor (feature extractor + tokenizer)."""
    resolved = resolve_encoder(
        enc_args.encoder_name_or_path, clap_output=enc_args.clap_output, config_overrides=enc_args.config_overrides(),
        **enc_args.hub_kwargs(),
    )
    if cap_args.text_model_name_or_path == SCRATCH:
        tokenizer = train_caption_tokenizer(train_captions, cap_args.scratch_vocab_size)
        t5 = T5ForConditionalGeneration(
            small_t5_config(len(tokenizer), cap_args.scratch_d_model, cap_args.scratch_layers)
        )
    else:
        hub_kwargs = enc_args.hub_kwargs(revision=cap_args.text_model_revision)
        tokenizer = AutoTokenizer.from_pretrained(cap_args.text_model_name_or_path, **hub_kwargs)
        t5 = T5ForConditionalGeneration.from_pretrained(cap_args.text_model_name_or_path, **hub_kwargs)
    model = AudioEncoderT5ForCaptioning.from_encoder_decoder_pretrained(
        resolved,
        t5,
        connector=cap_args.connector,
        time_reduction_stride=cap_args.time_reduction_stride,
        use_layer_weighting=enc_args.use_layer_weighting,
        window_seconds=data_args.max_length_seconds,
        clap_output=enc_args.clap_output,
        attribute_heads=heads,
        attribute_loss_weight=cap_args.attribute_loss_weight,
    )
    model.generation_config.max_length = None  # max_new_tokens rules: T5's default max_length (20) would conflict
    model.generation_config.update(
        max_new_tokens=cap_args.max_new_tokens,
        num_beams=cap_args.num_beams,
        early_stopping=cap_args.beam_early_stopping,
        no_repeat_ngram_size=cap_args.no_repeat_ngram_size,
        repetition_penalty=cap_args.repetition_penalty,
    )
    processor = AudioCapProcessor(
        feature_extractor=resolved.feature_extractor, tokenizer=tokenizer, window_seconds=data_args.max_length_seconds
    )
    return model, processor


def main() -> None:
    enc_args, cap_args, data_args, training_args = parse_with_config(
        (EncoderArguments, CaptionArguments, AudioDataArguments, Seq2SeqTrainingArguments)
    )
    output_dir = start_run(training_args)

    splits = load_splits(load_caption_dataset, data_args, training_args.seed,
                         {"caption_column_name": ",".join(CAPTION_COLUMNS)}, caption_column_name=cap_args.caption_column_name)
    heads = attribute_heads(splits["train"], cap_args.attribute_columns, data_args.dataset_name)
    model, processor = build_model(enc_args, cap_args, data_args,
                                   [c for captions in splits["train"]["captions"] for c in captions], heads)
    with training_args.main_process_first(desc="prepare data"):
        decoded, skipped = decode_splits(splits, processor.audio, data_args.preprocessing_num_workers, data_args.decoded_cache_dir)

    if enc_args.encoder_mode == "frozen":
        model.freeze_encoder()
    elif enc_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    train_model = model
    if enc_args.encoder_mode == "lora":
        train_model = apply_lora(model, enc_args.lora_r, enc_args.lora_alpha, enc_args.lora_dropout, cap_args.lora_text_model)
    text_metric = load_metric("music_captioning")
    attribute_metric = load_metric("caption_attributes") if data_args.dataset_name == "builtin" else None
    hub = take_hub_settings(training_args)  # pushed once, at the end, by us; the token stays out of checkpoints
    trainer = make_trainer(train_model, decoded, processor, text_metric, attribute_metric, enc_args, cap_args,
                           training_args)
    train_resuming(trainer, cap_args.overwrite_output_dir)

    model = trained_model(trainer, enc_args.encoder_mode)
    results, samples = evaluate_captions(trainer, decoded, text_metric, attribute_metric, cap_args, training_args.seed)
    if not trainer.is_world_process_zero():
        return
    plots = [plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png", "bert_similarity")]
    register_music_captioning(model)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    save_pipeline_code(output_dir)
    results.update(
        run_settings(
            enc_args, data_args, training_args, ("caption", cap_args),
            {key: getattr(cap_args, key) for key in CAPTION_HYPERPARAMETERS},
            {"text_model": (cap_args.text_model_name_or_path,
                            enc_args.hub_kwargs(revision=cap_args.text_model_revision))},
            text_model=cap_args.text_model_name_or_path,
            connector=cap_args.connector,
            similarity_model=cap_args.similarity_model,
        ),
        split_sizes={split: len(ds) for split, ds in decoded.items()},
        skipped_files=skipped,
        sample_captions=samples,
        plots=[p.name for p in plots],
    )
    logger.info("BERT similarity: train %.4f, test %.4f; test BLEU-4 %.4f; results in %s",
                results["train"]["bert_similarity"], results["test"]["bert_similarity"], results["test"]["bleu_4"], output_dir)
    for sample in samples["test"]:
        logger.info("generated: %s | reference: %s", sample["generated"], sample["reference"])
    publish_run(output_dir, results, render_caption_card, training_args, hub,
                f"audiocap captioner: BERT similarity {results['test']['bert_similarity']:.4f}")


def make_trainer(train_model, decoded: dict, processor: AudioCapProcessor, text_metric, attribute_metric,
                 enc_args: EncoderArguments, cap_args: CaptionArguments,
                 training_args: Seq2SeqTrainingArguments) -> CaptionTrainer:
    """The trainer: captions generated and scored on validation each evaluation (on the built-in set also against
    its attributes, so `mean_attribute_accuracy` can pick the best checkpoint), or, without a validation split, no
    evaluation and the last epoch kept."""
    tokenizer = processor.tokenizer
    validation = decoded.get("validation")

    def compute_metrics(prediction) -> dict:
        predictions = decode_captions(tokenizer, prediction.predictions)
        scores = text_metric.compute(predictions=predictions, references=list(validation["captions"]),
                                     similarity_model=cap_args.similarity_model)
        if attribute_metric is not None:
            scores.update(attribute_metric.compute(predictions=predictions, references=attribute_references(validation)))
        return {k: v for k, v in scores.items() if isinstance(v, float)}

    set_script_arguments(training_args, "train_caption.py", SCRIPT_ARGUMENTS)
    if validation is None:
        evaluate_without_validation(training_args, cap_args.early_stopping_patience)
    crops = EpochCrops(processor.audio, training_args.seed)
    callbacks = [crops]
    if cap_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(cap_args.early_stopping_patience))
    return CaptionTrainer(
        model=train_model,
        args=training_args,
        train_dataset=decoded["train"],
        eval_dataset=validation,
        data_collator=CaptionCollator(processor, crops, cap_args.max_caption_tokens, train_model.config.attribute_heads),
        processing_class=processor,  # checkpoints carry it (its tokenizer aligns the special tokens)
        compute_metrics=None if validation is None else compute_metrics,
        optimizers=(make_optimizer(train_model, enc_args, training_args.learning_rate, training_args.weight_decay), None),
        callbacks=callbacks,
    )


def evaluate_captions(trainer: CaptionTrainer, decoded: dict, text_metric, attribute_metric, cap_args: CaptionArguments,
                      seed: int) -> tuple[dict, dict]:
    """Caption metrics of every split against the full reference captions (on the built-in set also the attribute
    accuracies), and sample captions. The train split is scored on at most `--max_train_eval_samples` clips (a
    seeded sample; their number is `train_eval_clips`), from their first window as every split."""
    tokenizer = trainer.processing_class.tokenizer
    trainer.compute_metrics = None  # scored below, once, against the untruncated references
    results, samples = {}, {}
    for split in ("train", "validation", "test"):
        if split not in decoded:
            continue
        clips = decoded[split]
        if split == "train":
            clips = seeded_sample(clips, cap_args.max_train_eval_samples, seed)
            results["train_eval_clips"] = len(clips)
        generated = decode_captions(tokenizer, trainer.predict(clips, metric_key_prefix=split).predictions)
        results[split] = text_metric.compute(predictions=generated, references=list(clips["captions"]),
                                             similarity_model=cap_args.similarity_model)
        if attribute_metric is not None:
            results[split].update(attribute_metric.compute(predictions=generated, references=attribute_references(clips)))
        samples[split] = [
            {"reference": str(ref), "generated": gen}
            for ref, gen in list(zip(clips["caption"], generated))[: cap_args.num_sample_captions]
        ]
    return results, samples


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
