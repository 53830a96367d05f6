"""CLMR-style augmentations for contrastive pre-training, on batches of raw waveforms and of log-mel spectrograms.

Every augmentation is a small `nn.Module` called as `aug(batch, generator)`: it draws, for each example of the batch
independently, whether it applies (probability `p`) and its random parameters from `generator` (a
`torch.Generator`; the global RNG when `None`), so that a seeded generator reproduces a batch exactly. Shapes never
change. They compose with `AugmentationChain`; `clmr_augmentations(...)` builds CLMR's chain (Spijkervet & Burgoyne,
2021, on top of the random crop that the data step takes):

    chain = clmr_augmentations(sampling_rate=22050)
    view = chain(crops, generator)             # crops: (batch, samples), float

Waveform augmentations (`(batch, samples)`):

- `PolarityInversion`: `-x`.
- `GaussianNoise`: white noise at a random signal-to-noise ratio (`snr_db`, relative to each example's RMS).
- `Gain`: a random gain in `[min_gain_db, max_gain_db]` (default [-6, 0] dB, so it never clips).
- `RandomFilter`: a low-pass or a high-pass biquad (`torchaudio.functional.lowpass_biquad` / `highpass_biquad`, Q =
  1/sqrt(2)) at a random cutoff (low-pass in `lowpass_hz`, high-pass in `highpass_hz`; CLMR's ranges).
- `PitchShift`: within +-`max_semitones` (default 5). `torchaudio.functional.pitch_shift` (phase vocoder, then
  resampling) keeps the tempo but costs about 0.2 s per 59049-sample crop on one CPU core, about as much as the
  encoder's training step on that crop. This shifts by resampling instead
  (`torchaudio.functional.resample` by the ratio `2 ** (semitones / 12)`, approximated by a fraction of denominator
  at most 32, i.e. within 0.02 semitone), about 2 ms per crop (100x cheaper): pitch and tempo change together, like a
  record played faster or slower. A pitched-up view gets shorter and is completed by reflecting its end (at most a
  quarter of the crop at +5 semitones); a pitched-down one is cut back at a random start.
- `Delay`: one echo 200-500 ms later at half volume (CLMR's).
- `Reverb`: convolution with a synthetic room impulse response (decaying noise, random RT60 and damping), mixed
  with the dry signal.

Spectrogram augmentations (`(batch, n_mels, frames)`, log-mel in dB as `torchaudio.transforms.AmplitudeToDB` gives):

- `TimeMasking`, `FrequencyMasking`: torchaudio's SpecAugment masks (`torchaudio.transforms.TimeMasking` /
  `FrequencyMasking`, one mask per example, `iid_masks=True`), drawn under a CPU RNG seeded from `generator` (torchaudio
  takes no generator); masked bins get the batch's mean level.
- `SpectrogramNoise`: mixes noise into the spectrogram in the power domain at a random SNR (exponentially distributed
  power per bin, as the periodogram of white noise).

audiocap's spectrogram encoders compute their log-mel inside the model, so `attach_spectrogram_augmentation(encoder,
chain, generator)` applies a spectrogram chain there (a forward hook on the encoder's `AmplitudeToDB`, active in
training mode only).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F

__all__ = [
    "AugmentationChain",
    "Delay",
    "FrequencyMasking",
    "Gain",
    "GaussianNoise",
    "PitchShift",
    "PolarityInversion",
    "RandomFilter",
    "Reverb",
    "SpectrogramNoise",
    "TimeMasking",
    "attach_spectrogram_augmentation",
    "clmr_augmentations",
    "spectrogram_augmentations",
]


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """`n` draws from U[low, high) on the generator's device (the CPU by default)."""
    device = generator.device if generator is not None else "cpu"
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _rms(batch: torch.Tensor) -> torch.Tensor:
    return batch.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-8)


def _check_probability(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p}")
    return float(p)


def _check_range(name: str, low: float, high: float) -> tuple[float, float]:
    if low > high:
        raise ValueError(f"{name}: need low <= high, got ({low}, {high})")
    return float(low), float(high)


