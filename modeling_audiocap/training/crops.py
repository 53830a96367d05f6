"""Random training crops that a resumed run draws exactly as an uninterrupted one does.

A crop depends only on `(seed, epoch, clip)`, never on a generator's running state: a run killed and resumed from a
checkpoint (where the Trainer fetches the next batch before it restores its saved RNG state) sees the same windows in
the same steps, and so ends with the same weights. The processor cuts it (`AudioCapFeatureExtractor.windows`), as it
cuts every window.
"""

import numpy as np
import torch
from transformers import TrainerCallback

from ..processing_audiocap import AudioCapFeatureExtractor


class EpochCrops(TrainerCallback):
    """One random window per clip and epoch, cut by `processor`; a Trainer callback that follows the epoch (pass it in
    `callbacks`)."""

    def __init__(self, processor: AudioCapFeatureExtractor, seed: int):
        self.processor = processor
        self.seed = seed
        self.epoch = 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is the epochs done so far (fractional when resuming mid-epoch): its floor is this epoch
        self.epoch = int(state.epoch or 0)

    def choice(self, count: int, clip_index: int) -> int:
        """An index in `range(count)` drawn from `(seed, epoch, clip_index)` (e.g. which of a clip's captions)."""
        return int(np.random.SeedSequence([self.seed, self.epoch, int(clip_index), 1]).generate_state(1)[0] % count)

    def crop(self, wave, clip_index: int) -> torch.Tensor:
        """`(samples,)` -> the processor's training window, at a start drawn from `(seed, epoch, clip_index)`; a clip
        no longer than the window is itself (as in evaluation: the feature extractor pads it)."""
        entropy = np.random.SeedSequence([self.seed, self.epoch, int(clip_index)]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(entropy))
        if not isinstance(wave, torch.Tensor):  # a dataset row's read-only array: a writable copy
            wave = torch.from_numpy(np.array(wave, dtype=np.float32))
        return self.processor.windows(wave, random_crop=True, generator=generator)[0]
