"""Train and evaluate a clip model: `accelerate launch train_genre.py --config configs/<run>.yaml [--flag value]`.

The label column(s) decide what it learns (`--problem_type` forces it): one column of classes makes a genre (or any
class) classifier, a tag list or several columns a tagger, number columns a regressor (`data.targets.clip_targets`).
Encoder modes: `frozen` (layer-wise embeddings computed once and cached; only the layer weighting and the head
train), `unfrozen` (everything trains, with its own encoder learning rate) and `lora` (peft adapters + head).
`output_dir` ends as a publishable model repo with `results.json`, plots and a model card.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import modeling_audiocap  # noqa: F401  (first: checks the torch trio before transformers loads torchaudio)
import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

from modeling_audiocap import AudioEncoderForGenreClassification, resolve_encoder
from modeling_audiocap.data.genre import load_genre_dataset
from modeling_audiocap.embedding.output import atomic_write_json
from modeling_audiocap.hub import package_versions, render_genre_card, take_hub_settings
from modeling_audiocap.metrics.ranking import best_thresholds
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor
from modeling_audiocap.training.arguments import (
    AudioDataArguments,
    EncoderArguments,
    parse_with_config,
)
from modeling_audiocap.training.clip_tasks import ClipTask
from modeling_audiocap.training.collators import WaveformCollator, embedding_collator
from modeling_audiocap.training.crops import EpochCrops
from modeling_audiocap.training.genre_data import (
    clip_level,
    decode_splits,
    embed_windows,
    window_dataset,
)
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
    load_splits,
    publish_run,
    run_settings,
    set_script_arguments,
    start_run,
    train_resuming,
    trained_model,
)
from modeling_audiocap.training.probe import probe_sweep, summarize_sweeps, write_sweep_report

logger = logging.getLogger("audiocap.train_genre")
EMBEDDING_SPLITS = ("train", "test")  # PCA plots and mean pairwise cosine similarity, before and after training
# TrainingArguments this script owns: name -> (value, why).
SCRIPT_ARGUMENTS = {
    "remove_unused_columns": (False, "the collators read columns the model does not take (clip ids, waveforms)"),
    "label_names": (["labels"], "the collators put the class, tags or values in `labels`"),
}


@dataclass
class GenreArguments:
    """The head and what it predicts."""

    label_column_name: str | None = field(
        default=None,
        metadata={"help": "Column(s) holding the targets, comma-separated (default: label; on the built-in set genre). "
                          "One column of classes: a classifier; a tag list, several 0/1 or categorical columns: a "
                          "tagger; number columns: a regressor. Built-in set: genre, mode, instrument, drums, "
                          "tempo_class (classes), tempo_bpm (a number)."},
    )
    problem_type: str | None = field(
        default=None,
        metadata={"help": "single_label_classification | multi_label_classification | regression (default: what "
                          "the label column holds; a delimited tag string such as 'rock|guitar' needs "
                          "multi_label_classification)."},
    )
    pooling: str = field(default="mean", metadata={"help": "mean | attention"})
    head_hidden_size: int = field(default=512, metadata={"help": "Hidden units of the MLP head; 0: a linear probe."})
    head_dropout: float = field(default=0.2, metadata={"help": "Dropout in the head."})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Epochs without improvement."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start afresh instead of resuming from the last checkpoint in output_dir."}
    )
    probe_layers: str | None = field(
        default=None, metadata={"help": "Frozen mode: 'all' or '0,4,8' trains a probe per layer instead of the head."}
    )
    seeds: str | None = field(default=None, metadata={"help": "Probe sweep: comma-separated seeds (e.g. 0,1,2)."})


def label_columns(data_args: AudioDataArguments, genre_args: GenreArguments) -> str:
    """The run's label column(s): `--label_column_name`, or the source's default (`genre` on the built-in set)."""
    return genre_args.label_column_name or ("genre" if data_args.dataset_name == "builtin" else "label")


def genre_splits(data_args: AudioDataArguments, genre_args: GenreArguments, seed: int):
    """The run's splits with their targets in `label`, and the task they make (`ClipTask`)."""
    columns = label_columns(data_args, genre_args)
    targets = {"label_column_name": columns, "problem_type": genre_args.problem_type}
    splits = load_splits(load_genre_dataset, data_args, seed, targets, **targets)
    task = ClipTask.of(splits["train"].features["label"], [c.strip() for c in columns.split(",")])
    return task.training_labels(splits), task


