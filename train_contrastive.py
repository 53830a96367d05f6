"""Contrastive (CLMR / SimCLR) pre-training of a waveform encoder, then a linear-probe evaluation against the same
architecture randomly initialised: `accelerate launch train_contrastive.py --config configs/<run>.yaml [--flag value]`.

Each step takes two random crops of every clip of the batch (the pre-training split, labels unused), passes each
through the augmentation chain (`modeling_audiocap.training.augment`: polarity, noise, gain, filter, pitch; SpecAugment
masks and noise on the log-mel of spectrogram encoders), encodes both views (masked mean of the last hidden state,
then the projection MLP) and minimises NT-Xent. The loop is a `transformers.Trainer` (`ContrastiveTrainer`), so
the generic settings are `TrainingArguments` flags (`--num_train_epochs`, `--per_device_train_batch_size`,
`--learning_rate`, `--save_strategy`, `--logging_steps`, ...) and a run resumes from its last checkpoint in
`output_dir`; under `accelerate launch` each process's loss is over its own batch.

`output_dir` ends with:

- `encoder/`: the pre-trained encoder alone (config, safetensors, feature extractor), a normal encoder directory
  (`resolve_encoder("<output_dir>/encoder")`, `train_genre.py --encoder_name_or_path <output_dir>/encoder`);
- `results.json`: the resolved configuration, package versions, the loss curve, and `linear_probe` with
  `pretrained_accuracy` and `random_init_accuracy` (test accuracy per clip of a logistic-regression probe on frozen
  clip embeddings; `C` chosen on validation) and the same probes' test `*_map` (macro average precision) and
  `*_roc_auc` (macro one-vs-rest ROC-AUC) from their class probabilities, the random-init encoder being the weights
  pre-training started from (or, for an encoder loaded from a checkpoint, a fresh random initialisation of its
  config);
- `loss_curve.png`: the training loss the Trainer logged (every `--logging_steps`) and its mean per epoch.
"""

import copy
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import modeling_audiocap  # noqa: F401  (first: checks the torch trio before transformers loads torchaudio)
import numpy as np
import torch
from transformers import TrainingArguments

from modeling_audiocap import resolve_encoder
from modeling_audiocap.data.genre import load_genre_dataset
from modeling_audiocap.encoder_families import short_names
from modeling_audiocap.hub import package_versions, push_folder, take_hub_settings
from modeling_audiocap.processing_audiocap import AudioCapFeatureExtractor
from modeling_audiocap.training.arguments import AudioDataArguments, parse_config_overrides, parse_with_config
from modeling_audiocap.training.augment import (
    attach_spectrogram_augmentation,
    clmr_augmentations,
    spectrogram_augmentations,
)
from modeling_audiocap.training.collators import ClipIndices, TwoViewCollator
from modeling_audiocap.training.contrastive import (
    PROBE_C_GRID,
    ContrastiveModel,
    ContrastiveTrainer,
    clip_embeddings,
    fuse_embeddings,
    linear_probe,
    random_init_like,
)
from modeling_audiocap.training.genre_data import decode_splits
from modeling_audiocap.training.plots import plot_loss_curve
from modeling_audiocap.training.runs import (
    load_splits,
    set_script_arguments,
    start_run,
    train_resuming,
    write_results,
)

logger = logging.getLogger("audiocap.train_contrastive")
# TrainingArguments this script owns: name -> (value, why).
SCRIPT_ARGUMENTS = {
    "dataloader_drop_last": (True, "NT-Xent contrasts each clip with the rest of its batch; a short last batch would "
                                   "have fewer negatives"),
}


