"""Steps every training script shares: logging and seeding, the built-in set, the splits (with or without
validation), resuming, unwrapping LoRA."""

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import transformers
from datasets import Dataset, DatasetDict, concatenate_datasets
from transformers import Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import IntervalStrategy, get_last_checkpoint

from ..data.synthetic import generate_music_set
from ..embedding.output import atomic_write_json
from ..hub import HubSettings, package_versions, push_folder
from .arguments import AudioDataArguments, EncoderArguments, public_settings
from .provenance import run_sources

logger = logging.getLogger(__name__)


def start_run(training_args: TrainingArguments) -> Path:
    """Log on the main process, quiet transformers, seed everything; returns `output_dir`."""
    logging.basicConfig(
        level=logging.INFO if training_args.should_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    transformers.utils.logging.set_verbosity_warning()
    set_seed(training_args.seed)
    return Path(training_args.output_dir)


def builtin_set(data_args: AudioDataArguments) -> Path:
    """Write (or reuse) the built-in music set with the run's settings."""
    return generate_music_set(
        data_args.builtin_dir, clips_per_genre=data_args.builtin_clips_per_genre, seconds=data_args.builtin_seconds
    )


def load_splits(
    loader: Callable[..., DatasetDict], data_args: AudioDataArguments, seed: int, builtin_columns: dict, **columns
) -> DatasetDict:
    """The run's splits through `loader` (`load_genre_dataset` / `load_caption_dataset`): the built-in set (its
    columns named by `builtin_columns`) or `--dataset_name` (its columns named by `columns`), then cut to
    `--max_train_samples` / `--max_eval_samples`. With `--validation_fraction 0` the validation clips join train."""
    if data_args.dataset_name == "builtin":
        path = str(builtin_set(data_args))
        splits = loader(path, split_protocol=data_args.split_protocol, seed=seed, **builtin_columns)
    else:
        splits = loader(
            data_args.dataset_name,
            data_args.dataset_config_name,
            audio_column_name=data_args.audio_column_name,
            split_protocol=data_args.split_protocol,
            seed=seed,
            dataset_revision=data_args.dataset_revision,
            **columns,
        )
    if data_args.validation_fraction == 0:
        splits = without_validation(splits)
    return truncate_splits(splits, data_args.max_train_samples, data_args.max_eval_samples, seed)


def without_validation(splits: DatasetDict) -> DatasetDict:
    """`train` + `validation` as one `train`, and `test`: the same test clips as with a validation split."""
    train = concatenate_datasets([splits["train"], splits["validation"]])
    logger.info("No validation split (--validation_fraction 0): train / test = %d / %d clips", len(train), len(splits["test"]))
    return DatasetDict({"train": train, "test": splits["test"]})


def set_script_arguments(training_args: TrainingArguments, script: str, settings: dict[str, tuple[object, str]]) -> None:
    """Set the TrainingArguments a script owns (`name -> (value, why)`), saying so: a value the user gave otherwise
    is overridden with a warning naming it and the reason, never silently."""
    for name, (value, why) in settings.items():
        current = getattr(training_args, name)
        if current != value:
            logger.warning("%s sets --%s %s (was %s): %s", script, name, value, current, why)
        setattr(training_args, name, value)


def evaluate_without_validation(training_args: TrainingArguments, early_stopping_patience: int | None) -> None:
    """Training arguments for a run without a validation split: no evaluation during training and no best-model
    selection (the last epoch is the model); early stopping, which needs a validation split, is refused."""
    if early_stopping_patience:
        raise ValueError("--early_stopping_patience needs a validation split; --validation_fraction 0 has none")
    changed = []
    if IntervalStrategy(training_args.eval_strategy) != IntervalStrategy.NO:
        changed.append(f"--eval_strategy {IntervalStrategy(training_args.eval_strategy).value} -> no")
    if training_args.load_best_model_at_end:
        changed.append("--load_best_model_at_end true -> false")
    training_args.eval_strategy = IntervalStrategy.NO
    training_args.do_eval = False
    training_args.load_best_model_at_end = False
    logger.warning(
        "No validation split: no evaluation during training, no best-model selection or early stopping; the last "
        "epoch is the model, evaluated on train and test%s", f" ({', '.join(changed)})" if changed else ""
    )


def model_selection(training_args: TrainingArguments) -> str:
    """How the published model was chosen, in words: `best validation <metric>` or `last epoch`."""
    if training_args.load_best_model_at_end:
        return f"best validation {training_args.metric_for_best_model}"
    return "last epoch"


def seeded_sample(split: Dataset, limit: int | None, seed: int) -> Dataset:
    """The first `limit` rows of a seeded shuffle of `split` (all of it without a limit or when it is smaller)."""
    if limit is None or limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))