class RandomAugmentation(nn.Module):
    """Base class: `forward(batch, generator)` picks the examples to change (each with probability `p`) and calls
    `apply(selected, generator)` on them. The choice is always drawn, whether or not any example is picked, so a
    generator advances by the same amount whatever `p`'s outcome."""

    expected_dim = 2

    def __init__(self, p: float):
        super().__init__()
        self.p = _check_probability(p)

    def forward(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if batch.dim() != self.expected_dim:
            shape = "(batch, samples)" if self.expected_dim == 2 else "(batch, n_mels, frames)"
            raise ValueError(f"{type(self).__name__} expects {shape}, got shape {tuple(batch.shape)}")
        chosen = _uniform(batch.shape[0], 0.0, 1.0, generator) < self.p
        if not bool(chosen.any()):
            return batch
        chosen = chosen.to(batch.device)
        out = batch.clone()
        out[chosen] = self.apply(batch[chosen], generator).to(batch.dtype)
        return out

    def apply(self, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"p={self.p}"


class AugmentationChain(nn.ModuleList):
    """Augmentations applied in order, all drawing from one generator."""

    def forward(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for augmentation in self:
            batch = augmentation(batch, generator)
        return batch


# ----------------------------------------------------------------------------------------------------------------
# Waveforms (batch, samples)
# ----------------------------------------------------------------------------------------------------------------


class PolarityInversion(RandomAugmentation):
    """Multiply by -1."""

    def apply(self, batch, generator):
        return -batch


class GaussianNoise(RandomAugmentation):
    """Add white Gaussian noise at a random SNR in `snr_db` (dB, relative to each example's RMS; silence stays
    silent)."""

    def __init__(self, p: float, snr_db: Sequence[float] = (20.0, 40.0)):
        super().__init__(p)
        self.snr_db = _check_range("snr_db", *snr_db)

    def apply(self, batch, generator):
        snr = _uniform(batch.shape[0], *self.snr_db, generator).to(batch.device)
        rms = batch.float().pow(2).mean(dim=-1).sqrt()
        scale = rms * torch.pow(10.0, -snr / 20.0)
        device = generator.device if generator is not None else "cpu"
        noise = torch.randn(batch.shape, generator=generator, device=device).to(batch.device)
        return batch + noise * scale[:, None]

    def extra_repr(self) -> str:
        return f"p={self.p}, snr_db={self.snr_db}"


class Gain(RandomAugmentation):
    """Scale by a random gain in `[min_gain_db, max_gain_db]` dB."""

    def __init__(self, p: float, min_gain_db: float = -6.0, max_gain_db: float = 0.0):
        super().__init__(p)
        self.min_gain_db, self.max_gain_db = _check_range("gain", min_gain_db, max_gain_db)

    def apply(self, batch, generator):
        gain_db = _uniform(batch.shape[0], self.min_gain_db, self.max_gain_db, generator).to(batch.device)
        return batch * torch.pow(10.0, gain_db / 20.0)[:, None]

    def extra_repr(self) -> str:
        return f"p={self.p}, gain_db=[{self.min_gain_db}, {self.max_gain_db}]"


class RandomFilter(RandomAugmentation):
    """A low-pass (cutoff in `lowpass_hz`) or a high-pass (cutoff in `highpass_hz`) biquad, each with probability
    1/2, through `torchaudio.functional.lowpass_biquad` / `highpass_biquad` (cutoffs are kept below 0.45 x the
    sampling rate). torchaudio's IIR filter clamps its output to [-1, 1]."""

    def __init__(
        self,
        p: float,
        sampling_rate: int,
        lowpass_hz: Sequence[float] = (2200.0, 4000.0),
        highpass_hz: Sequence[float] = (200.0, 1200.0),
        q: float = 0.7071,
    ):
        super().__init__(p)
        self.sampling_rate = int(sampling_rate)
        self.lowpass_hz = _check_range("lowpass_hz", *lowpass_hz)
        self.highpass_hz = _check_range("highpass_hz", *highpass_hz)
        self.q = float(q)

    def apply(self, batch, generator):
        n = batch.shape[0]
        use_lowpass = _uniform(n, 0.0, 1.0, generator) < 0.5
        lowpass = _uniform(n, *self.lowpass_hz, generator)
        highpass = _uniform(n, *self.highpass_hz, generator)
        nyquist_guard = 0.45 * self.sampling_rate
        rows = []
        for i in range(n):  # one filter per example; an IIR pass over a crop costs ~2 ms on one core
            row = batch[i].float()
            if use_lowpass[i]:
                cutoff = min(float(lowpass[i]), nyquist_guard)
                rows.append(torchaudio.functional.lowpass_biquad(row, self.sampling_rate, cutoff, self.q))
            else:
                cutoff = min(float(highpass[i]), nyquist_guard)
                rows.append(torchaudio.functional.highpass_biquad(row, self.sampling_rate, cutoff, self.q))
        return torch.stack(rows)

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, sampling_rate={self.sampling_rate}, lowpass_hz={self.lowpass_hz}, "
            f"highpass_hz={self.highpass_hz}"
        )


class PitchShift(RandomAugmentation):
    """Shift pitch by a random number of semitones in [-`max_semitones`, `max_semitones`] by resampling (pitch and
    tempo change together; see the module docstring for why not `torchaudio.functional.pitch_shift`). Length is
    kept: a shorter result is completed by reflection, a longer one cut back at a random start."""

    def __init__(self, p: float, max_semitones: float = 5.0, max_denominator: int = 32):
        super().__init__(p)
        if max_semitones < 0:
            raise ValueError(f"max_semitones must be >= 0, got {max_semitones}")
        self.max_semitones = float(max_semitones)
        self.max_denominator = int(max_denominator)

    def ratio(self, semitones: float) -> Fraction:
        """The frequency ratio as the fraction `orig / new` of resampling rates."""
        return Fraction(2.0 ** (semitones / 12.0)).limit_denominator(self.max_denominator)

    def apply(self, batch, generator):
        n, length = batch.shape
        semitones = _uniform(n, -self.max_semitones, self.max_semitones, generator)
        offsets = _uniform(n, 0.0, 1.0, generator)
        rows = []
        for i in range(n):
            ratio = self.ratio(float(semitones[i]))
            row = batch[i].float()
            if ratio != 1:
                # Read as recorded at `orig` Hz, written at `new` Hz: length / ratio samples, every frequency x ratio.
                row = torchaudio.functional.resample(row, ratio.numerator, ratio.denominator)
            rows.append(self._fit(row, length, float(offsets[i])))
        return torch.stack(rows)

    @staticmethod
    def _fit(row: torch.Tensor, length: int, offset: float) -> torch.Tensor:
        if row.shape[0] > length:
            start = int(offset * (row.shape[0] - length + 1))
            return row[start : start + length]
        while row.shape[0] < length:  # reflect the end (repeatedly only for very short rows)
            missing = min(length - row.shape[0], row.shape[0] - 1)
            if missing <= 0:
                return F.pad(row, (0, length - row.shape[0]))
            row = F.pad(row[None, None], (0, missing), mode="reflect")[0, 0]
        return row

    def extra_repr(self) -> str:
        return f"p={self.p}, max_semitones={self.max_semitones}"


class Delay(RandomAugmentation):
    """Mix in one echo: `(x + volume * x delayed by d) / (1 + volume)`, `d` drawn from `delay_ms` in steps of
    `step_ms` (CLMR: 200-500 ms by 50 ms, echo at half volume). The result never exceeds the input's peak."""

    def __init__(
        self,
        p: float,
        sampling_rate: int,
        delay_ms: Sequence[float] = (200.0, 500.0),
        step_ms: float = 50.0,
        volume: float = 0.5,
    ):
        super().__init__(p)
        self.sampling_rate = int(sampling_rate)
        self.delay_ms = _check_range("delay_ms", *delay_ms)
        self.step_ms = float(step_ms)
        self.volume = float(volume)

    def apply(self, batch, generator):
        n, length = batch.shape
        steps = int((self.delay_ms[1] - self.delay_ms[0]) // self.step_ms) + 1
        picks = torch.floor(_uniform(n, 0.0, steps, generator)).clamp(max=steps - 1)
        shifts = ((self.delay_ms[0] + picks * self.step_ms) * self.sampling_rate / 1000).long().clamp(max=length)
        index = torch.arange(length)[None, :] - shifts[:, None]
        echo = batch.gather(1, index.clamp(min=0).to(batch.device)) * (index >= 0).to(batch.device)
        return (batch + self.volume * echo) / (1.0 + self.volume)

    def extra_repr(self) -> str:
        return f"p={self.p}, delay_ms={self.delay_ms}, step_ms={self.step_ms}, volume={self.volume}"


class Reverb(RandomAugmentation):
    """Room reverberation: convolution (`torchaudio.functional.fftconvolve`) with a synthetic impulse response, a
    direct path followed by exponentially decaying Gaussian noise whose level falls by 60 dB in a random RT60 from
    `rt60_s` (room size), low-passed by a one-pole filter of random `damping` (air and wall absorption); mixed
    with the dry signal at a random wet share from `wet`. The wet part is scaled to the dry part's RMS, so loudness
    is kept. (CLMR used SoX's reverb, which torchaudio no longer ships.)"""

    def __init__(
        self,
        p: float,
        sampling_rate: int,
        rt60_s: Sequence[float] = (0.2, 1.0),
        wet: Sequence[float] = (0.1, 0.5),
        damping: Sequence[float] = (0.0, 0.7),
    ):
        super().__init__(p)
        self.sampling_rate = int(sampling_rate)
        self.rt60_s = _check_range("rt60_s", *rt60_s)
        self.wet = _check_range("wet", *wet)
        self.damping = _check_range("damping", *damping)

    def impulse_responses(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """`n` impulse responses `(n, taps)`, as long as the longest RT60 allows, with unit energy."""
        rt60 = _uniform(n, *self.rt60_s, generator)
        damping = _uniform(n, *self.damping, generator)
        taps = int(self.rt60_s[1] * self.sampling_rate)
        t = torch.arange(taps) / self.sampling_rate
        device = generator.device if generator is not None else "cpu"
        noise = torch.randn((n, taps), generator=generator, device=device).cpu()
        tail = noise * torch.pow(10.0, -3.0 * t[None, :] / rt60[:, None])  # -60 dB at t = RT60
        tail = torchaudio.functional.lfilter(
            tail, torch.stack([torch.ones(n), -damping], 1), torch.stack([1 - damping, torch.zeros(n)], 1),
            clamp=False, batching=True,
        )
        tail[:, 0] = 0.0
        tail = tail / tail.norm(dim=-1, keepdim=True)
        tail[:, 0] = 1.0  # the direct path
        return tail / tail.norm(dim=-1, keepdim=True)

    def apply(self, batch, generator):
        n, length = batch.shape
        wet = _uniform(n, *self.wet, generator).to(batch.device)[:, None]
        responses = self.impulse_responses(n, generator).to(batch.device)
        dry = batch.float()
        reverberant = torchaudio.functional.fftconvolve(dry, responses)[:, :length]
        reverberant = reverberant * _rms(dry) / _rms(reverberant)
        return (1 - wet) * dry + wet * reverberant

    def extra_repr(self) -> str:
        return f"p={self.p}, rt60_s={self.rt60_s}, wet={self.wet}, damping={self.damping}"


def clmr_augmentations(
    sampling_rate: int,
    polarity_p: float = 0.8,
    noise_p: float = 0.01,
    gain_p: float = 0.3,
    filter_p: float = 0.8,
    pitch_p: float = 0.6,
    max_semitones: float = 5.0,
    min_gain_db: float = -6.0,
    max_gain_db: float = 0.0,
    noise_snr_db: Sequence[float] = (20.0, 40.0),
    delay_p: float = 0.3,
    reverb_p: float = 0.6,
) -> AugmentationChain:
    """CLMR's waveform chain after the random crop, in its order: polarity inversion, noise, gain, filter, delay,
    pitch, reverb. The default probabilities are CLMR's (`config/config.yaml` of github.com/Spijkervet/CLMR)."""
    return AugmentationChain(
        [
            PolarityInversion(polarity_p),
            GaussianNoise(noise_p, noise_snr_db),
            Gain(gain_p, min_gain_db, max_gain_db),
            RandomFilter(filter_p, sampling_rate),
            Delay(delay_p, sampling_rate),
            PitchShift(pitch_p, max_semitones),
            Reverb(reverb_p, sampling_rate),
        ]
    )


# ----------------------------------------------------------------------------------------------------------------
# Spectrograms (batch, n_mels, frames), dB
# ----------------------------------------------------------------------------------------------------------------


class _TorchaudioMasking(RandomAugmentation):
    expected_dim = 3
    masking_class: type = None

    def __init__(self, p: float, mask_param: int):
        super().__init__(p)
        if mask_param < 0:
            raise ValueError(f"mask_param must be >= 0, got {mask_param}")
        self.masking = self.masking_class(int(mask_param), iid_masks=True)

    def apply(self, batch, generator):
        device = generator.device if generator is not None else "cpu"
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device))
        devices = [batch.device] if batch.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self.masking(batch, mask_value=float(batch.mean()))


class TimeMasking(_TorchaudioMasking):
    """Mask up to `mask_param` consecutive frames of each selected example (`torchaudio.transforms.TimeMasking`)."""

    masking_class = torchaudio.transforms.TimeMasking

    def __init__(self, p: float, mask_param: int = 20):
        super().__init__(p, mask_param)


class FrequencyMasking(_TorchaudioMasking):
    """Mask up to `mask_param` consecutive mel bands (`torchaudio.transforms.FrequencyMasking`)."""

    masking_class = torchaudio.transforms.FrequencyMasking

    def __init__(self, p: float, mask_param: int = 8):
        super().__init__(p, mask_param)


class SpectrogramNoise(RandomAugmentation):
    """Mix noise into a dB power spectrogram at a random SNR in `snr_db`: `10 log10(10^(S/10) + N)`, with `N` white
    noise's periodogram (exponential per bin) scaled to the example's mean power times `10^(-snr/10)`."""

    expected_dim = 3

    def __init__(self, p: float, snr_db: Sequence[float] = (10.0, 30.0)):
        super().__init__(p)
        self.snr_db = _check_range("snr_db", *snr_db)

    def apply(self, batch, generator):
        snr = _uniform(batch.shape[0], *self.snr_db, generator).to(batch.device)
        device = generator.device if generator is not None else "cpu"
        exponential = -torch.log1p(-torch.rand(batch.shape, generator=generator, device=device)).to(batch.device)
        power = torch.pow(10.0, batch.float() / 10.0)
        noise_level = power.mean(dim=(1, 2)) * torch.pow(10.0, -snr / 10.0)
        mixed = power + exponential * noise_level[:, None, None]
        return 10.0 * torch.log10(mixed.clamp(min=1e-10))

    def extra_repr(self) -> str:
        return f"p={self.p}, snr_db={self.snr_db}"


def spectrogram_augmentations(
    time_mask_p: float = 0.5,
    frequency_mask_p: float = 0.5,
    noise_p: float = 0.3,
    time_mask_param: int = 20,
    frequency_mask_param: int = 8,
    noise_snr_db: Sequence[float] = (10.0, 30.0),
) -> AugmentationChain:
    """SpecAugment-style chain for log-mel inputs: noise mixing, then frequency and time masking."""
    return AugmentationChain(
        [
            SpectrogramNoise(noise_p, noise_snr_db),
            FrequencyMasking(frequency_mask_p, frequency_mask_param),
            TimeMasking(time_mask_p, time_mask_param),
        ]
    )


def attach_spectrogram_augmentation(
    encoder: nn.Module, chain: AugmentationChain, generator: torch.Generator | None = None
):
    """Apply `chain` to the dB spectrogram an encoder computes inside itself, in training mode only.

    Registers a forward hook on the encoder's first `torchaudio.transforms.AmplitudeToDB` (audiocap's log-mel front
    end) and returns its handle (`handle.remove()` detaches it), or `None` when the encoder has none (a waveform
    encoder). Hooks are not saved with the weights.
    """
    target = next((m for m in encoder.modules() if isinstance(m, torchaudio.transforms.AmplitudeToDB)), None)
    if target is None:
        return None

    def hook(module, inputs, output):
        if not encoder.training:
            return output
        return chain(output, generator)

    return target.register_forward_hook(hook)
