"""A clip model's run set-up, shared by `train_genre.py` and the probe suite (`audiocap-probe`): its splits and the
task they make, the model and processor, decoded and windowed splits (frozen: with cached layer-wise embeddings),
and the per-layer probe sweep over seeds."""

import logging
from pathlib import Path

from transformers import TrainingArguments

from ..embedding.output import atomic_write_json
from ..encoders import resolve_encoder
from ..data.genre import load_genre_dataset
from ..hub import package_versions
from ..modeling_audiocap import AudioEncoderForGenreClassification
from ..processing_audiocap import AudioCapFeatureExtractor
from .arguments import AudioDataArguments, EncoderArguments, GenreArguments
from .clip_tasks import ClipTask
from .genre_data import decode_splits, embed_windows, window_dataset
from .probe import probe_sweep, summarize_sweeps, write_sweep_report
from .runs import load_splits

logger = logging.getLogger(__name__)


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


def sweep_layers(enc_args: EncoderArguments, genre_args: GenreArguments, data_args: AudioDataArguments,
                 training_args: TrainingArguments, seeds: list[int], layers: list[int] | None = None) -> tuple[ClipTask, list[dict]]:
    """The task and, per seed, a probe on each layer and the learned weighting (`probe_sweep`) on the frozen
    encoder's cached embeddings of that seed's splits."""
    if enc_args.encoder_mode != "frozen":
        raise ValueError("--probe_layers works on cached embeddings: use --encoder_mode frozen")
    sweeps, model, processor, task = [], None, None, None
    for seed in seeds:
        splits, task = genre_splits(data_args, genre_args, seed)
        if model is None:
            model, processor = build_model(enc_args, genre_args, data_args, task.names, **task.config_kwargs(splits["train"]))
        _, windows, _ = prepare_splits(splits, model, processor, enc_args, data_args, training_args)
        sweeps.append({"seed": seed, **probe_sweep(windows, task, seed, layers)})
    return task, sweeps


def write_probe_report(output_dir: Path, task: ClipTask, sweeps: list[dict], enc_args: EncoderArguments,
                       data_args: AudioDataArguments) -> dict:
    """`probe_layers.{md,png,json}` in `output_dir` for one encoder on one task; returns the JSON's content."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    seeds = [sweep["seed"] for sweep in sweeps]
    summary = summarize_sweeps(sweeps)
    table, plot = write_sweep_report(summary, seeds, output_dir, task)
    report = {"encoder": enc_args.encoder_name_or_path, "dataset": data_args.dataset_name,
              "dataset_config_name": data_args.dataset_config_name, "problem_type": task.problem_type,
              "label_names": list(task.names), "headline": task.probe_scores[0][2],
              "split_protocol": data_args.split_protocol, "seeds": seeds, "summary": summary, "runs": sweeps,
              "versions": package_versions()}
    atomic_write_json(output_dir / "probe_layers.json", report, sort_keys=False)
    logger.info("Probe sweep written to %s and %s:\n%s", table, plot, table.read_text())
    return report
