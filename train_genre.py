"""Train and evaluate a clip model: `accelerate launch train_genre.py --config configs/<run>.yaml [--flag value]`.

The label column(s) decide what it learns (`--problem_type` forces it): one column of classes makes a genre (or any
class) classifier, a tag list or several columns a tagger, number columns a regressor (`data.targets.clip_targets`).
Encoder modes: `frozen` (layer-wise embeddings computed once and cached; only the layer weighting and the head
train), `unfrozen` (everything trains, with its own encoder learning rate) and `lora` (peft adapters + head).
`output_dir` ends as a publishable model repo with `results.json`, plots and a model card.
"""

import logging
import os
from pathlib import Path

import modeling_audiocap  # noqa: F401  (first: checks the torch trio before transformers loads torchaudio)
import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

from modeling_audiocap.hub import render_genre_card, take_hub_settings
from modeling_audiocap.metrics.ranking import best_thresholds
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor
from modeling_audiocap.training.arguments import (
    AudioDataArguments,
    EncoderArguments,
    GenreArguments,
    parse_with_config,
)
from modeling_audiocap.training.clip_runs import (
    build_model,
    genre_splits,
    prepare_splits,
    sweep_layers,
    write_probe_report,
)
from modeling_audiocap.training.clip_tasks import ClipTask
from modeling_audiocap.training.collators import WaveformCollator, embedding_collator
from modeling_audiocap.training.crops import EpochCrops
from modeling_audiocap.training.genre_data import clip_level
from modeling_audiocap.training.lora import apply_lora
from modeling_audiocap.training.optim import make_optimizer
from modeling_audiocap.training.plots import (
    mean_pairwise_cosine,
    plot_confusion_matrix,
    plot_pca,
    plot_predictions,
    plot_tag_scores,
    plot_training_curves,
)
from modeling_audiocap.training.runs import (
    evaluate_without_validation,
    publish_run,
    run_settings,
    set_script_arguments,
    start_run,
    train_resuming,
    trained_model,
)

logger = logging.getLogger("audiocap.train_genre")
EMBEDDING_SPLITS = ("train", "test")  # PCA plots and mean pairwise cosine similarity, before and after training
# TrainingArguments this script owns: name -> (value, why).
SCRIPT_ARGUMENTS = {
    "remove_unused_columns": (False, "the collators read columns the model does not take (clip ids, waveforms)"),
    "label_names": (["labels"], "the collators put the class, tags or values in `labels`"),
}


def split_metrics(task: ClipTask, metric, rows):
    """The Trainer's `compute_metrics` for one split's window `rows`: window logits averaged over each clip of that
    split (each split has its own clips, so each gets its own function), scored by the task's logged scores (an
    undefined one as NaN)."""
    clip_index = np.asarray(rows["clip_index"])

    def compute_metrics(prediction) -> dict:
        clip_logits, clip_labels, _ = clip_level(window_logits(prediction), prediction.label_ids, clip_index)
        result = task.clip_metrics(metric, clip_logits, clip_labels)
        return {key: float("nan") if result[key] is None else result[key] for key in task.logged_scores}

    return compute_metrics


def window_logits(prediction) -> np.ndarray:
    return prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions


def run_probe_sweep(enc_args, genre_args, data_args, training_args) -> None:
    """`--probe_layers`: a probe per layer and the learned weighting, over `--seeds`; table, plot and JSON."""
    layers = None if genre_args.probe_layers == "all" else [int(x) for x in genre_args.probe_layers.split(",")]
    seeds = [int(x) for x in genre_args.seeds.split(",")] if genre_args.seeds else [training_args.seed]
    task, sweeps = sweep_layers(enc_args, genre_args, data_args, training_args, seeds, layers)
    if training_args.should_save:
        write_probe_report(Path(training_args.output_dir), task, sweeps, enc_args, data_args)


