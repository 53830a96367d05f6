"""Contrastive (SimCLR / CLMR) pre-training of a waveform encoder, and the linear-probe evaluation of encoders.

- `nt_xent_loss(z1, z2, temperature)`: SimCLR's normalised-temperature cross-entropy over the 2N views of a batch.
- `ContrastiveModel`: encoder -> masked mean of the last hidden state (`h`) -> projection MLP -> `z`; the loss is taken
  on `z` (`ContrastiveTrainer`: a `transformers.Trainer` whose batches are two views of each clip), the encoder alone
  is kept (`save_encoder(dir)` writes a normal encoder directory that
  `resolve_encoder(dir)` and `train_genre.py --encoder_name_or_path dir` load).
- `clip_embeddings` / `linear_probe`: frozen embeddings of whole clips (mean over the processor's windows of the
  per-window mean-pooled last layer, or of every layer concatenated) and a scikit-learn logistic-regression probe on
  standardised features with `C` chosen on the validation split; `fuse_embeddings` concatenates the embeddings of
  several encoders (late fusion, e.g. a raw-audio and a spectrogram encoder).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel, Trainer
from transformers.feature_extraction_utils import FeatureExtractionMixin

from ..metrics.ranking import ranking_metrics
from ..modeling_audiocap import mean_pool
from ..encoder_families import encoder_family
from ..processing_audiocap import AudioCapFeatureExtractor, average_windows
from .probe import class_scores

logger = logging.getLogger(__name__)

__all__ = [
    "ContrastiveModel",
    "ContrastiveTrainer",
    "ProjectionHead",
    "clip_embeddings",
    "fuse_embeddings",
    "linear_probe",
    "nt_xent_loss",
    "random_init_like",
]

PROBE_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent loss for N positive pairs `(z1[i], z2[i])`, each `(N, D)`.

    The 2N projections are L2-normalised; for each view, the other view of its pair is the positive and the other
    2N - 2 views are the negatives: `-log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t))` with cosine similarities
    `s`, averaged over all 2N views.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


class ProjectionHead(nn.Sequential):
    """SimCLR's projection MLP: Linear(width, hidden) -> ReLU -> Linear(hidden, projection_dim)."""

    def __init__(self, width: int, projection_dim: int, hidden_size: int | None = None):
        hidden_size = hidden_size or width
        super().__init__(nn.Linear(width, hidden_size), nn.ReLU(), nn.Linear(hidden_size, projection_dim))


