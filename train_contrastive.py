"""Contrastive (CLMR / SimCLR) pre-training of a waveform encoder, then a linear-probe evaluation against the same
architecture randomly initialised: `accelerate launch train_contrastive.py --config configs/<run>.yaml [--flag value]`.

Each step takes two random crops of every clip of the batch (the pre-training split, labels unused), passes each
through the augmentation chain (`modeling_audiocap.training.augment`: polarity, noise, gain, filter, pitch; SpecAugment
masks and noise on the log-mel of spectrogram encoders), encodes both views (masked mean of the last hidden state,
then the projection MLP) and minimises NT-Xent. The loop runs under accelerate's `Accelerator` (device placement,
`accelerate launch` for several processes; the loss of each process is over its own batch).

`output_dir` ends with:

- `encoder/`: the pre-trained encoder alone (config, safetensors, feature extractor), a normal encoder directory
  (`resolve_encoder("<output_dir>/encoder")`, `train_genre.py --encoder_name_or_path <output_dir>/encoder`);
- `results.json`: the resolved configuration, package versions, the loss curve, and `linear_probe` with
  `pretrained_accuracy` and `random_init_accuracy` (test accuracy per clip of a logistic-regression probe on frozen
  clip embeddings; `C` chosen on validation) and the same probes' test `*_map` (macro average precision) and
  `*_roc_auc` (macro one-vs-rest ROC-AUC) from their class probabilities, the random-init encoder being the weights
  pre-training started from (or, for an encoder loaded from a checkpoint, a fresh random initialisation of its
  config);
- `loss_curve.png`.
"""

import copy
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import modeling_audiocap  # noqa: F401  (first: checks the torch trio before transformers loads torchaudio)
import numpy as np
import torch
import transformers
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from modeling_audiocap import resolve_encoder
from modeling_audiocap.audio import cut_windows
from modeling_audiocap.data.genre import load_genre_dataset
from modeling_audiocap.encoder_families import short_names
from modeling_audiocap.hub import package_versions
from modeling_audiocap.training.arguments import AudioDataArguments, parse_with_config
from modeling_audiocap.training.augment import (
    attach_spectrogram_augmentation,
    clmr_augmentations,
    spectrogram_augmentations,
)
from modeling_audiocap.training.contrastive import (
    PROBE_C_GRID,
    ContrastiveModel,
    clip_embeddings,
    fuse_embeddings,
    linear_probe,
    nt_xent_loss,
    random_init_like,
)
from modeling_audiocap.training.genre_data import decode_dataset, require_clips
from modeling_audiocap.training.runs import load_splits

logger = logging.getLogger("audiocap.train_contrastive")


@dataclass
class ContrastiveArguments:
    """The encoder, the contrastive objective, the augmentations, the loop and the probe."""

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
    batch_size: int = field(default=48, metadata={"help": "Clips per batch and process (2 views each)."})
    epochs: int = field(default=100, metadata={"help": "Passes over the pre-training clips (new crops each time)."})
    learning_rate: float = field(default=3e-4, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=1e-6, metadata={"help": "AdamW weight decay."})
    lr_scheduler_type: str = field(
        default="constant", metadata={"help": "transformers scheduler: constant | cosine | linear ..."}
    )
    warmup_steps: int = field(default=0, metadata={"help": "Warm-up steps of the scheduler."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "Gradient clipping (0: none)."})
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
    probe_overlap: float = field(
        default=0.0, metadata={"help": "Overlap of the probe's max_length_seconds windows (0.5: music2vec's segments)."}
    )
    probe_batch_size: int = field(default=32, metadata={"help": "Windows per batch when embedding for the probe."})
    fuse_with_encoder: str | None = field(
        default=None, metadata={"help": "Also probe the late fusion with this (frozen) encoder's clip embeddings."}
    )
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader workers (crops + augmentation)."})
    num_threads: int | None = field(
        default=None,
        metadata={"help": "torch intra-op threads of each process (default: torch's); 1 avoids oversubscribing a "
                  "small shared CPU, DataLoader workers use one each."},
    )
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even when an accelerator is present."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, crops, augmentations and shuffling."})
    output_dir: str = field(default="runs/contrastive", metadata={"help": "Where the encoder and results go."})

    def __post_init__(self):
        if self.probe_layers not in ("last", "all"):
            raise ValueError(f"--probe_layers must be last or all, got {self.probe_layers!r}")
        if not 0.0 <= self.probe_overlap < 1.0:
            raise ValueError(f"--probe_overlap must be in [0, 1), got {self.probe_overlap}")
        if self.batch_size < 2:
            raise ValueError("--batch_size must be at least 2 (NT-Xent needs negatives)")
        if len(self.noise_snr_db) != 2:
            raise ValueError("--noise_snr_db takes two values: low high")

    def config_overrides(self) -> dict | None:
        if not self.encoder_config_overrides:
            return None
        overrides = yaml.safe_load(self.encoder_config_overrides)
        if not isinstance(overrides, dict):
            raise ValueError(f"--encoder_config_overrides must be a mapping, got {self.encoder_config_overrides!r}")
        return overrides