def main() -> None:
    enc_args, genre_args, data_args, training_args = parse_with_config(
        (EncoderArguments, GenreArguments, AudioDataArguments, TrainingArguments)
    )
    output_dir = start_run(training_args)

    if genre_args.probe_layers:
        run_probe_sweep(enc_args, genre_args, data_args, training_args)
        return
    splits, task = genre_splits(data_args, genre_args, training_args.seed)
    model, processor = build_model(enc_args, genre_args, data_args, task.names, **task.config_kwargs(splits["train"]))

    decoded, windows, skipped = prepare_splits(splits, model, processor, enc_args, data_args, training_args)
    callbacks = []
    if enc_args.encoder_mode == "frozen":
        train_rows, collator = windows["train"], embedding_collator
    else:
        if enc_args.freeze_feature_encoder:
            model.freeze_feature_encoder()
        crops = EpochCrops(processor, training_args.seed)
        train_rows, collator = decoded["train"], WaveformCollator(processor, crops)
        callbacks.append(crops)

    before = {split: clip_embeddings(model, windows[split], collator, training_args) for split in EMBEDDING_SPLITS}
    train_model = apply_lora(model, enc_args.lora_r, enc_args.lora_alpha, enc_args.lora_dropout) if enc_args.encoder_mode == "lora" else model
    metric = task.load_metric()
    hub = take_hub_settings(training_args)  # pushed once, at the end, by us; the token stays out of checkpoints
    trainer = make_trainer(train_model, train_rows, windows.get("validation"), collator, processor, callbacks, metric,
                           task, enc_args, genre_args, training_args)
    train_resuming(trainer, genre_args.overwrite_output_dir)

    model = trained_model(trainer, enc_args.encoder_mode)
    results, test_clips = evaluate_splits(trainer, windows, metric, task)
    if not trainer.is_world_process_zero():
        return
    after = {split: clip_embeddings(model, windows[split], collator, training_args) for split in EMBEDDING_SPLITS}
    plots = [
        *result_plots(task, results, test_clips, output_dir),
        *(plot_pca({"before training": before[split][0], "after training": after[split][0]}, after[split][1],
                   list(task.names), output_dir / f"pca_{split}_embeddings.png")
          for split in EMBEDDING_SPLITS if task.is_classification),
        plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png", task.logged_scores[0]),
    ]
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    results.update(
        run_settings(
            enc_args, data_args, training_args, ("genre", genre_args),
            {"optimizer": str(training_args.optim),
             "lora_r": enc_args.lora_r if enc_args.encoder_mode == "lora" else None},
            num_layers=model.layer_weighting.num_layers if model.layer_weighting is not None else 1,
            pooling=genre_args.pooling,
            head_hidden_size=genre_args.head_hidden_size,
            head_dropout=genre_args.head_dropout,
            label_names=list(task.names),
            problem_type=task.problem_type,
            window_overlap=data_args.window_overlap,
        ),
        split_sizes={split: len(ds) for split, ds in decoded.items()},
        skipped_files=skipped,
        mean_cosine={split: {"before": mean_pairwise_cosine(before[split][0]), "after": mean_pairwise_cosine(after[split][0])}
                     for split in EMBEDDING_SPLITS},
        **{f"{split}_{task.headline[0]}": results[split][task.headline[0]] for split in ("train", "test")},
        plots=[p.name for p in plots],
    )
    key, name = task.headline
    logger.info("Train %s %.4f; test %s %.4f; results in %s", name, results["train"][key], name, results["test"][key],
                output_dir)
    publish_run(output_dir, results, render_genre_card, training_args, hub,
                f"audiocap {task.problem_type} model: test {name} {results['test'][key]:.4f}")


def result_plots(task: ClipTask, results: dict, test_clips: tuple[np.ndarray, np.ndarray], output_dir: Path) -> list[Path]:
    """The test split's plot for the task: the confusion matrix of classes, each tag's ROC-AUC and PR-AUC, or the
    predicted against the true values."""
    if task.is_classification:
        return [plot_confusion_matrix(results["test"]["confusion_matrix"], list(task.names),
                                      output_dir / "confusion_matrix.png", "test")]
    if task.problem_type == "multi_label_classification":
        return [plot_tag_scores(results["test"]["per_tag"], output_dir / "tag_scores.png", "test clips, per tag")]
    logits, labels = test_clips
    return [plot_predictions(task.scores(logits), labels, list(task.names), output_dir / "predictions.png", "test clips")]


