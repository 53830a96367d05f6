"""The training scripts' data collators: rows of decoded clips (or cached embeddings) -> model batches.

- `WaveformCollator` (genre, unfrozen / LoRA): a random window per clip in training, fixed windows in evaluation.
- `embedding_collator` (genre, frozen): cached layer-wise embeddings.
- `CaptionCollator` (captioning): a window per clip and the tokenised captions as labels.
- `ClipIndices` / `TwoViewCollator` (contrastive pre-training): two cropped and augmented views of every clip.

Random crops depend only on `(seed, epoch, clip)` (`EpochCrops`) or `(seed, epoch, batch)` (`TwoViewCollator`), never
on a generator's running state, so a resumed run draws what an uninterrupted one does.
"""

import numpy as np
import torch
from transformers import TrainerCallback

from ..processing_audiocap import AudioCapFeatureExtractor, AudioCapProcessor
from .crops import EpochCrops


class WaveformCollator:
    """Clip-model batches of waveform windows: a random window of each clip (training rows with a `waveform`, drawn by
    `crops`) or the fixed evaluation windows (rows with `input_values`); the class, tags or values in `labels`."""

    def __init__(self, processor: AudioCapFeatureExtractor, crops: EpochCrops):
        self.processor = processor
        self.crops = crops

    def __call__(self, rows: list[dict]) -> dict:
        if "waveform" in rows[0]:
            waves = [self.crops.crop(r["waveform"], r["clip_index"]) for r in rows]
        else:
            waves = [np.asarray(r["input_values"], dtype=np.float32) for r in rows]
        batch = dict(self.processor.featurize(waves))
        batch["labels"] = row_labels(rows)
        return batch


def row_labels(rows: list[dict]) -> torch.Tensor:
    """The rows' `label`s as the loss reads them: class ids `(B,)`, or multi-hot tags / values `(B, num_labels)`."""
    return torch.as_tensor(np.stack([np.asarray(r["label"]) for r in rows]))


def embedding_collator(rows: list[dict]) -> dict:
    """Frozen-mode clip-model batches from the embedding cache: `layer_embeddings` `(batch, layers, hidden)` and
    `labels`."""
    return {
        "layer_embeddings": torch.tensor(np.stack([r["layer_embeddings"] for r in rows]), dtype=torch.float32),
        "labels": row_labels(rows),
    }


class CaptionCollator:
    """Audio windows (a random crop drawn by `crops` while `training`, the first window otherwise) and tokenised
    captions as labels (padding -100): while `training` one of the clip's `captions` drawn by `crops`, otherwise its
    first `caption`. With `attribute_heads` (`AudioCaptionConfig.attribute_heads`), training batches also carry the
    clips' `attribute_labels`: a class index or the number, per head. A data loader keeps the collator it was built
    with: build evaluation loaders with `for_evaluation()`'s copy, never by switching a training collator."""

    def __init__(self, processor: AudioCapProcessor, crops: EpochCrops, max_tokens: int,
                 attribute_heads: dict | None = None, training: bool = True):
        self.processor = processor
        self.crops = crops
        self.max_tokens = max_tokens
        self.attribute_heads = attribute_heads or {}
        self.training = training

    def for_evaluation(self) -> "CaptionCollator":
        """This collator's evaluation form: first window, first caption, no attribute labels."""
        return CaptionCollator(self.processor, self.crops, self.max_tokens, self.attribute_heads, training=False)

    def __call__(self, rows: list[dict]) -> dict:
        waves = []
        for row in rows:
            wave = torch.from_numpy(np.array(row["waveform"], dtype=np.float32))  # a writable copy of the row's clip
            waves.append(self.crops.crop(wave, row["clip_index"]) if self.training else self.processor.windows(wave)[0])
        batch = {k: torch.as_tensor(v) for k, v in self.processor.featurize(waves).items()}
        captions = [self.caption(r) for r in rows]
        tokens = self.processor.tokenizer(
            [str(c) for c in captions], padding=True, truncation=True, max_length=self.max_tokens,
            return_tensors="pt",
        )
        batch["labels"] = tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, -100)
        if self.training and self.attribute_heads:
            batch["attribute_labels"] = {name: self.attribute_labels(rows, name) for name in self.attribute_heads}
        return batch

    def attribute_labels(self, rows: list[dict], name: str) -> torch.Tensor:
        labels = self.attribute_heads[name].get("labels")
        if labels is None:
            return torch.tensor([float(r[name]) for r in rows])
        return torch.tensor([int(r[name]) if isinstance(r[name], int) else labels.index(str(r[name])) for r in rows])

    def caption(self, row: dict) -> str:
        captions = row.get("captions")
        if not self.training or captions is None or len(captions) == 0:
            return row["caption"]
        return captions[self.crops.choice(len(captions), row["clip_index"])]


class ClipIndices(torch.utils.data.Dataset):
    """Clip indices 0..n-1: the collator reads the waveforms, so workers never pickle the audio."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class TwoViewCollator(TrainerCallback):
    """Two independently cropped and augmented views of each clip of a batch of `ClipIndices`: `{"view1", "view2"}`,
    each `(batch, processor.window_samples)`: random crops cut by `processor` (windowed at the view length; a shorter
    clip is zero-padded to it, as views are batched whole) from the `waveform` column of `rows`, through `chain` (an
    augmentation chain taking a `torch.Generator`), then featurised by `processor` as every other path feeds the
    encoder (a wav2vec2 / MERT feature extractor's normalisation, say).

    A batch's crops and augmentations draw from a generator seeded by `(seed, epoch, the batch's clip indices)`, never
    by a running state, so a run is reproducible with any number of DataLoader workers and a resumed run draws what an
    uninterrupted one does. A Trainer callback that follows the epoch: pass it in `callbacks`."""

    def __init__(self, rows, chain, seed: int, processor: AudioCapFeatureExtractor):
        if processor.window_samples is None:
            raise ValueError("TwoViewCollator needs a processor windowed at the view length (window_seconds)")
        self.rows = rows
        self.processor = processor
        self.chain = chain
        self.seed = seed
        self.epoch = 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is the epochs done so far (fractional when resuming mid-epoch): its floor is this epoch
        self.epoch = int(state.epoch or 0)

    def __call__(self, indices: list[int]) -> dict:
        entropy = np.random.SeedSequence([self.seed, self.epoch, *map(int, indices)]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(entropy))
        waves = [torch.as_tensor(np.asarray(self.rows[int(i)]["waveform"], dtype=np.float32)) for i in indices]
        views = {}
        for name in ("view1", "view2"):
            crops = torch.stack([self.crop(w, generator) for w in waves])
            features = self.processor.featurize(list(self.chain(crops, generator)))  # equal lengths: no padding
            views[name] = features[self.processor.model_input_names[0]]
        return views

    def crop(self, wave: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        crop = self.processor.windows(wave, random_crop=True, generator=generator)[0]
        return torch.nn.functional.pad(crop, (0, self.processor.window_samples - crop.shape[0]))