def build_model(enc_args: EncoderArguments, genre_args: GenreArguments, data_args: AudioDataArguments, label_names,
                **task_config):
    """The model around the resolved encoder (`task_config`: `ClipTask.config_kwargs`) and its processor."""
    resolved = resolve_encoder(
        enc_args.encoder_name_or_path, clap_output=enc_args.clap_output, config_overrides=enc_args.config_overrides(),
        **enc_args.hub_kwargs(),
    )
    model = AudioEncoderForGenreClassification.from_encoder_pretrained(
        resolved,
        dict(enumerate(label_names)),
        **task_config,
        use_layer_weighting=enc_args.use_layer_weighting,
        pooling=genre_args.pooling,
        head_hidden_size=genre_args.head_hidden_size,
        head_dropout=genre_args.head_dropout,
        window_seconds=data_args.max_length_seconds,
        clap_output=enc_args.clap_output,
    )
    processor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=data_args.max_length_seconds,
                                  hop_seconds=data_args.hop_seconds)
    return model, processor


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


def prepare_splits(splits, model, processor, enc_args, data_args, training_args):
    """Decoded clips, window rows (frozen mode: with cached layer-wise embeddings) and the skipped files."""
    with training_args.main_process_first(desc="prepare data"):
        decoded, skipped = decode_splits(splits, processor, data_args.preprocessing_num_workers, data_args.decoded_cache_dir)
        windows = {split: window_dataset(ds, processor) for split, ds in decoded.items()}
    if enc_args.encoder_mode == "frozen":
        model.freeze_encoder()
        with training_args.main_process_first(desc="embedding cache"):
            windows = {
                split: embed_windows(w, model, lambda waves: dict(processor.featurize(waves)), data_args.embedding_cache_dir,
                                     enc_args.encoder_name_or_path, training_args.per_device_eval_batch_size)
                for split, w in windows.items()
            }
    return decoded, windows, skipped


def run_probe_sweep(model, processor, enc_args, genre_args, data_args, training_args, task: ClipTask) -> None:
    """`--probe_layers`: a probe per layer and the learned weighting, over `--seeds`; table, plot and JSON."""
    if enc_args.encoder_mode != "frozen":
        raise ValueError("--probe_layers works on cached embeddings: use --encoder_mode frozen")
    if not task.is_classification:
        raise ValueError(f"--probe_layers probes classes; this run's labels make a {task.problem_type} task")
    layers = None if genre_args.probe_layers == "all" else [int(x) for x in genre_args.probe_layers.split(",")]
    seeds = [int(x) for x in genre_args.seeds.split(",")] if genre_args.seeds else [training_args.seed]
    sweeps = []
    for seed in seeds:
        splits, _ = genre_splits(data_args, genre_args, seed)
        _, windows, _ = prepare_splits(splits, model, processor, enc_args, data_args, training_args)
        sweeps.append({"seed": seed, **probe_sweep(windows, len(task.names), seed, layers)})
    if not training_args.should_save:
        return
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize_sweeps(sweeps)
    table, plot = write_sweep_report(summary, seeds, output_dir)
    report = {"encoder": enc_args.encoder_name_or_path, "dataset": data_args.dataset_name,
              "split_protocol": data_args.split_protocol, "seeds": seeds, "summary": summary, "runs": sweeps,
              "versions": package_versions()}
    atomic_write_json(output_dir / "probe_layers.json", report, sort_keys=False)
    logger.info("Probe sweep written to %s and %s:\n%s", table, plot, table.read_text())


def main() -> None:
    enc_args, genre_args, data_args, training_args = parse_with_config(
        (EncoderArguments, GenreArguments, AudioDataArguments, TrainingArguments)
    )
    output_dir = start_run(training_args)

    splits, task = genre_splits(data_args, genre_args, training_args.seed)
    model, processor = build_model(enc_args, genre_args, data_args, task.names, **task.config_kwargs(splits["train"]))
    if genre_args.probe_layers:
        run_probe_sweep(model, processor, enc_args, genre_args, data_args, training_args, task)
        return

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