def make_trainer(train_model, train_rows, validation_rows, collator, processor: AudioCapFeatureExtractor, callbacks: list,
                 metric, task: ClipTask, enc_args: EncoderArguments, genre_args: GenreArguments,
                 training_args: TrainingArguments) -> Trainer:
    """The Trainer: validation each epoch and the best epoch kept (by a score the task logs), or (no validation
    split) the last epoch; every checkpoint carries the processor."""
    set_script_arguments(training_args, "train_genre.py", SCRIPT_ARGUMENTS)
    chosen = (training_args.metric_for_best_model or "").removeprefix("eval_")
    if chosen and chosen not in (*task.logged_scores, "loss"):
        why = f"a {task.problem_type} model logs {', '.join(task.logged_scores)}, not {chosen}"
        set_script_arguments(training_args, "train_genre.py",
                             {"metric_for_best_model": (task.logged_scores[0], why), "greater_is_better": (True, why)})
    if validation_rows is None:
        evaluate_without_validation(training_args, genre_args.early_stopping_patience)
    if genre_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(genre_args.early_stopping_patience))
    return Trainer(
        model=train_model,
        args=training_args,
        train_dataset=train_rows,
        eval_dataset=validation_rows,
        data_collator=collator,
        processing_class=processor,  # every checkpoint carries it
        compute_metrics=None if validation_rows is None else split_metrics(task, metric, validation_rows),
        optimizers=(make_optimizer(train_model, enc_args, training_args.learning_rate, training_args.weight_decay), None),
        callbacks=callbacks,
    )


@torch.inference_mode()
def clip_embeddings(model, rows, collator, training_args: TrainingArguments) -> tuple[np.ndarray, np.ndarray]:
    """Clip-level embeddings `(clips, D)` (mean over the evaluation windows) of window `rows` and the clips' labels,
    in clip order."""
    model.eval()
    outputs = []
    for start in range(0, len(rows), training_args.per_device_eval_batch_size):
        batch = collator([rows[i] for i in range(start, min(start + training_args.per_device_eval_batch_size, len(rows)))])
        batch.pop("labels")
        outputs.append(model(**{k: v.to(model.device) for k, v in batch.items()}).embeddings.float().cpu().numpy())
    embeddings, labels, _ = clip_level(np.concatenate(outputs), np.asarray(rows["label"]), np.asarray(rows["clip_index"]))
    return embeddings, labels


def evaluate_splits(trainer: Trainer, windows: dict, metric, task: ClipTask) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Clip-level metrics of every split (train on its evaluation windows, not the training crops), the test split's
    scored for a model that ignores the audio (`prior_baseline`: the training clips' prior, `ClipTask.prior_logits`;
    chance to beat), and the test clips' logits and labels. A tagger's F1 counts the tags at 0.5, or at each tag's best threshold on the validation
    split (`thresholds` in the results), chosen before the other splits are scored."""
    results, clips = {}, {}
    thresholds = 0.5
    for split in ("validation", "train", "test"):
        if split not in windows:
            continue
        trainer.compute_metrics = split_metrics(task, metric, windows[split])
        prediction = trainer.predict(windows[split], metric_key_prefix=split)
        clip_logits, clip_labels, _ = clip_level(window_logits(prediction), prediction.label_ids,
                                                 np.asarray(windows[split]["clip_index"]))
        if split == "validation" and task.problem_type == "multi_label_classification":
            thresholds = best_thresholds(task.scores(clip_logits), clip_labels)
            results["thresholds"] = dict(zip(task.names, thresholds))
        results[split] = task.clip_metrics(metric, clip_logits, clip_labels, thresholds)
        clips[split] = (clip_logits, clip_labels)
    test_labels = clips["test"][1]
    prior = np.tile(task.prior_logits(clips["train"][1]), (len(test_labels), 1))
    baseline = task.clip_metrics(metric, prior, test_labels, thresholds)
    results["prior_baseline"] = {key: value for key, value in baseline.items() if not isinstance(value, (dict, list))}
    return results, clips["test"]


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