@dataclass
class ContrastiveArguments:
    """The encoder, the contrastive objective, the augmentations and the probe (the loop's settings are
    `TrainingArguments`)."""

    encoder_name_or_path: str = field(
        default="audiocap/samplecnn",
        metadata={"help": "A waveform encoder: short audiocap name (random weights), Hub id or local dir."},
    )
    encoder_config_overrides: str | None = field(
        default=None,
        metadata={"help": "Short names only: a YAML/JSON mapping of config fields, e.g. '{sampling_rate: 16000}'."},
    )
    label_column_name: str = field(default="label", metadata={"help": "Column holding the genre (probe only)."})
    pretrain_split: str = field(default="train", metadata={"help": "Split(s) pre-trained on, comma-separated."})
    temperature: float = field(default=0.5, metadata={"help": "NT-Xent temperature."})
    projection_dim: int = field(default=128, metadata={"help": "Width of the projection head's output z."})
    projection_hidden_size: int | None = field(
        default=None, metadata={"help": "Hidden width of the projection MLP (default: the encoder's width)."}
    )
    crop_seconds: float = field(default=2.678, metadata={"help": "Length of each random crop (view)."})
    crop_samples: int | None = field(
        default=None, metadata={"help": "Crop length in samples (overrides crop_seconds; CLMR: 59049)."}
    )
    polarity_p: float = field(default=0.8, metadata={"help": "Probability of polarity inversion (CLMR: 0.8)."})
    noise_p: float = field(default=0.01, metadata={"help": "Probability of Gaussian noise (CLMR: 0.01)."})
    noise_snr_db: list[float] = field(default_factory=lambda: [20.0, 40.0], metadata={"help": "Noise SNR range, dB."})
    gain_p: float = field(default=0.3, metadata={"help": "Probability of a random gain (CLMR: 0.3)."})
    min_gain_db: float = field(default=-6.0, metadata={"help": "Lowest gain, dB."})
    max_gain_db: float = field(default=0.0, metadata={"help": "Highest gain, dB."})
    filter_p: float = field(default=0.8, metadata={"help": "Probability of a low/high-pass filter (CLMR: 0.8)."})
    pitch_p: float = field(default=0.6, metadata={"help": "Probability of a pitch shift (CLMR: 0.6)."})
    max_semitones: float = field(default=5.0, metadata={"help": "Largest pitch shift, semitones."})
    delay_p: float = field(default=0.3, metadata={"help": "Probability of an echo 200-500 ms later (CLMR: 0.3)."})
    reverb_p: float = field(default=0.6, metadata={"help": "Probability of room reverberation (CLMR: 0.6)."})
    time_mask_p: float = field(default=0.5, metadata={"help": "Spectrogram encoders: probability of a time mask."})
    frequency_mask_p: float = field(
        default=0.5, metadata={"help": "Spectrogram encoders: probability of a mel-band mask."}
    )
    spectrogram_noise_p: float = field(
        default=0.3, metadata={"help": "Spectrogram encoders: probability of noise mixing."}
    )
    probe_layers: str = field(default="last", metadata={"help": "Probe features: last (mean-pooled last layer) | all."})
    probe_batch_size: int = field(default=32, metadata={"help": "Windows per batch when embedding for the probe."})
    fuse_with_encoder: str | None = field(
        default=None, metadata={"help": "Also probe the late fusion with this (frozen) encoder's clip embeddings."}
    )
    num_threads: int | None = field(
        default=None,
        metadata={"help": "torch intra-op threads of each process (default: torch's); 1 avoids oversubscribing a "
                  "small shared CPU, DataLoader workers use one each."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start afresh instead of resuming from the last checkpoint in output_dir."}
    )

    def __post_init__(self):
        if self.probe_layers not in ("last", "all"):
            raise ValueError(f"--probe_layers must be last or all, got {self.probe_layers!r}")
        if len(self.noise_snr_db) != 2:
            raise ValueError("--noise_snr_db takes two values: low high")

    def config_overrides(self) -> dict | None:
        return parse_config_overrides(self.encoder_config_overrides)


def genre_splits(data_args: AudioDataArguments, args: ContrastiveArguments, seed: int):
    """The shared split loading of the training scripts, with this run's label column."""
    return load_splits(load_genre_dataset, data_args, seed, {"label_column_name": "genre"},
                       label_column_name=args.label_column_name)


def probe_processor(feature_extractor, data_args: AudioDataArguments) -> AudioCapFeatureExtractor:
    """How the probe reads clips: the encoder's rate, `--max_length_seconds` windows every `--window_overlap`."""
    return AudioCapFeatureExtractor(feature_extractor=feature_extractor, window_seconds=data_args.max_length_seconds,
                             hop_seconds=data_args.hop_seconds)


def probe_encoders(encoders: dict, decoded: dict, processor: AudioCapFeatureExtractor, args: ContrastiveArguments, device,
                   extra=None):
    """Clip embeddings of every split for each named encoder, and a linear probe on each (plus fusions)."""
    labels = {split: np.asarray(ds["label"]) for split, ds in decoded.items()}
    embeddings = {}
    for name, encoder in encoders.items():
        encoder.to(device)
        embeddings[name] = {
            split: clip_embeddings(encoder, ds["waveform"], processor, args.probe_layers, args.probe_batch_size, device)
            for split, ds in decoded.items()
        }
    if extra:
        embeddings.update(extra)
    probes = {}
    for name, per_split in embeddings.items():
        probes[name] = linear_probe(*((per_split[s], labels[s]) for s in ("train", "validation", "test")))
        logger.info(
            "Linear probe %s: test accuracy %.4f, mAP %s, ROC-AUC %s (C=%s)", name, probes[name]["accuracy"],
            probes[name]["map"], probes[name]["roc_auc"], probes[name]["best_c"],
        )
    rate = processor.sampling_rate
    hop = processor.hop_samples or processor.window_samples
    return probes, embeddings, {"window_seconds": processor.window_samples / rate, "hop_seconds": hop / rate}


@dataclass
class Run:
    """What the steps of a run share: the arguments, the model and its random-init twin, the data."""

    args: ContrastiveArguments
    data_args: AudioDataArguments
    training_args: TrainingArguments
    model: ContrastiveModel
    processor: AudioCapFeatureExtractor
    random_encoder: torch.nn.Module
    random_start: bool
    crop: int
    splits: dict = field(default_factory=dict)
    decoded: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)

    @property
    def rate(self) -> int:
        return self.processor.sampling_rate


