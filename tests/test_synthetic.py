"""The built-in music set: layout, determinism, reuse, splits, captions, and "learnable but not trivial"."""

import csv
import json
import os
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.ndimage import median_filter

from modeling_audiocap.data.synthetic import (
    CAPTION_COLUMNS,
    GENRES,
    INSTRUMENTS,
    METADATA_COLUMNS,
    generate_music_set,
    load_music_set,
    main,
)

SMALL = dict(clips_per_genre=8, seconds=2.0, sampling_rate=16000, seed=0)
INSTRUMENT_WORDS = {"saw_lead": "synth", "sine_pad": "pad", "pluck": "pluck", "organ": "organ", "bell": "bell",
                    "e_piano": "piano"}


def read_rows(root: Path) -> list[dict]:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_audio(path: Path) -> tuple[int, np.ndarray]:
    sr, pcm = wavfile.read(path)
    return sr, pcm.astype(np.float64) / 32768.0


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return generate_music_set(tmp_path_factory.mktemp("small") / "music", progress=False, **SMALL)


def test_layout_and_metadata(small_set):
    assert (small_set / "generation.json").is_file()
    info = json.loads((small_set / "generation.json").read_text())
    assert info["params"]["clips_per_genre"] == 8 and info["params"]["seed"] == 0
    rows = read_rows(small_set)
    assert tuple(rows[0]) == METADATA_COLUMNS
    assert len(rows) == 8 * len(GENRES) == info["num_clips"]
    assert Counter(r["genre"] for r in rows) == {g: 8 for g in GENRES}
    for r in rows:
        assert r["file_name"].startswith(f"{r['genre']}/") and (small_set / r["file_name"]).is_file()
        spec = GENRES[r["genre"]]
        assert spec.tempo[0] <= float(r["tempo_bpm"]) <= spec.tempo[1]
        assert r["tempo_class"] in ("slow", "medium", "fast")
        assert r["drums"] in spec.drums and r["instrument"] in spec.instrument and r["mode"] in ("major", "minor")
        assert -12.5 <= float(r["gain_db"]) <= 0.0
    assert {r["instrument"] for r in rows} <= set(INSTRUMENTS)
    assert len({r["key"] for r in rows}) > 4  # the key is random per clip


def test_audio_is_valid_pcm(small_set):
    for r in read_rows(small_set):
        with wave.open(str(small_set / r["file_name"])) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert w.getnframes() == 32000
        _, x = read_audio(small_set / r["file_name"])
        assert np.isfinite(x).all() and np.abs(x).max() <= 1.0
        assert np.sqrt(np.mean(x**2)) > 0.005, r["file_name"]  # not silent, even at -12 dB


def test_deterministic(small_set, tmp_path):
    again = generate_music_set(tmp_path / "again", progress=False, **SMALL)
    for name in ("metadata.csv", "generation.json"):
        assert (again / name).read_bytes() == (small_set / name).read_bytes()
    for r in read_rows(small_set):
        assert (again / r["file_name"]).read_bytes() == (small_set / r["file_name"]).read_bytes()

    other = generate_music_set(tmp_path / "other", progress=False, **{**SMALL, "seed": 1})
    assert (other / "metadata.csv").read_bytes() != (small_set / "metadata.csv").read_bytes()
    first = read_rows(small_set)[0]["file_name"]
    assert (other / first).read_bytes() != (small_set / first).read_bytes()