class ContrastiveModel(nn.Module):
    """A waveform encoder (any of `resolve_encoder`'s: wav2vec2 / HuBERT / MERT / the from-scratch ones) under a
    projection head.

    `embed(input_values)` gives `h`, the masked mean of the last hidden state `(batch, hidden_size)`;
    `forward(input_values)` gives `z = head(h)`. Only the encoder is kept after pre-training (`save_encoder`).
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        feature_extractor: FeatureExtractionMixin | None = None,
        projection_dim: int = 128,
        projection_hidden_size: int | None = None,
    ):
        super().__init__()
        family = encoder_family(encoder.config)
        if not family.waveform:
            raise ValueError(
                f"ContrastiveModel needs a waveform encoder (input_values of shape (batch, samples)), got model_type "
                f"{encoder.config.model_type!r}"
            )
        self.encoder = encoder
        self.feature_extractor = feature_extractor or family.feature_extractor(encoder.config)
        self.head = ProjectionHead(encoder.config.hidden_size, projection_dim, projection_hidden_size)

    @classmethod
    def from_encoder(cls, name_or_path, config_overrides: dict | None = None, **kwargs) -> "ContrastiveModel":
        """Build around `resolve_encoder(name_or_path, config_overrides=...)` (short names give random weights)."""
        from ..encoders import resolve_encoder

        resolved = resolve_encoder(name_or_path, config_overrides=config_overrides)
        return cls(resolved.model, resolved.feature_extractor, **kwargs)

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    def embed(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.encoder(input_values=input_values, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        frame_mask = None
        if attention_mask is not None:
            frame_mask = self.encoder._get_feature_vector_attention_mask(hidden.shape[1], attention_mask).bool()
        return mean_pool(hidden, frame_mask)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(input_values, attention_mask))

    def save_encoder(self, directory: str | Path) -> Path:
        """Write the encoder alone (config + safetensors) and its feature extractor to `directory`: a normal encoder
        directory for `resolve_encoder(directory)` / `AutoModel.from_pretrained(directory)` (with
        `modeling_audiocap` imported) / `train_genre.py --encoder_name_or_path directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)
        return directory


class ContrastiveTrainer(Trainer):
    """A `Trainer` of a `ContrastiveModel` on batches `{"view1", "view2"}` (each `(batch, samples)`: two augmented
    crops of the same clips): the loss is NT-Xent between the two views' projections at `temperature`. Checkpoints,
    resuming, logging, the scheduler and `accelerate launch` are the Trainer's; under several processes each loss is
    over the process's own batch."""

    def __init__(self, *args, temperature: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature

    def compute_loss(self, model, inputs: dict, return_outputs: bool = False, num_items_in_batch=None):
        z1, z2 = model(torch.cat([inputs["view1"], inputs["view2"]])).chunk(2)  # (2B, P) -> 2 x (B, P)
        loss = nt_xent_loss(z1, z2, self.temperature)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite contrastive loss at step {self.state.global_step}: {loss.item()}")
        return (loss, {"z1": z1, "z2": z2}) if return_outputs else loss


def random_init_like(encoder: PreTrainedModel, seed: int = 0) -> PreTrainedModel:
    """A freshly, randomly initialised encoder of the same architecture and config as `encoder` (under `seed`,
    without touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = copy.deepcopy(encoder.config)
        return encoder_family(config).build_encoder(config).eval()


# ----------------------------------------------------------------------------------------------------------------
# Linear-probe evaluation
# ----------------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def clip_embeddings(
    encoder: PreTrainedModel,
    waveforms: Sequence[np.ndarray | torch.Tensor],
    processor: AudioCapFeatureExtractor,
    layers: str = "last",
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """One embedding per clip `(clips, D)`: each clip (mono, at the encoder's rate) is cut into `processor`'s
    evaluation windows and featurised by it, as training, serving and the embedding engine do; each window's hidden
    states are mean-pooled over its valid frames; the clip's embedding is the mean over its windows.
    `layers="last"`: the last hidden state (`D = hidden_size`); `"all"`: every layer's mean, concatenated
    (`D = layers x hidden_size`). Windows of equal length are batched together (a clip shorter than a window is one
    short window), so no window is padded by another's length."""
    if layers not in ("last", "all"):
        raise ValueError(f"layers must be 'last' or 'all', got {layers!r}")
    if len(waveforms) == 0:
        raise ValueError("clip_embeddings needs at least one clip")
    was_training = encoder.training
    encoder.eval()
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    pooled: list[torch.Tensor] = []  # one row per window, (D,)
    window_clip: list[int] = []
    buckets: dict[int, list[tuple[int, torch.Tensor]]] = {}  # window length -> (clip, window), cut lazily

    def flush(bucket: list[tuple[int, torch.Tensor]]) -> None:
        features = processor.featurize([window for _, window in bucket])
        inputs = features.pop(processor.model_input_names[0]).to(device)
        mask = features.pop("attention_mask", None)
        mask = None if mask is None else mask.to(device)
        hidden, frame_mask, _ = encoder_family(encoder.config).encode_layers(encoder, inputs, mask)
        means = mean_pool(hidden, frame_mask)  # (B, L, T, D) -> (B, L, D)
        pooled.extend((means[:, -1] if layers == "last" else means.flatten(1)).float().cpu())
        window_clip.extend(clip for clip, _ in bucket)
        bucket.clear()

    for clip, wave in enumerate(waveforms):
        wave = np.asarray(wave, dtype=np.float32)
        for _, window in processor.iter_windows(wave, processor.sampling_rate):
            bucket = buckets.setdefault(window.shape[-1], [])
            bucket.append((clip, window))
            if len(bucket) == batch_size:
                flush(bucket)
    for bucket in buckets.values():
        if bucket:
            flush(bucket)
    encoder.train(was_training)
    return average_windows(torch.stack(pooled), torch.tensor(window_clip), len(waveforms)).numpy()


def fuse_embeddings(embeddings: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
    """Late fusion: the clip embeddings of several encoders, concatenated feature-wise `(clips, sum of D)`. Rows must
    be the same clips in the same order (the probe standardises every feature, so the scales need not agree)."""
    arrays = [np.asarray(e.detach().cpu() if isinstance(e, torch.Tensor) else e, dtype=np.float32) for e in embeddings]
    if not arrays:
        raise ValueError("fuse_embeddings needs at least one embedding matrix")
    rows = {a.shape[0] for a in arrays}
    if len(rows) != 1 or any(a.ndim != 2 for a in arrays):
        raise ValueError(f"every embedding must be (clips, D) over the same clips, got {[a.shape for a in arrays]}")
    return np.concatenate(arrays, axis=1)


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    c_grid: Sequence[float] = PROBE_C_GRID,
    max_iter: int = 2000,
) -> dict:
    """A logistic-regression probe on frozen clip embeddings: features standardised on train
    (`StandardScaler`), multinomial `LogisticRegression` (lbfgs) fitted on train for every `C` of `c_grid`; the `C`
    with the best validation accuracy (the smallest such `C` on ties) is kept and its test scores reported.

    Each argument is `(embeddings (clips, D), labels (clips,))`. Returns, on the test clips, `accuracy`, `map` and
    `roc_auc` (macro, one class against the rest, from `predict_proba`: `modeling_audiocap.metrics.ranking`; None
    where undefined), and `best_c`, `validation_accuracy`, `train_accuracy` and `validation_accuracy_by_c`.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = train, validation, test
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = (np.nan_to_num(scaler.transform(x)) for x in (x_train, x_val, x_test))
    best, by_c = None, {}
    for c in c_grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe = LogisticRegression(C=c, max_iter=max_iter).fit(x_train, y_train)
        accuracy = float((probe.predict(x_val) == y_val).mean())
        by_c[str(c)] = accuracy
        if best is None or accuracy > best[0]:
            best = (accuracy, c, probe)
    val_accuracy, best_c, probe = best
    num_classes = int(max(y.max() for y in (y_train, y_val, y_test))) + 1
    ranking = ranking_metrics(y_test, class_scores(probe, x_test, num_classes))
    return {
        "accuracy": float((probe.predict(x_test) == y_test).mean()),
        "map": ranking["map"],
        "roc_auc": ranking["roc_auc"],
        "best_c": best_c,
        "validation_accuracy": val_accuracy,
        "train_accuracy": float((probe.predict(x_train) == y_train).mean()),
        "validation_accuracy_by_c": by_c,
        "num_features": int(x_train.shape[1]),
    }