def genre_splits(data_args: AudioDataArguments, args: ContrastiveArguments):
    """The shared split loading of the training scripts, with this run's label column and seed."""
    return load_splits(load_genre_dataset, data_args, args.seed, {"label_column_name": "genre"},
                       label_column_name=args.label_column_name)


class ClipIndices(torch.utils.data.Dataset):
    """Clip indices 0..n-1: the collator reads the waveforms, so workers never pickle the audio."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class TwoViewCollator:
    """Two independently cropped and augmented views of each clip of a batch: `{"view1", "view2"}`, each
    `(batch, crop_samples)`. The crops and augmentations draw from one generator per process and worker, seeded from
    `seed`, so a run is reproducible (use persistent workers when `dataloader_num_workers > 0`)."""

    def __init__(self, rows, crop_samples: int, chain, seed: int):
        self.rows = rows
        self.crop_samples = crop_samples
        self.chain = chain
        self.seed = seed
        self._generator = None

    def generator(self) -> torch.Generator:
        if self._generator is None:
            info = torch.utils.data.get_worker_info()
            self._generator = torch.Generator().manual_seed(self.seed + 7919 * (info.id + 1 if info else 0))
        return self._generator

    def __call__(self, indices: list[int]) -> dict:
        generator = self.generator()
        waves = [torch.as_tensor(np.asarray(self.rows[int(i)]["waveform"], dtype=np.float32)) for i in indices]
        views = {}
        for name in ("view1", "view2"):
            crops = torch.stack(
                [cut_windows(w, self.crop_samples, random_crop=True, generator=generator)[0] for w in waves]
            )
            views[name] = self.chain(crops, generator)
        return views


def probe_encoders(encoders: dict, decoded: dict, rate: int, args: ContrastiveArguments, data_args, device, extra=None):
    """Clip embeddings of every split for each named encoder, and a linear probe on each (plus fusions)."""
    window = int(round(data_args.max_length_seconds * rate))
    hop = None if args.probe_overlap == 0 else max(1, window - int(round(window * args.probe_overlap)))
    labels = {split: np.asarray(ds["label"]) for split, ds in decoded.items()}
    embeddings = {}
    for name, encoder in encoders.items():
        encoder.to(device)
        embeddings[name] = {
            split: clip_embeddings(
                encoder, ds["waveform"], window, hop, args.probe_layers, args.probe_batch_size, device
            )
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
    return probes, embeddings, {"window_seconds": window / rate, "hop_seconds": (hop or window) / rate}


def plot_loss_curve(step_losses: list[float], steps_per_epoch: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(step_losses) + 1)
    ax.plot(steps, step_losses, alpha=0.4, label="step")
    if steps_per_epoch > 0 and len(step_losses) >= steps_per_epoch:
        epochs = len(step_losses) // steps_per_epoch
        means = np.asarray(step_losses[: epochs * steps_per_epoch]).reshape(epochs, steps_per_epoch).mean(1)
        ax.plot(np.arange(1, epochs + 1) * steps_per_epoch, means, marker="o", label="epoch mean")
    ax.set_xlabel("step")
    ax.set_ylabel("NT-Xent loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@dataclass
class Run:
    """What the steps of a run share: the accelerator, the model and its random-init twin, the data."""

    args: ContrastiveArguments
    data_args: AudioDataArguments
    accelerator: Accelerator
    model: ContrastiveModel
    random_encoder: torch.nn.Module
    random_start: bool
    rate: int
    crop: int
    splits: dict = field(default_factory=dict)
    decoded: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)


def start(args: ContrastiveArguments, data_args: AudioDataArguments) -> Run:
    """Threads, accelerator, logging, seed, then the encoder (right after seeding: for a short name its initial
    weights are the random-init baseline) and its projection head."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    # Only the last hidden state is pooled in training: the projections of the other layers get no gradient.
    accelerator = Accelerator(
        cpu=args.use_cpu, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
    )
    logging.basicConfig(
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    transformers.utils.logging.set_verbosity_warning()
    set_seed(args.seed)
    resolved = resolve_encoder(args.encoder_name_or_path, config_overrides=args.config_overrides())
    random_start = args.encoder_name_or_path in short_names() and not os.path.isdir(args.encoder_name_or_path)
    random_encoder = copy.deepcopy(resolved.model) if random_start else random_init_like(resolved.model, args.seed)
    model = ContrastiveModel(
        resolved.model, resolved.feature_extractor, args.projection_dim, args.projection_hidden_size
    )
    rate = model.sampling_rate
    crop = args.crop_samples or int(round(args.crop_seconds * rate))
    return Run(args, data_args, accelerator, model, random_encoder, random_start, rate, crop)


def load_data(run: Run) -> None:
    """The splits, decoded at the encoder's rate (unreadable files skipped and listed)."""
    with run.accelerator.main_process_first():
        run.splits = genre_splits(run.data_args, run.args)
        for split, ds in run.splits.items():
            run.decoded[split], bad = decode_dataset(
                ds, run.rate, run.data_args.preprocessing_num_workers, desc=split,
                cache_dir=run.data_args.decoded_cache_dir,
            )
            run.skipped += [{**b, "split": split} for b in bad]
        require_clips(run.decoded, run.skipped)


def pretraining_clips(run: Run):
    names = [s.strip() for s in run.args.pretrain_split.split(",") if s.strip()]
    if len(names) == 1:
        return run.decoded[names[0]]
    import datasets

    return datasets.concatenate_datasets([run.decoded[s] for s in names]).with_format("numpy")


def pretrain(run: Run, pretrain) -> dict:
    """The NT-Xent loop over two augmented crops of every clip; returns the losses and what the report records."""
    args, accelerator = run.args, run.accelerator
    batch_size = min(args.batch_size, len(pretrain))
    process_seed = args.seed + 1000 * accelerator.process_index
    chain = clmr_augmentations(
        run.rate, args.polarity_p, args.noise_p, args.gain_p, args.filter_p, args.pitch_p, args.max_semitones,
        args.min_gain_db, args.max_gain_db, args.noise_snr_db, args.delay_p, args.reverb_p,
    )
    spec_chain = spectrogram_augmentations(args.time_mask_p, args.frequency_mask_p, args.spectrogram_noise_p)
    spec_hook = attach_spectrogram_augmentation(
        run.model.encoder, spec_chain, torch.Generator().manual_seed(process_seed + 1)
    )
    loader = torch.utils.data.DataLoader(
        ClipIndices(len(pretrain)),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=TwoViewCollator(pretrain, run.crop, chain, process_seed),
        num_workers=args.dataloader_num_workers,
        persistent_workers=args.dataloader_num_workers > 0,
        generator=torch.Generator().manual_seed(args.seed),
    )
    optimizer = torch.optim.AdamW(run.model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    model, optimizer, loader = accelerator.prepare(run.model, optimizer, loader)
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * args.epochs
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, args.warmup_steps, total_steps)
    logger.info(
        "Pre-training %s (%d parameters) on %d clips (%s): %d epochs x %d steps, batch %d x %d processes, crops of %d "
        "samples at %d Hz",
        args.encoder_name_or_path, sum(p.numel() for p in model.parameters()), len(pretrain), args.pretrain_split,
        args.epochs, steps_per_epoch, batch_size, accelerator.num_processes, run.crop, run.rate,
    )
    step_losses: list[float] = []
    started = time.perf_counter()
    progress = tqdm(total=total_steps, desc="contrastive pre-training", disable=not accelerator.is_local_main_process)
    for epoch in range(args.epochs):
        model.train()
        epoch_losses = []
        for batch in loader:
            z = model(torch.cat([batch["view1"], batch["view2"]]))
            z1, z2 = z.chunk(2)
            loss = nt_xent_loss(z1, z2, args.temperature)
            accelerator.backward(loss)
            if args.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            value = accelerator.gather(loss.detach()[None]).mean().item()
            if not math.isfinite(value):
                raise FloatingPointError(f"non-finite contrastive loss at epoch {epoch}: {value}")
            step_losses.append(value)
            epoch_losses.append(value)
            progress.update(1)
            progress.set_postfix(epoch=epoch, loss=f"{value:.4f}")
        logger.info("epoch %d: loss %.4f", epoch, float(np.mean(epoch_losses)))
    progress.close()
    if spec_hook is not None:
        spec_hook.remove()
    run.model = accelerator.unwrap_model(model)
    return {
        "step_losses": step_losses,
        "steps_per_epoch": steps_per_epoch,
        "train_seconds": time.perf_counter() - started,
        "augmentations": {"waveform": repr(chain), "spectrogram": repr(spec_chain) if spec_hook is not None else None},
    }


def probe(run: Run) -> dict:
    """Linear probes of the pre-trained and the random-init encoder (and a late fusion with another encoder)."""
    args, data_args, decoded = run.args, run.data_args, run.decoded
    started = time.perf_counter()
    device = run.accelerator.device
    encoders = {"pretrained": run.model.encoder.eval(), "random_init": run.random_encoder.eval()}
    probes, embeddings, windows = probe_encoders(encoders, decoded, run.rate, args, data_args, device)
    fusion = None
    if args.fuse_with_encoder:
        other = resolve_encoder(args.fuse_with_encoder)
        other_rate = int(other.sampling_rate)
        other_decoded = decoded if other_rate == run.rate else {
            split: decode_dataset(
                ds, other_rate, data_args.preprocessing_num_workers, desc=split, cache_dir=data_args.decoded_cache_dir
            )[0]
            for split, ds in run.splits.items()
        }
        other_probes, other_embeddings, _ = probe_encoders(
            {"other": other.model.eval()}, other_decoded, other_rate, args, data_args, device
        )
        fused = {s: fuse_embeddings([embeddings["pretrained"][s], other_embeddings["other"][s]]) for s in decoded}
        fused_probes, _, _ = probe_encoders({}, decoded, run.rate, args, data_args, device, extra={"fused": fused})
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
            "the weights pre-training started from" if run.random_start else f"a fresh random init, seed {args.seed}"
        ),
        "pretrained": probes["pretrained"],
        "random_init": probes["random_init"],
        **({"fusion": fusion} if fusion else {}),
        "seconds": time.perf_counter() - started,
    }