def test_reuse_and_atomic_regeneration(tmp_path):
    params = dict(clips_per_genre=2, seconds=0.5, sampling_rate=8000, seed=3)
    out = generate_music_set(tmp_path / "set", progress=False, **params)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert generate_music_set(tmp_path / "set", progress=False, **params) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    # A missing file makes the set incomplete: it is made again.
    victim = out / read_rows(out)[0]["file_name"]
    victim.unlink()
    generate_music_set(out, progress=False, **params)
    assert victim.is_file()

    # Other parameters replace the set in place, leaving no temporary directory behind.
    generate_music_set(out, progress=False, **{**params, "seed": 4})
    assert json.loads((out / "generation.json").read_text())["params"]["seed"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_music_set(tmp_path / "mine", clips_per_genre=1, seconds=0.5, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli(tmp_path, capsys):
    out = main(["--output_dir", str(tmp_path / "cli"), "--clips_per_genre", "1", "--seconds", "0.5",
                "--sampling_rate", "8000", "--seed", "2"])
    assert out == tmp_path / "cli" and len(read_rows(out)) == len(GENRES)
    assert str(out) in capsys.readouterr().out


def test_splits_disjoint_and_stratified(small_set):
    rows = read_rows(small_set)
    assert len({r["file_name"] for r in rows}) == len(rows)
    per_genre = {g: Counter(r["split"] for r in rows if r["genre"] == g) for g in GENRES}
    assert all(c == {"train": 6, "validation": 1, "test": 1} for c in per_genre.values()), per_genre


def test_captions_describe_the_clip(small_set):
    """Five captions per clip, each in another template, each naming every attribute and the tempo in bpm."""
    rows = read_rows(small_set)
    for r in rows:
        captions = [r[c].lower() for c in CAPTION_COLUMNS]
        assert len(set(captions)) == len(captions)
        for caption in captions:
            assert r["genre"] in caption and r["tempo_class"] in caption and r["mode"] in caption, caption
            assert INSTRUMENT_WORDS[r["instrument"]] in caption, caption
            assert f"{round(float(r['tempo_bpm']))} bpm" in caption, caption
            if r["drums"] == "none":
                assert "without drums" in caption or "no percussion" in caption
    assert len({r["caption"].split()[0] for r in rows}) >= 4  # the first caption's template varies too


def test_load_music_set(small_set):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    ds = load_music_set(small_set)
    assert {k: len(v) for k, v in ds.items()} == {"train": 36, "validation": 6, "test": 6}
    train = ds["train"]
    assert isinstance(train.features["audio"], datasets.Audio)
    assert train.features["label"].names == sorted(GENRES)
    expected = {"path", "file_name", "genre", "caption", "tempo_bpm", "drums", "instrument", "mode"}
    assert expected <= set(train.column_names)
    row = train.with_format(None).cast_column("audio", datasets.Audio(decode=False))[0]
    assert row["audio"]["path"] == row["path"] and Path(row["path"]).is_file()
    assert train.features["label"].int2str(row["label"]) == row["genre"]


# ----------------------------------------------------------------------------------- learnable but not trivial


def clip_features(x: np.ndarray, sr: int) -> np.ndarray:
    """Hand-crafted features: log band energies (all and percussive part, gain-normalised) mean/std, the percussive
    share per band, and onset-strength statistics and autocorrelation in low / mid / high bands."""
    n_fft, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    harmonic, percussive = median_filter(power, size=(9, 1)), median_filter(power, size=(1, 9))
    percussive_mask = percussive / (percussive + harmonic + 1e-12)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(40, sr / 2, 25)
    to_bands = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:])], 1).astype(float)
    bands, perc_bands = power @ to_bands, (power * percussive_mask) @ to_bands
    level = np.log(power.sum(1).mean() + 1e-10)
    log_bands, log_perc = np.log(bands + 1e-10) - level, np.log(perc_bands + 1e-10) - level
    out = [log_bands.mean(0), log_bands.std(0), log_perc.mean(0), log_perc.std(0),
           np.log((perc_bands.sum(0) + 1e-10) / (bands.sum(0) + 1e-10))]
    flux = np.maximum(np.diff(log_perc, axis=0), 0)
    frame_rate = sr / hop
    for group in (flux[:, :6], flux[:, 6:14], flux[:, 14:]):
        onset = group.sum(1)
        centred = onset - onset.mean()
        ac = np.correlate(centred, centred, "full")[centred.size - 1:]
        out += [[onset.mean(), onset.std(), np.percentile(onset, 95) / (onset.mean() + 1e-9)],
                ac[1:int(1.2 * frame_rate):2] / (ac[0] + 1e-9)]
    return np.concatenate([np.ravel(v) for v in out])


def test_learnable_but_not_trivial(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    root = generate_music_set(tmp_path_factory.mktemp("learn") / "music", clips_per_genre=60, seconds=3.0,
                              progress=False)
    rows = read_rows(root)
    audio = [read_audio(root / r["file_name"]) for r in rows]
    y = np.array([r["genre"] for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    test = np.array([r["split"] == "test" for r in rows])

    def accuracy(features: np.ndarray, C: float = 1.0) -> float:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
        clf.fit(features[train], y[train])
        return float((clf.predict(features[test]) == y[test]).mean())

    def one_hot(column: str) -> np.ndarray:
        return OneHotEncoder().fit_transform(np.array([[r[column]] for r in rows])).toarray()

    full = accuracy(np.stack([clip_features(x, sr) for sr, x in audio]), C=0.3)
    single = {
        "tempo_bpm": accuracy(np.array([[float(r["tempo_bpm"])] for r in rows])),
        "rms_loudness": accuracy(np.array([[np.log(np.sqrt(np.mean(x**2)))] for _, x in audio])),
        "mode": accuracy(one_hot("mode")),
        "instrument": accuracy(one_hot("instrument")),
        "drums": accuracy(one_hot("drums")),
    }
    print(f"\nfull features: {full:.3f}; one attribute alone: " + ", ".join(f"{k} {v:.3f}" for k, v in single.items()))
    assert full >= 0.8
    for name in ("tempo_bpm", "rms_loudness", "mode", "instrument"):
        assert single[name] <= 0.6, (name, single[name])
    assert single["drums"] <= 0.7 and max(single.values()) <= full - 0.25