def start(args: ContrastiveArguments, data_args: AudioDataArguments, training_args: TrainingArguments) -> Run:
    """Threads, logging and seed (`start_run`), then the encoder (right after seeding: for a short name its initial
    weights are the random-init baseline) and its projection head."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if training_args.per_device_train_batch_size < 2:
        raise ValueError("--per_device_train_batch_size must be at least 2 (NT-Xent needs negatives)")
    start_run(training_args)
    resolved = resolve_encoder(args.encoder_name_or_path, config_overrides=args.config_overrides())
    random_start = args.encoder_name_or_path in short_names() and not os.path.isdir(args.encoder_name_or_path)
    if random_start:
        random_encoder = copy.deepcopy(resolved.model)
    else:
        random_encoder = random_init_like(resolved.model, training_args.seed)
    model = ContrastiveModel(
        resolved.model, resolved.feature_extractor, args.projection_dim, args.projection_hidden_size
    )
    processor = probe_processor(model.feature_extractor, data_args)
    crop = args.crop_samples or int(round(args.crop_seconds * processor.sampling_rate))
    return Run(args, data_args, training_args, model, processor, random_encoder, random_start, crop)


def load_data(run: Run) -> None:
    """The splits (the shared resolver), decoded at the encoder's rate (unreadable files skipped and listed)."""
    with run.training_args.main_process_first(desc="decode audio"):
        run.splits = genre_splits(run.data_args, run.args, run.training_args.seed)
        run.decoded, run.skipped = decode_splits(
            run.splits, run.processor, run.data_args.preprocessing_num_workers, run.data_args.decoded_cache_dir
        )


def pretraining_clips(run: Run):
    names = [s.strip() for s in run.args.pretrain_split.split(",") if s.strip()]
    if len(names) == 1:
        return run.decoded[names[0]]
    import datasets

    return datasets.concatenate_datasets([run.decoded[s] for s in names]).with_format("numpy")


def augmentation_chains(run: Run) -> tuple:
    """CLMR's waveform chain and, for spectrogram encoders, the log-mel chain (hooked into the encoder)."""
    args = run.args
    chain = clmr_augmentations(
        run.rate, args.polarity_p, args.noise_p, args.gain_p, args.filter_p, args.pitch_p, args.max_semitones,
        args.min_gain_db, args.max_gain_db, args.noise_snr_db, args.delay_p, args.reverb_p,
    )
    spec_chain = spectrogram_augmentations(args.time_mask_p, args.frequency_mask_p, args.spectrogram_noise_p)
    return chain, spec_chain


