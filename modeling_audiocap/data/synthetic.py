"""The built-in music set: a deterministic, offline generator of short synthetic music clips with captions.

Six styles ("genres") are drawn from musical attributes: tempo, drum pattern, lead instrument, key and mode, and
chord progression. Every genre is a distribution over those attributes and the distributions overlap, so that no
single attribute (tempo, loudness, mode, instrument, drums) tells the genres apart, while their combination does:
drums split the genres into three pairs and the instrument splits them another way. Key, exact tempo, gain
(-12..0 dB) and a little noise are random per clip. Each clip gets a caption written from its parameters in one of
several phrasings; every phrasing states every attribute the captions are scored on (genre, tempo in words and in
bpm, mode, instrument, drums).

The output is an audiofolder-style Hugging Face data set::

    DIR/<genre>/<genre>_0003.wav     16-bit PCM mono WAV
    DIR/metadata.csv                 file_name, genre, caption, caption_2 .. caption_5, attributes, split
    DIR/generation.json              the parameters; written last, it marks the set complete

Command line::

    python -m modeling_audiocap.data.synthetic --output_dir data/music_set [--clips_per_genre 40 --seconds 4.0
        --sampling_rate 16000 --seed 0]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.io import wavfile
from scipy.signal import butter, lfilter, sosfilt

if TYPE_CHECKING:  # datasets is imported lazily: generating the set does not need it.
    import datasets

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # 2: five captions per clip, every one stating the tempo in bpm
DEFAULT_CLIPS_PER_GENRE = 40
DEFAULT_SECONDS = 4.0
DEFAULT_SAMPLING_RATE = 16000
DEFAULT_SEED = 0
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
CAPTION_COLUMNS = ("caption", "caption_2", "caption_3", "caption_4", "caption_5")  # one per template
METADATA_COLUMNS = (
    "file_name", "genre", *CAPTION_COLUMNS, "tempo_bpm", "tempo_class", "drums", "instrument", "key", "mode",
    "progression", "gain_db", "split",
)

DRUM_PATTERNS = ("four_on_the_floor", "backbeat", "swing_ride", "one_drop", "timpani", "none")
INSTRUMENTS = ("saw_lead", "sine_pad", "pluck", "organ", "bell", "e_piano")
PROGRESSION_STYLES = ("pop", "cadence", "two_chord", "ii_v", "vamp")
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class GenreSpec:
    """A genre as a distribution over musical attributes (categorical ones as {value: probability})."""

    tempo: tuple[float, float]
    drums: dict[str, float]
    instrument: dict[str, float]
    minor_prob: float
    progression: dict[str, float]


def _thirds(*values: str) -> dict[str, float]:
    return {v: 1.0 / len(values) for v in values}


# Drums pair the genres as (electronic, reggae), (rock, jazz), (classical, ambient) and the two genres of a pair use
# complementary instrument sets, so (drums, instrument) identifies the genre, while drums alone are right at best half
# the time and the instrument alone a third. Tempo ranges, mode and progression overlap and add weak evidence.
GENRES: dict[str, GenreSpec] = {
    "electronic": GenreSpec(
        tempo=(100, 140), drums={"four_on_the_floor": 0.5, "one_drop": 0.5},
        instrument=_thirds("saw_lead", "bell", "sine_pad"), minor_prob=0.6,
        progression={"pop": 0.35, "vamp": 0.35, "cadence": 0.3},
    ),
    "rock": GenreSpec(
        tempo=(90, 160), drums={"backbeat": 0.5, "swing_ride": 0.5},
        instrument=_thirds("saw_lead", "pluck", "organ"), minor_prob=0.45,
        progression={"pop": 0.4, "cadence": 0.3, "two_chord": 0.3},
    ),
    "jazz": GenreSpec(
        tempo=(76, 176), drums={"swing_ride": 0.5, "backbeat": 0.5},
        instrument=_thirds("e_piano", "bell", "sine_pad"), minor_prob=0.5,
        progression={"ii_v": 0.45, "cadence": 0.3, "two_chord": 0.25},
    ),
    "classical": GenreSpec(
        tempo=(60, 150), drums={"none": 0.5, "timpani": 0.5},
        instrument=_thirds("pluck", "organ", "e_piano"), minor_prob=0.5,
        progression={"cadence": 0.45, "pop": 0.3, "ii_v": 0.25},
    ),
    "reggae": GenreSpec(
        tempo=(64, 116), drums={"one_drop": 0.5, "four_on_the_floor": 0.5},
        instrument=_thirds("organ", "e_piano", "pluck"), minor_prob=0.35,
        progression={"two_chord": 0.4, "pop": 0.35, "vamp": 0.25},
    ),
    "ambient": GenreSpec(
        tempo=(56, 116), drums={"none": 0.5, "timpani": 0.5},
        instrument=_thirds("sine_pad", "bell", "saw_lead"), minor_prob=0.6,
        progression={"vamp": 0.4, "two_chord": 0.3, "pop": 0.3},
    ),
}

# Chords as (root in semitones above the tonic, intervals above the root) and their roman numerals, per mode.
_MAJ, _MIN, _DIM = (0, 4, 7), (0, 3, 7), (0, 3, 6)
_MAJ7, _MIN7, _DOM7, _HDIM7 = (0, 4, 7, 11), (0, 3, 7, 10), (0, 4, 7, 10), (0, 3, 6, 10)
PROGRESSIONS: dict[str, dict[str, tuple[str, list[tuple[int, tuple[int, ...]]]]]] = {
    "major": {
        "pop": ("I-V-vi-IV", [(0, _MAJ), (7, _MAJ), (9, _MIN), (5, _MAJ)]),
        "cadence": ("I-IV-V-I", [(0, _MAJ), (5, _MAJ), (7, _MAJ), (0, _MAJ)]),
        "two_chord": ("I-IV", [(0, _MAJ), (5, _MAJ)]),
        "ii_v": ("ii7-V7-Imaj7-vi7", [(2, _MIN7), (7, _DOM7), (0, _MAJ7), (9, _MIN7)]),
        "vamp": ("I-bVII", [(0, _MAJ), (10, _MAJ)]),
    },
    "minor": {
        "pop": ("i-VI-III-VII", [(0, _MIN), (8, _MAJ), (3, _MAJ), (10, _MAJ)]),
        "cadence": ("i-iv-V-i", [(0, _MIN), (5, _MIN), (7, _MAJ), (0, _MIN)]),
        "two_chord": ("i-iv", [(0, _MIN), (5, _MIN)]),
        "ii_v": ("iim7b5-V7-im7-im7", [(2, _HDIM7), (7, _DOM7), (0, _MIN7), (0, _MIN7)]),
        "vamp": ("i-VII", [(0, _MIN), (10, _MAJ)]),
    },
}

# Caption phrases. Each instrument phrase holds its keyword (synth, pad, pluck, organ, bell, piano).
INSTRUMENT_PHRASES = {
    "saw_lead": ("a bright saw synth lead", "a buzzy sawtooth synth lead"),
    "sine_pad": ("a warm sine pad", "a soft, sustained synth pad"),
    "pluck": ("plucked strings", "a plucked string arpeggio"),
    "organ": ("an organ", "warm drawbar organ chords"),
    "bell": ("bell-like FM chimes", "glassy FM bell tones"),
    "e_piano": ("an electric piano", "mellow electric piano chords"),
}
DRUM_PHRASES = {
    "four_on_the_floor": ("with a four-on-the-floor kick", "over a steady four-on-the-floor beat"),
    "backbeat": ("with a backbeat drum groove", "over a rock backbeat with the snare on two and four"),
    "swing_ride": ("with a swinging ride cymbal", "over swung ride-cymbal drums"),
    "one_drop": ("with a one-drop beat and offbeat hi-hats", "over a laid-back one-drop rhythm"),
    "timpani": ("with timpani on the downbeats", "over rolling timpani hits"),
    "none": ("without drums", "with no percussion"),
}
TEMPO_WORDS = {
    "slow": ("slow", "slow-paced"), "medium": ("medium-tempo", "medium-paced"), "fast": ("fast", "fast-paced"),
}
CAPTION_TEMPLATES = (
    "a {tempo} {mode}-key {genre} track at {bpm} bpm, featuring {instrument} {drums}",
    "{instrument} {drums} in this {tempo} {genre} piece in {key} {mode} at about {bpm} bpm",
    "{tempo} {genre} music at {bpm} bpm in {key} {mode}: {instrument} {drums}; the chords go {progression}",
    "a {mode}-key {genre} tune at a {tempo} {bpm} bpm, built on {instrument} {drums}",
    "an instrumental {genre} clip, {tempo} ({bpm} bpm) and in {mode}: {instrument} {drums}",
)

# Reading captions back (the caption_attributes metric): per attribute column, per value, the phrases that name that
# value: the caption phrases above plus short keywords a captioner may use on their own. Matching is on lowercased
# words (punctuation and hyphens separate words), longest phrase first, and a matched span is used only once, so
# "rock backbeat" names a drum pattern, not the genre. Not used to write captions.
CAPTION_ATTRIBUTES = ("genre", "tempo_class", "mode", "instrument", "drums")
_ATTRIBUTE_KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "tempo_class": {"slow": ("slow",), "medium": ("medium",), "fast": ("fast",)},
    "instrument": {
        "saw_lead": ("saw", "sawtooth", "saw lead", "synth lead"),
        "sine_pad": ("sine", "pad", "pads", "sine pad", "synth pad"),
        "pluck": ("pluck", "plucked", "plucks"),
        "organ": ("organ", "organs"),
        "bell": ("bell", "bells", "chimes"),
        "e_piano": ("piano", "electric piano", "e piano"),
    },
    "drums": {
        "four_on_the_floor": ("four on the floor",),
        "backbeat": ("backbeat", "rock backbeat"),
        "swing_ride": ("ride", "ride cymbal", "swing", "swung", "swinging"),
        "one_drop": ("one drop",),
        "timpani": ("timpani",),
        "none": ("no drums", "without drums", "no percussion", "without percussion"),
    },
}
ATTRIBUTE_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "genre": {genre: (genre,) for genre in GENRES},
    "tempo_class": {c: TEMPO_WORDS[c] + _ATTRIBUTE_KEYWORDS["tempo_class"][c] for c in TEMPO_WORDS},
    "mode": {"major": ("major",), "minor": ("minor",)},
    "instrument": {i: INSTRUMENT_PHRASES[i] + _ATTRIBUTE_KEYWORDS["instrument"][i] for i in INSTRUMENTS},
    "drums": {d: DRUM_PHRASES[d] + _ATTRIBUTE_KEYWORDS["drums"][d] for d in DRUM_PATTERNS},
}


def tempo_class(bpm: float) -> str:
    """slow (< 90 BPM), medium (90-120) or fast (>= 120)."""
    return "slow" if bpm < 90 else ("medium" if bpm < 120 else "fast")


# --------------------------------------------------------------------------------------------------- synthesis


def _midi_hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _envelope(n: int, sr: int, attack: float, decay: float | None, release: float = 0.02) -> np.ndarray:
    """Linear attack, then an exponential decay with time constant `decay` (None: sustain), short release."""
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay is not None:
        env = env * np.exp(-np.maximum(t - attack, 0.0) / decay)
    n_rel = min(n, max(1, int(release * sr)))
    env[n - n_rel:] *= np.linspace(1.0, 0.0, n_rel)
    return env


def _additive(freq: float, n: int, sr: int, partials: np.ndarray, amps: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Sum of sines at freq * partials (integers; those above 0.45 sr dropped), read from a one-period wavetable."""
    keep = freq * partials < 0.45 * sr
    size = 2048
    grid = np.arange(size + 1) / size
    table = np.sin(2 * np.pi * grid[:, None] * partials[keep] + phase[keep]) @ amps[keep]
    pos = (freq * np.arange(n) / sr) % 1.0 * size
    i = pos.astype(np.int64)
    frac = pos - i
    return table[i] * (1.0 - frac) + table[i + 1] * frac