def report(run: Run, pretraining: dict, linear_probe: dict, encoder_dir: Path, wall_start: float) -> dict:
    """results.json and the loss curve."""
    args, output_dir = run.args, Path(run.args.output_dir)
    step_losses, steps_per_epoch = pretraining["step_losses"], pretraining["steps_per_epoch"]
    plot = plot_loss_curve(step_losses, steps_per_epoch, output_dir / "loss_curve.png")
    epoch_means = [
        float(np.mean(step_losses[e * steps_per_epoch : (e + 1) * steps_per_epoch])) for e in range(args.epochs)
    ]
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
        "loss_curve": {"step_loss": step_losses, "epoch_loss": epoch_means, "steps_per_epoch": steps_per_epoch},
        "final_loss": epoch_means[-1] if epoch_means else None,
        "label_names": run.splits["train"].features["label"].names,
        "dataset": run.data_args.dataset_name,
        "split_protocol": run.data_args.split_protocol,
        "split_sizes": {split: len(ds) for split, ds in run.decoded.items()},
        "skipped_files": run.skipped,
        "pretrain_clips": pretraining["clips"],
        "augmentations": pretraining["augmentations"],
        "steps": len(step_losses),
        "world_size": run.accelerator.num_processes,
        "device": str(run.accelerator.device),
        "seed": args.seed,
        "train_seconds": round(pretraining["train_seconds"], 1),
        "probe_seconds": round(probe_seconds, 1),
        "wall_seconds": round(time.perf_counter() - wall_start, 1),
        "plots": [plot.name],
        "config": {"contrastive": asdict(args), "data": asdict(run.data_args)},
        "versions": package_versions(),
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    logger.info(
        "Linear probe (test accuracy / mAP per clip): pre-trained %.4f / %s, random init %.4f / %s; results in %s",
        linear_probe["pretrained_accuracy"], linear_probe["pretrained_map"],
        linear_probe["random_init_accuracy"], linear_probe["random_init_map"], output_dir,
    )
    return results


def main(argv: list[str] | None = None) -> dict | None:
    """Start, load the data, pre-train, then (main process) save the encoder, probe it and report."""
    args, data_args = parse_with_config((ContrastiveArguments, AudioDataArguments), argv)
    wall_start = time.perf_counter()
    run = start(args, data_args)
    load_data(run)
    clips = pretraining_clips(run)
    pretraining = {**pretrain(run, clips), "clips": len(clips)}
    run.accelerator.wait_for_everyone()
    if not run.accelerator.is_main_process:
        return None
    encoder_dir = run.model.save_encoder(Path(args.output_dir) / "encoder")
    return report(run, pretraining, probe(run), encoder_dir, wall_start)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