def pretrain(run: Run, clips) -> dict:
    """NT-Xent over two augmented crops of every clip, on the Trainer (resuming from the last checkpoint in
    `output_dir`); returns what the report records."""
    args, training_args = run.args, run.training_args
    batch = training_args.per_device_train_batch_size
    if len(clips) // training_args.world_size < batch:
        raise ValueError(
            f"--per_device_train_batch_size {batch} x {training_args.world_size} process(es) is more than the "
            f"{len(clips)} pre-training clips ({args.pretrain_split}): not one full batch; lower the batch size"
        )
    set_script_arguments(training_args, "train_contrastive.py", SCRIPT_ARGUMENTS)
    chain, spec_chain = augmentation_chains(run)
    process_seed = training_args.seed + 1000 * training_args.process_index
    spec_hook = attach_spectrogram_augmentation(
        run.model.encoder, spec_chain, torch.Generator().manual_seed(process_seed + 1)
    )
    views = AudioCapFeatureExtractor(run.processor.feature_extractor, window_seconds=run.crop / run.rate)
    collator = TwoViewCollator(clips, chain, training_args.seed, views)
    trainer = ContrastiveTrainer(
        model=run.model,
        args=training_args,
        train_dataset=ClipIndices(len(clips)),
        data_collator=collator,
        processing_class=run.processor,
        callbacks=[collator],
        temperature=args.temperature,
    )
    logger.info(
        "Pre-training %s (%d parameters) on %d clips (%s): %s epochs, batch %d x %d processes, crops of %d samples at "
        "%d Hz", args.encoder_name_or_path, sum(p.numel() for p in run.model.parameters()), len(clips),
        args.pretrain_split, training_args.num_train_epochs, batch, training_args.world_size, run.crop, run.rate,
    )
    started = time.perf_counter()
    train_resuming(trainer, args.overwrite_output_dir)
    if spec_hook is not None:
        spec_hook.remove()
    run.model = trainer.model
    gradient_steps = max(len(trainer.get_train_dataloader()) // training_args.gradient_accumulation_steps, 1)
    return {
        "trainer": trainer,
        "clips": len(clips),
        "steps_per_epoch": gradient_steps,
        "train_seconds": time.perf_counter() - started,
        "augmentations": {"waveform": repr(chain), "spectrogram": repr(spec_chain) if spec_hook is not None else None},
    }


def probe(run: Run) -> dict:
    """Linear probes of the pre-trained and the random-init encoder (and a late fusion with another encoder)."""
    args, data_args, decoded = run.args, run.data_args, run.decoded
    started = time.perf_counter()
    device = run.training_args.device
    encoders = {"pretrained": run.model.encoder.eval(), "random_init": run.random_encoder.eval()}
    probes, embeddings, windows = probe_encoders(encoders, decoded, run.processor, args, device)
    fusion = None
    if args.fuse_with_encoder:
        other = resolve_encoder(args.fuse_with_encoder)
        other_processor = probe_processor(other.feature_extractor, data_args)
        other_decoded = decoded if other_processor.sampling_rate == run.rate else decode_splits(
            run.splits, other_processor, data_args.preprocessing_num_workers, data_args.decoded_cache_dir
        )[0]
        other_probes, other_embeddings, _ = probe_encoders(
            {"other": other.model.eval()}, other_decoded, other_processor, args, device
        )
        fused = {s: fuse_embeddings([embeddings["pretrained"][s], other_embeddings["other"][s]]) for s in decoded}
        fused_probes, _, _ = probe_encoders({}, decoded, run.processor, args, device, extra={"fused": fused})
        fusion = {
            "encoder": args.fuse_with_encoder,
            "accuracy": other_probes["other"]["accuracy"],
            "fused_accuracy": fused_probes["fused"]["accuracy"],
            **{key: other_probes["other"][key] for key in ("map", "roc_auc")},
            **{f"fused_{key}": fused_probes["fused"][key] for key in ("map", "roc_auc")},
            "details": other_probes["other"],
            "fused_details": fused_probes["fused"],
        }
    return {
        "pretrained_accuracy": probes["pretrained"]["accuracy"],
        "random_init_accuracy": probes["random_init"]["accuracy"],
        "margin": probes["pretrained"]["accuracy"] - probes["random_init"]["accuracy"],
        **{f"{name}_{key}": probes[name][key] for name in probes for key in ("map", "roc_auc")},
        "metric": "per test clip: accuracy, map (macro average precision), roc_auc (macro one-vs-rest ROC-AUC)",
        "layers": args.probe_layers,
        **windows,
        "c_grid": list(PROBE_C_GRID),
        "random_init_weights": (
            "the weights pre-training started from" if run.random_start
            else f"a fresh random init, seed {run.training_args.seed}"
        ),
        "pretrained": probes["pretrained"],
        "random_init": probes["random_init"],
        **({"fusion": fusion} if fusion else {}),
        "seconds": time.perf_counter() - started,
    }


def loss_curve(log_history: list[dict], steps_per_epoch: int) -> dict:
    """The training loss the Trainer logged (`step`, `step_loss`: one value every `--logging_steps`, each the mean
    since the last) and the mean of those values within each epoch (`epoch_loss`)."""
    logged = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    steps, losses = [s for s, _ in logged], [v for _, v in logged]
    epochs: dict[int, list[float]] = {}
    for step, value in logged:
        epochs.setdefault((step - 1) // steps_per_epoch, []).append(value)
    epoch_loss = [float(np.mean(values)) for _, values in sorted(epochs.items())]
    return {"step": steps, "step_loss": losses, "epoch_loss": epoch_loss, "steps_per_epoch": steps_per_epoch}


def report(run: Run, pretraining: dict, linear_probe: dict, encoder_dir: Path, wall_start: float) -> dict:
    """results.json and the loss curve."""
    args, training_args, output_dir = run.args, run.training_args, Path(run.training_args.output_dir)
    state = pretraining["trainer"].state
    curve = loss_curve(state.log_history, pretraining["steps_per_epoch"])
    plot = plot_loss_curve(curve["step"], curve["step_loss"], curve["epoch_loss"], curve["steps_per_epoch"],
                           output_dir / "loss_curve.png", "NT-Xent loss")
    probe_seconds = linear_probe.pop("seconds")
    encoder = run.model.encoder
    results = {
        "encoder": args.encoder_name_or_path,
        "encoder_dir": str(encoder_dir),
        "encoder_config": encoder.config.to_dict(),
        "num_parameters": sum(p.numel() for p in encoder.parameters()),
        "sampling_rate": run.rate,
        "crop_samples": run.crop,
        "linear_probe": linear_probe,
        "loss_curve": curve,
        "final_loss": curve["epoch_loss"][-1] if curve["epoch_loss"] else None,
        "label_names": run.splits["train"].features["label"].names,
        "dataset": run.data_args.dataset_name,
        "split_protocol": run.data_args.split_protocol,
        "split_sizes": {split: len(ds) for split, ds in run.decoded.items()},
        "skipped_files": run.skipped,
        "pretrain_clips": pretraining["clips"],
        "augmentations": pretraining["augmentations"],
        "steps": state.global_step,
        "world_size": training_args.world_size,
        "device": str(training_args.device),
        "seed": training_args.seed,
        "train_seconds": round(pretraining["train_seconds"], 1),
        "probe_seconds": round(probe_seconds, 1),
        "wall_seconds": round(time.perf_counter() - wall_start, 1),
        "plots": [plot.name],
        "config": {"contrastive": asdict(args), "data": asdict(run.data_args), "training": training_args.to_dict()},
        "versions": package_versions(),
    }
    write_results(output_dir, results)
    logger.info(
        "Linear probe (test accuracy / mAP per clip): pre-trained %.4f / %s, random init %.4f / %s; results in %s",
        linear_probe["pretrained_accuracy"], linear_probe["pretrained_map"],
        linear_probe["random_init_accuracy"], linear_probe["random_init_map"], output_dir,
    )
    return results


def main(argv: list[str] | None = None) -> dict | None:
    """Start, load the data, pre-train, then (main process) save the encoder, probe it, report and push."""
    args, data_args, training_args = parse_with_config((ContrastiveArguments, AudioDataArguments, TrainingArguments),
                                                       argv)
    wall_start = time.perf_counter()
    run = start(args, data_args, training_args)
    load_data(run)
    hub = take_hub_settings(training_args)  # pushed once, at the end, by us; the token stays out of checkpoints
    pretraining = pretrain(run, pretraining_clips(run))
    if not pretraining["trainer"].is_world_process_zero():
        return None
    encoder_dir = run.model.save_encoder(Path(training_args.output_dir) / "encoder")
    results = report(run, pretraining, probe(run), encoder_dir, wall_start)
    if hub is not None:
        repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
        message = f"audiocap contrastive encoder: linear probe {results['linear_probe']['pretrained_accuracy']:.4f}"
        push_folder(encoder_dir, repo_id, message, hub)
    return results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