def truncate_splits(
    splits: DatasetDict, max_train_samples: int | None, max_eval_samples: int | None, seed: int
) -> DatasetDict:
    """At most `max_train_samples` train clips and at most `max_eval_samples` of validation and of test, each a
    seeded shuffle's first ones (as in transformers' audio-classification example), so that a label-sorted source
    keeps its mix of labels."""
    out = {}
    for name, split in splits.items():
        limit = max_train_samples if name == "train" else max_eval_samples
        out[name] = seeded_sample(split, limit, seed)
        if len(out[name]) < len(split):
            logger.info("%s split cut to %d clips", name, limit)
    return DatasetDict(out)


def train_resuming(trainer: Trainer, overwrite_output_dir: bool) -> None:
    """Train, continuing from `--resume_from_checkpoint` or else the last checkpoint in `output_dir`."""
    checkpoint = trainer.args.resume_from_checkpoint
    output_dir = Path(trainer.args.output_dir)
    if checkpoint is None and output_dir.is_dir() and not overwrite_output_dir:
        checkpoint = get_last_checkpoint(str(output_dir))
        if checkpoint:
            logger.info("Resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)


def write_results(output_dir: Path, results: dict) -> Path:
    """`output_dir/results.json`: the run's results and set-up, indented, written atomically (a run killed mid-write
    leaves the previous file); values JSON has no type for (paths, enums) written as their strings."""
    path = Path(output_dir) / "results.json"
    atomic_write_json(path, results, sort_keys=False)
    return path


def run_settings(
    enc_args: EncoderArguments,
    data_args: AudioDataArguments,
    training_args: TrainingArguments,
    task: tuple[str, Any],
    hyperparameters: dict,
    models: dict[str, tuple[str, dict]] | None = None,
    **settings,
) -> dict:
    """The run's set-up as `results.json` records it: the encoder, the task's `settings`, the data, how the model was
    chosen, the hyper-parameters (the shared ones and the task's), the resolved configuration (`task` is the task's
    `(name, arguments dataclass)`), what every input resolved to (the encoder and `models`: role -> (name, Hub
    arguments)) and the library versions."""
    name, task_args = task
    return dict(
        encoder=enc_args.encoder_name_or_path,
        encoder_mode=enc_args.encoder_mode,
        use_layer_weighting=enc_args.use_layer_weighting,
        **settings,
        dataset=data_args.dataset_name,
        split_protocol=data_args.split_protocol,
        model_selection=model_selection(training_args),
        seed=training_args.seed,
        world_size=training_args.world_size,
        window_seconds=data_args.max_length_seconds,
        hyperparameters={
            "learning_rate": training_args.learning_rate,
            "encoder_learning_rate": enc_args.encoder_learning_rate,
            "epochs": training_args.num_train_epochs,
            "batch_size": training_args.per_device_train_batch_size * training_args.world_size,
            **hyperparameters,
        },
        config={"encoder": public_settings(enc_args), name: asdict(task_args), "data": asdict(data_args),
                "training": training_args.to_dict()},
        sources=run_sources(
            data_args, {"encoder": (enc_args.encoder_name_or_path, enc_args.hub_kwargs()), **(models or {})}
        ),
        versions=package_versions(),
    )


def publish_run(
    output_dir: Path,
    results: dict,
    render_card: Callable[[Path, dict, str], Any],
    training_args: TrainingArguments,
    hub: HubSettings | None,
    summary: str,
) -> None:
    """The end of every run: `results.json`, the model card (`render_card`), and with `--push_to_hub` the folder
    pushed to `--hub_model_id` (the folder's name by default) with `summary` as the commit message."""
    write_results(output_dir, results)
    repo_id = training_args.hub_model_id or output_dir.name
    render_card(output_dir, results, repo_id)
    if hub is not None:
        push_folder(output_dir, repo_id, summary, hub)


def trained_model(trainer: Trainer, encoder_mode: str):
    """The model to evaluate and publish: LoRA adapters are merged into a plain model."""
    if encoder_mode == "lora":
        trainer.model = trainer.model.merge_and_unload()
    return trainer.model