@functools.lru_cache(maxsize=16)
def _sos(kind: str, cutoff: float | tuple[float, float], sr: int, order: int = 2) -> np.ndarray:
    return butter(order, cutoff, btype=kind, fs=sr, output="sos")


def _note(instrument: str, midi: float, dur: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note of an instrument, `dur` seconds plus its natural ring-out, unit-ish peak."""
    f = float(_midi_hz(midi))
    if instrument == "saw_lead":
        n = int((dur + 0.05) * sr)
        k = np.arange(1, 41, dtype=np.float64)
        sig = sum(_additive(f * d, n, sr, k, 1.0 / k, rng.uniform(0, 2 * np.pi, k.size)) for d in (0.997, 1.003))
        return 0.35 * sig * _envelope(n, sr, 0.005, None, 0.04) * (0.7 + 0.3 * np.exp(-np.arange(n) / (0.15 * sr)))
    if instrument == "sine_pad":
        n = int((dur + 0.3) * sr)
        t = np.arange(n) / sr
        sig = sum(np.sin(2 * np.pi * f * d * t + rng.uniform(0, 2 * np.pi)) for d in (0.995, 1.0, 1.005))
        sig = sig / 3 + 0.15 * np.sin(2 * np.pi * 2 * f * t)
        return sig * _envelope(n, sr, min(0.4, 0.4 * dur), None, 0.3)
    if instrument == "pluck":  # Karplus-Strong: a noise burst through a damped comb with a two-point average.
        n = int((dur + 0.6) * sr)
        period = max(2, int(round(sr / f - 0.5)))
        burst = lfilter([0.5, 0.5], [1.0], rng.uniform(-1, 1, period))
        x = np.zeros(n)
        x[:period] = burst
        a = np.zeros(period + 2)
        a[0], a[period], a[period + 1] = 1.0, -0.4985, -0.4985
        return 1.2 * lfilter([1.0], a, x) * _envelope(n, sr, 0.001, None, 0.05)
    if instrument == "organ":
        n = int((dur + 0.05) * sr)
        partials = np.array([1, 2, 4, 6, 8, 12, 16], dtype=np.float64)  # drawbars 16', 8', 4', 2 2/3', 2', ...
        amps = np.array([0.5, 1.0, 0.7, 0.5, 0.35, 0.2, 0.15])
        sig = _additive(f / 2, n, sr, partials, amps, rng.uniform(0, 2 * np.pi, partials.size)) / 2.2
        tremolo = 1.0 + 0.15 * np.sin(2 * np.pi * 6.0 * np.arange(n) / sr)
        return sig * tremolo * _envelope(n, sr, 0.01, None, 0.04)
    if instrument == "bell":  # two-operator FM, inharmonic ratio, decaying index.
        n = int((dur + 1.2) * sr)
        t = np.arange(n) / sr
        index = 3.0 * np.exp(-t / 0.4)
        sig = np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * 3.5 * f * t))
        return 0.8 * sig * _envelope(n, sr, 0.002, 0.6, 0.05)
    if instrument == "e_piano":  # FM at ratio 1 (warm body) plus a faint, fast-decaying tine at ratio 14.
        n = int((dur + 0.5) * sr)
        t = np.arange(n) / sr
        body = np.sin(2 * np.pi * f * t + 1.2 * np.exp(-t / 0.25) * np.sin(2 * np.pi * f * t))
        tine = 0.25 * np.sin(2 * np.pi * 14 * f * t) * np.exp(-t / 0.03) if 14 * f < 0.45 * sr else 0.0
        return 0.9 * (body + tine) * _envelope(n, sr, 0.003, 0.9, 0.08)
    raise ValueError(f"unknown instrument {instrument!r}")


def _add(buf: np.ndarray, sig: np.ndarray, start: int) -> None:
    """Mix `sig` into `buf` from sample `start`, cropping at the end."""
    if start >= buf.size:
        return
    start = max(start, 0)
    m = min(sig.size, buf.size - start)
    buf[start:start + m] += sig[:m]


def _drum_sounds(sr: int, tonic_pc: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot drum samples for a clip."""
    def noise(sec: float) -> np.ndarray:
        return rng.standard_normal(int(sec * sr))

    t = np.arange(int(0.35 * sr)) / sr
    f0 = rng.uniform(48, 60)
    kick = np.sin(2 * np.pi * (f0 * t + (110.0 * 0.04) * (1 - np.exp(-t / 0.04)))) * np.exp(-t / 0.12)
    ts = np.arange(int(0.2 * sr)) / sr
    snare = 0.6 * sosfilt(_sos("bandpass", (1200.0, min(6000.0, 0.45 * sr)), sr), noise(0.2)) * np.exp(-ts / 0.05)
    snare += 0.4 * np.sin(2 * np.pi * 190 * ts) * np.exp(-ts / 0.03)
    hp = _sos("highpass", min(7000.0, 0.4 * sr), sr)
    th = np.arange(int(0.05 * sr)) / sr
    hat = 0.5 * sosfilt(hp, noise(0.05)) * np.exp(-th / 0.012)
    to = np.arange(int(0.25 * sr)) / sr
    open_hat = 0.4 * sosfilt(hp, noise(0.25)) * np.exp(-to / 0.08)
    tr = np.arange(int(0.8 * sr)) / sr
    ride_partials = np.array([1.0, 1.47, 2.09, 2.56, 3.14, 3.87])
    ride = np.sin(2 * np.pi * 620.0 * tr[:, None] * ride_partials + rng.uniform(0, 6.3, 6)) @ np.full(6, 0.12)
    ride = (ride + 0.25 * sosfilt(_sos("highpass", min(5000.0, 0.4 * sr), sr), noise(0.8))) * np.exp(-tr / 0.35)
    ride *= np.minimum(1.0, tr / 0.002)
    tr2 = np.arange(int(0.06 * sr)) / sr
    rim = 0.5 * np.sin(2 * np.pi * 1700 * tr2) * np.exp(-tr2 / 0.01)
    rim += 0.2 * sosfilt(_sos("highpass", 2000.0, sr), noise(0.06)) * np.exp(-tr2 / 0.008)
    tt = np.arange(int(1.2 * sr)) / sr
    ft = float(_midi_hz(36 + tonic_pc % 7))
    timpani = sum(a * np.sin(2 * np.pi * ft * r * tt) for a, r in ((1.0, 1.0), (0.5, 1.5), (0.3, 1.98), (0.2, 2.44)))
    timpani = (timpani + 0.2 * sosfilt(_sos("lowpass", 400.0, sr), noise(1.2))) * np.exp(-tt / 0.45)
    timpani *= np.minimum(1.0, tt / 0.004) * 0.9
    return dict(kick=kick, snare=snare, hat=hat, open_hat=open_hat, ride=ride, rim=rim, timpani=timpani)


# Hits per 4-beat bar: (sound, beat position, velocity). Swing uses triplet offsets (2/3 of a beat).
_SW = 2.0 / 3.0
DRUM_BARS: dict[str, list[tuple[str, float, float]]] = {
    "four_on_the_floor": [("kick", b, 1.0) for b in range(4)] + [("snare", b, 0.6) for b in (1, 3)]
    + [("open_hat", b + 0.5, 0.7) for b in range(4)] + [("hat", b * 0.25, 0.25) for b in range(16) if b % 2 == 0],
    "backbeat": [("kick", 0, 1.0), ("kick", 2, 0.9), ("kick", 2.5, 0.7), ("snare", 1, 1.0), ("snare", 3, 1.0)]
    + [("hat", b * 0.5, 0.5 if b % 2 == 0 else 0.35) for b in range(8)],
    "swing_ride": [("ride", b, 0.8) for b in range(4)] + [("ride", b + _SW, 0.55) for b in (1, 3)]
    + [("hat", b, 0.4) for b in (1, 3)] + [("kick", b, 0.25) for b in range(4)] + [("snare", 2 + _SW, 0.25)],
    "one_drop": [("kick", 2, 1.0), ("rim", 2, 0.9)] + [("hat", b + 0.5, 0.6) for b in range(4)]
    + [("hat", b + 0.75, 0.25) for b in range(4)],
    "timpani": [("timpani", 0, 1.0), ("timpani", 3.5, 0.5)],
    "none": [],
}


def _render_clip(attrs: dict[str, Any], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Render one clip (float64, length n, RMS-normalised to -20 dBFS before gain) from its attributes."""
    beat = 60.0 / attrs["tempo_bpm"]
    tonic = attrs["tonic_pc"]
    chords = attrs["chords"]
    instrument = attrs["instrument"]
    seconds = n / sr
    chord_beats = 2
    n_chords = int(np.ceil(seconds / (chord_beats * beat))) + 1

    harmony, bass, drums = np.zeros(n), np.zeros(n), np.zeros(n)
    cache: dict[tuple[float, float], np.ndarray] = {}

    def note(midi: float, dur: float) -> np.ndarray:  # repeated notes in a clip reuse one rendering
        key = (float(midi), round(dur, 6))
        if key not in cache:
            cache[key] = _note(instrument, midi, dur, sr, rng)
        return cache[key]

    base = {"saw_lead": 67, "sine_pad": 57, "pluck": 55, "organ": 55, "bell": 72, "e_piano": 57}[instrument]
    for ci in range(n_chords):
        root, intervals = chords[ci % len(chords)]
        t0 = ci * chord_beats * beat
        pitches = base + ((tonic + root - base) % 12) + np.array(intervals)  # chord voiced at the base register
        if instrument in ("sine_pad", "organ"):  # sustained chords
            for p in pitches:
                _add(harmony, note(p, chord_beats * beat) * 0.5, int(t0 * sr))
        elif instrument == "e_piano":  # chord stabs on each beat of the chord
            for b in range(chord_beats):
                vel = rng.uniform(0.7, 1.0)
                for p in pitches:
                    _add(harmony, note(p, 0.9 * beat) * 0.45 * vel, int((t0 + b * beat) * sr))
        else:  # arpeggios: eighths (saw lead, pluck) or quarters (bell)
            step = 0.5 if instrument in ("saw_lead", "pluck") else 1.0
            order = np.concatenate([pitches, pitches[1:-1][::-1] + 12]) if instrument == "saw_lead" else pitches
            for j in range(int(chord_beats / step)):
                p = order[j % order.size]
                vel = rng.uniform(0.75, 1.0)
                _add(harmony, note(p, 0.95 * step * beat) * vel, int((t0 + j * step * beat) * sr))
        # Bass: the chord root in the second octave, on every beat.
        bass_midi = 36 + (tonic + root) % 12
        tb = np.arange(int(0.9 * beat * sr)) / sr
        bass_note = (np.sin(2 * np.pi * _midi_hz(bass_midi) * tb) + 0.3 * np.sin(4 * np.pi * _midi_hz(bass_midi) * tb))
        bass_note *= _envelope(tb.size, sr, 0.01, 0.5, 0.03)
        for b in range(chord_beats):
            _add(bass, bass_note, int((t0 + b * beat) * sr))

    pattern = DRUM_BARS[attrs["drums"]]
    if pattern:
        sounds = _drum_sounds(sr, tonic, rng)
        for bar in range(int(np.ceil(seconds / (4 * beat)))):
            for name, pos, vel in pattern:
                jitter = rng.normal(0.0, 0.004)
                v = vel * rng.uniform(0.85, 1.0)
                _add(drums, sounds[name] * v, int(((bar * 4 + pos) * beat + jitter) * sr))

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x**2)) + 1e-9)

    mix = harmony / rms(harmony) + 0.35 * bass / rms(bass)
    if pattern:
        mix = mix + 0.8 * drums / rms(drums)
    return mix * (0.1 / rms(mix))


def _choice(rng: np.random.Generator, dist: dict[str, float]) -> str:
    p = np.array(list(dist.values()), dtype=np.float64)
    return str(rng.choice(list(dist), p=p / p.sum()))


def sample_clip(genre: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one clip's attributes (and caption) from its genre's distribution."""
    spec = GENRES[genre]
    bpm = round(float(rng.uniform(*spec.tempo)), 1)
    mode = "minor" if rng.random() < spec.minor_prob else "major"
    tonic = int(rng.integers(12))
    style = _choice(rng, spec.progression)
    numerals, chords = PROGRESSIONS[mode][style]
    attrs: dict[str, Any] = {
        "genre": genre,
        "tempo_bpm": bpm,
        "tempo_class": tempo_class(bpm),
        "drums": _choice(rng, spec.drums),
        "instrument": _choice(rng, spec.instrument),
        "key": NOTE_NAMES[tonic],
        "mode": mode,
        "progression": numerals,
        "tonic_pc": tonic,
        "chords": chords,
    }
    attrs["caption_template"] = int(rng.integers(len(CAPTION_TEMPLATES)))
    attrs["caption"] = write_caption(attrs, CAPTION_TEMPLATES[attrs["caption_template"]], rng)
    return attrs


def write_caption(attrs: dict[str, Any], template: str, rng: np.random.Generator) -> str:
    """A caption of the clip `attrs` in `template`, its phrases drawn with `rng`."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    caption = template.format(
        tempo=pick(TEMPO_WORDS[attrs["tempo_class"]]), mode=attrs["mode"], genre=attrs["genre"], key=attrs["key"],
        bpm=int(round(attrs["tempo_bpm"])), instrument=pick(INSTRUMENT_PHRASES[attrs["instrument"]]),
        drums=pick(DRUM_PHRASES[attrs["drums"]]), progression=attrs["progression"],
    )
    return caption[0].upper() + caption[1:] + "."


def more_captions(attrs: dict[str, Any], rng: np.random.Generator) -> dict[str, str]:
    """`caption_2`, `caption_3`, ...: the clip written in each of the other templates (in a random order), as
    several annotators would describe it."""
    others = [int(i) for i in rng.permutation(len(CAPTION_TEMPLATES)) if i != attrs["caption_template"]]
    return {f"caption_{k}": write_caption(attrs, CAPTION_TEMPLATES[i], rng) for k, i in enumerate(others, start=2)}


def synthesize_clip(
    genre: str, seed: int, index: int, seconds: float = DEFAULT_SECONDS, sampling_rate: int = DEFAULT_SAMPLING_RATE
) -> tuple[np.ndarray, dict[str, Any]]:
    """One clip as (float32 waveform in [-1, 1], attributes); fully determined by (genre, seed, index)."""
    rng = np.random.default_rng([seed, list(GENRES).index(genre), index])
    attrs = sample_clip(genre, rng)
    n = int(round(seconds * sampling_rate))
    audio = _render_clip(attrs, n, sampling_rate, rng)
    audio = audio + 10 ** (rng.uniform(-50, -40) / 20) * rng.standard_normal(n)  # a little noise, below the music
    gain_db = float(rng.uniform(-12.0, 0.0))
    audio = audio * 10 ** (gain_db / 20)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.98:  # keep a margin below full scale; the recorded gain is the one applied
        audio *= 0.98 / peak
        gain_db += 20 * np.log10(0.98 / peak)
    attrs["gain_db"] = round(gain_db, 2)
    # drawn after the audio, from a generator of their own: the clip's sound does not depend on how it is described
    attrs.update(more_captions(attrs, np.random.default_rng([seed, list(GENRES).index(genre), index, 1])))
    return audio.astype(np.float32), attrs


# ------------------------------------------------------------------------------------------------ the data set


def _split_assignment(n: int, seed: int, genre_index: int) -> list[str]:
    """A deterministic per-genre split (stratified, since it is drawn within each genre)."""
    n_val = int(round(SPLIT_FRACTIONS["validation"] * n)) if n >= 3 else 0
    n_test = int(round(SPLIT_FRACTIONS["test"] * n)) if n >= 3 else 0
    n_val, n_test = (max(1, n_val), max(1, n_test)) if n >= 3 else (0, 0)
    order = np.random.default_rng([seed, 7919, genre_index]).permutation(n)
    split = ["train"] * n
    for i in order[:n_val]:
        split[i] = "validation"
    for i in order[n_val:n_val + n_test]:
        split[i] = "test"
    return split


def _params(clips_per_genre: int, seconds: float, sampling_rate: int, seed: int) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION, "clips_per_genre": int(clips_per_genre), "seconds": float(seconds),
        "sampling_rate": int(sampling_rate), "seed": int(seed), "genres": list(GENRES),
    }


def _is_complete(out: Path, params: dict[str, Any]) -> bool:
    """Whether `out` holds a finished set made with exactly `params`."""
    try:
        info = json.loads((out / "generation.json").read_text())
        with open(out / "metadata.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError):
        return False
    expected = params["clips_per_genre"] * len(params["genres"])
    return (
        info.get("params") == params and len(rows) == expected and all((out / r["file_name"]).is_file() for r in rows)
    )


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    wavfile.write(path, sr, pcm)


def _remove_stale_siblings(out: Path, max_age_s: float = 3600.0) -> None:
    """Remove temporary directories that killed runs left beside `out` (only ones untouched for an hour)."""
    now = time.time()
    for pattern in (f".{out.name}.tmp-*", f".{out.name}.old-*"):
        for path in out.parent.glob(pattern):
            try:
                if path.is_dir() and now - path.stat().st_mtime > max_age_s:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def generate_music_set(
    output_dir: str | os.PathLike,
    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE,
    seconds: float = DEFAULT_SECONDS,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> Path:
    """Write the built-in music set to `output_dir` and return that path.

    A set already there with the same parameters is reused as is. Otherwise the set is written to a temporary
    sibling directory and renamed into place, so an interrupted run never leaves a partial set that looks complete.
    A non-empty `output_dir` that is not a generated set is refused rather than overwritten.
    """
    from tqdm.auto import tqdm

    if clips_per_genre < 1 or seconds <= 0 or sampling_rate < 8000 or seed < 0:
        raise ValueError("need clips_per_genre >= 1, seconds > 0, sampling_rate >= 8000 and seed >= 0")
    out = Path(output_dir).expanduser().absolute()
    params = _params(clips_per_genre, seconds, sampling_rate, seed)
    if _is_complete(out, params):
        logger.info("Reusing the music set in %s", out)
        return out
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "generation.json").exists())):
        raise FileExistsError(f"{out} exists and is not a generated music set; choose another --output_dir")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    start = time.perf_counter()
    try:
        rows: list[dict[str, Any]] = []
        total = clips_per_genre * len(GENRES)
        with tqdm(total=total, desc="Synthesising music set", unit="clip", disable=not progress) as bar:
            for gi, genre in enumerate(GENRES):
                (tmp / genre).mkdir()
                splits = _split_assignment(clips_per_genre, seed, gi)
                for i in range(clips_per_genre):
                    audio, attrs = synthesize_clip(genre, seed, i, seconds, sampling_rate)
                    file_name = f"{genre}/{genre}_{i:04d}.wav"
                    _write_wav(tmp / file_name, audio, sampling_rate)
                    rows.append({**{k: attrs[k] for k in METADATA_COLUMNS if k in attrs}, "file_name": file_name,
                                 "split": splits[i]})
                    bar.update(1)
        with open(tmp / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        counts = {s: sum(r["split"] == s for r in rows) for s in SPLIT_FRACTIONS}
        info = {"name": "audiocap built-in music set", "params": params, "num_clips": len(rows), "splits": counts,
                "columns": list(METADATA_COLUMNS)}
        (tmp / "generation.json").write_text(json.dumps(info, indent=2) + "\n")  # last: marks the set complete
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
        _remove_stale_siblings(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Wrote %d clips (%s) to %s in %.1f s", len(rows), counts, out, time.perf_counter() - start)
    return out


def load_music_set(data_dir: str | os.PathLike) -> "datasets.DatasetDict":
    """The set as a DatasetDict split by its `split` column; audio is cast to `datasets.Audio` but not decoded.

    Columns: `audio` (Audio, native rate), `path` (absolute path), `file_name` (relative path), `label`
    (ClassLabel over the sorted genre names), `genre`, `caption` to `caption_5` and the attribute columns.
    """
    import datasets

    root = Path(data_dir).expanduser().absolute()
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{root / 'metadata.csv'} has no rows")
    genres = sorted(GENRES)  # sorted, as modeling_audiocap.data.genre names its labels
    label = datasets.ClassLabel(names=genres)
    splits = {}
    for split in SPLIT_FRACTIONS:
        part = [r for r in rows if r["split"] == split]
        if not part:
            continue
        columns: dict[str, list[Any]] = {
            "audio": [str(root / r["file_name"]) for r in part],
            "path": [str(root / r["file_name"]) for r in part],
            "label": [genres.index(r["genre"]) for r in part],
        }
        for c in METADATA_COLUMNS:
            if c == "split":
                continue
            columns[c] = [float(r[c]) if c in ("tempo_bpm", "gain_db") else r[c] for r in part]
        features = datasets.Features(
            {c: datasets.Value("float64" if c in ("tempo_bpm", "gain_db") else "string") for c in columns}
        )
        features["label"] = label
        ds = datasets.Dataset.from_dict(columns, features=features, split=split)
        splits[split] = ds.cast_column("audio", datasets.Audio(sampling_rate=None))
    return datasets.DatasetDict(splits)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="where to write (or find) the set")
    parser.add_argument("--clips_per_genre", type=int, default=DEFAULT_CLIPS_PER_GENRE)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--sampling_rate", type=int, default=DEFAULT_SAMPLING_RATE)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = generate_music_set(args.output_dir, args.clips_per_genre, args.seconds, args.sampling_rate, args.seed)
    print(out)
    return out


if __name__ == "__main__":
    main()
