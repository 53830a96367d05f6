"""FMA and MusicCaps (loading and the clip fetcher), offline on tiny generated files."""

import logging
import shutil
import subprocess
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile

from conftest import make_ytids, write_musiccaps_csv

from modeling_audiocap.data import musiccaps
from modeling_audiocap.data.fma import fma_audio_path, load_fma, read_fma_tracks
from modeling_audiocap.data.genre import load_genre_dataset
from modeling_audiocap.data.musiccaps import (
    assign_splits,
    audio_duration,
    find_clips,
    load_musiccaps,
    prepare_musiccaps,
    read_failures,
)

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg program")

# ----------------------------------------------------------------------------------------------------------- FMA

FMA_SMALL_GENRES = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]


def fma_tracks_frame() -> pd.DataFrame:
    """A tracks.csv-like frame: two-level columns (sorted, as creation.ipynb stores them), index named track_id."""
    records, track_id = [], 2
    for g, genre in enumerate(FMA_SMALL_GENRES):
        for split in ("training",) * 6 + ("validation", "test") * 2:
            records.append((track_id, "small", split, genre))
            track_id += 137 + 1000 * g  # ids spread over several <000> folders, up to 6 digits
    records += [(track_id + 1, "medium", "training", "Blues"), (track_id + 2, "medium", "test", "Rock")]
    records += [(track_id + 3, "large", "training", ""), (track_id + 4, "large", "test", "Soul-RnB")]
    columns = pd.MultiIndex.from_tuples([
        ("album", "title"), ("artist", "bio"), ("artist", "name"), ("set", "split"), ("set", "subset"),
        ("track", "genre_top"), ("track", "genres"), ("track", "title"),
    ])
    rows = [
        [f"Album {i}", f"Bio of {i}, with a comma,\nand a line break", f"Artist {i % 7}", split, subset, genre,
         "[21, 811]", f'Title "{i}"']
        for i, subset, split, genre in records
    ]
    frame = pd.DataFrame(rows, columns=columns, index=pd.Index([r[0] for r in records], name="track_id"))
    return frame.sort_index(axis=1)


@pytest.fixture(scope="module")
def mp3_bytes(tmp_path_factory) -> bytes:
    """One short real mp3 (FFmpeg), or WAV bytes when FFmpeg is missing (the loader does not decode)."""
    folder = tmp_path_factory.mktemp("mp3")
    wav = folder / "tone.wav"
    wavfile.write(wav, 8000, (0.3 * np.sin(np.arange(4000) / 5.0) * 32767).astype(np.int16))
    if FFMPEG is None:
        return wav.read_bytes()
    mp3 = folder / "tone.mp3"
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), str(mp3)], check=True)
    return mp3.read_bytes()


@pytest.fixture()
def fma_root(tmp_path, mp3_bytes) -> tuple[Path, pd.DataFrame, list[int]]:
    root = tmp_path / "fma"
    (root / "fma_metadata").mkdir(parents=True)
    frame = fma_tracks_frame()
    frame.to_csv(root / "fma_metadata" / "tracks.csv")
    for subset in ("small", "medium"):
        ids = frame.index[frame["set", "subset"].isin(["small"] if subset == "small" else ["small", "medium"])]
        for track_id in ids:
            path = fma_audio_path(root / f"fma_{subset}", track_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(mp3_bytes)
    small = frame[frame["set", "subset"] == "small"]
    # One training and one test track of fma_small lack their file.
    split = small["set", "split"]
    missing = [int(small.index[split == "training"][4]), int(small.index[split == "test"][2])]
    for track_id in missing:
        fma_audio_path(root / "fma_small", track_id).unlink()
    return root, frame, missing


def test_fma_tracks_csv_has_the_real_three_line_header(fma_root):
    root, frame, _ = fma_root
    lines = (root / "fma_metadata" / "tracks.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(",album,artist,artist,set,set,track")
    assert lines[1].startswith(",title,bio,name,split,subset,genre_top")
    assert lines[2].rstrip(",") == "track_id"
    assert lines[3].startswith("2,")
    # FMA's own loader (utils.load) reads it with header=[0, 1], index_col=0.
    official = pd.read_csv(root / "fma_metadata" / "tracks.csv", index_col=0, header=[0, 1])
    assert list(official["set", "split"]) == list(frame["set", "split"])
    rows = read_fma_tracks(root / "fma_metadata" / "tracks.csv")
    assert [r["track_id"] for r in rows] == list(frame.index)
    assert [r["genre_top"] for r in rows] == [g if isinstance(g, str) else "" for g in frame["track", "genre_top"]]


def test_fma_small_official_split_and_missing_files(fma_root, caplog):
    root, frame, missing = fma_root
    with caplog.at_level(logging.WARNING, logger="modeling_audiocap.data.fma"):
        splits = load_fma(root / "fma_metadata", root / "fma_small", "small")
    assert set(splits) == {"train", "validation", "test"}
    assert splits["train"].features["label"].names == FMA_SMALL_GENRES
    assert all(splits[s].features["label"].num_classes == 8 for s in splits)
    small = frame[frame["set", "subset"] == "small"]
    for ours, theirs in (("train", "training"), ("validation", "validation"), ("test", "test")):
        expected = [int(i) for i in small.index[small["set", "split"] == theirs] if int(i) not in missing]
        assert list(splits[ours]["track_id"]) == expected
        names = splits[ours].features["label"].names
        assert [names[label] for label in splits[ours]["label"]] == list(small.loc[expected, ("track", "genre_top")])
    assert (len(splits["train"]), len(splits["validation"]), len(splits["test"])) == (47, 16, 15)
    assert "skipped 2 of 80 tracks" in caplog.text
    first = splits["train"][0]
    assert first["file_name"] == "000/000002.mp3" and Path(first["audio"]["path"]).is_file()
    assert isinstance(splits["train"].features["audio"], datasets.Audio)
    assert not splits["train"].features["audio"].decode
    # medium holds the small tracks too; large-only tracks are not in it.
    medium = load_fma(root / "fma_metadata", root / "fma_medium", "medium")
    assert medium["train"].features["label"].names == sorted(FMA_SMALL_GENRES + ["Blues"])
    assert sum(len(s) for s in medium.values()) == 82


def test_fma_through_load_genre_dataset(fma_root, caplog):
    root, _, _ = fma_root
    direct = load_fma(root / "fma_metadata", root / "fma_small")
    via = load_genre_dataset(str(root), split_protocol="predefined")
    for split in direct:
        assert list(via[split]["track_id"]) == list(direct[split]["track_id"])
    assert list(load_genre_dataset(str(root), "medium")["test"]["track_id"]) == list(
        load_fma(root / "fma_metadata", root / "fma_medium", "medium")["test"]["track_id"]
    )
    shuffled = load_genre_dataset(str(root), split_protocol="random", seed=0)
    assert sum(len(s) for s in shuffled.values()) == 78
    with pytest.raises(ValueError, match="GTZAN"):
        load_genre_dataset(str(root), split_protocol="filtered")


# ----------------------------------------------------------------------------------------------------- MusicCaps

@pytest.fixture()
def musiccaps_set(tmp_path):
    ytids = make_ytids(50)
    csv_path = tmp_path / "musiccaps-public.csv"
    write_musiccaps_csv(csv_path, ytids)
    full, partial = tmp_path / "all_clips", tmp_path / "clips"
    full.mkdir()
    partial.mkdir()
    extensions = ("wav", "flac", "mp3")
    for i, ytid in enumerate(ytids):
        (full / f"{ytid}.{extensions[i % 3]}").write_bytes(b"RIFF")
    missing = set(ytids[3:8])
    for ytid in ytids:
        if ytid not in missing:
            (partial / f"{ytid}.{extensions[ytids.index(ytid) % 3]}").write_bytes(b"RIFF")
    (partial / f".{ytids[3]}.part.wav").write_bytes(b"half")  # a killed run's leftover is not a clip
    (partial / "notes.txt").write_text("not a clip")
    return csv_path, full, partial, ytids, missing


def _split_of(splits) -> dict[str, str]:
    return {ytid: name for name, split in splits.items() for ytid in split["ytid"]}


def test_musiccaps_random_split(musiccaps_set, caplog):
    csv_path, full, partial, ytids, missing = musiccaps_set
    splits = load_musiccaps(csv_path, full, "random", seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 35, "validation": 5, "test": 10}
    sets = [set(splits[s]["ytid"]) for s in ("train", "validation", "test")]
    assert sets[0].isdisjoint(sets[1]) and sets[0].isdisjoint(sets[2]) and sets[1].isdisjoint(sets[2])
    assert set().union(*sets) == set(ytids)
    assert _split_of(load_musiccaps(csv_path, full, "random", seed=0)) == _split_of(splits)
    assert _split_of(load_musiccaps(csv_path, full, "random", seed=1)) != _split_of(splits)
    row = splits["train"][0]
    assert set(row) == {"audio", "caption", "ytid", "aspect_list"}
    assert row["aspect_list"] == ["low quality", "piano", "player's hum"]
    assert row["caption"].startswith("Clip ") and '"calm"' in row["caption"]
    assert Path(row["audio"]["path"]).name.startswith(row["ytid"] + ".")
    # Missing clips are skipped and counted; the others keep the split they have when every clip is there.
    with caplog.at_level(logging.WARNING, logger="modeling_audiocap.data.musiccaps"):
        partial_splits = load_musiccaps(csv_path, partial, "random", seed=0)
    assert "skipped 5 of 50 rows" in caplog.text
    assert sum(len(s) for s in partial_splits.values()) == 45
    assert _split_of(partial_splits) == {k: v for k, v in _split_of(splits).items() if k not in missing}


def test_musiccaps_official_split(musiccaps_set):
    csv_path, full, partial, ytids, missing = musiccaps_set
    splits = load_musiccaps(csv_path, full, "official", seed=0)
    eval_ids = set(ytids[::2])
    assert set(splits["test"]["ytid"]) == eval_ids
    assert len(splits["validation"]) == round(0.1 * 25) and len(splits["train"]) == 25 - len(splits["validation"])
    assert set(splits["train"]["ytid"]).isdisjoint(splits["validation"]["ytid"])
    assert (set(splits["train"]["ytid"]) | set(splits["validation"]["ytid"])) == set(ytids) - eval_ids
    assert _split_of(load_musiccaps(csv_path, full, "official", seed=0)) == _split_of(splits)
    assert set(load_musiccaps(csv_path, full, "official", seed=3)["test"]["ytid"]) == eval_ids
    partial_splits = load_musiccaps(csv_path, partial, "official", seed=0)
    assert set(partial_splits["test"]["ytid"]) == eval_ids - missing
    assert _split_of(partial_splits) == {k: v for k, v in _split_of(splits).items() if k not in missing}
    with pytest.raises(ValueError, match="split_protocol"):
        assign_splits([], "paper")


# ------------------------------------------------------------------------------------------- MusicCaps: prepare

SOURCE_RATE = 8000
SOURCE_SECONDS = 30.0


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 30 s ramp from -0.45 to 0.45: the value tells the time, so a trimmed clip shows where it was cut."""
    n = int(SOURCE_SECONDS * SOURCE_RATE)
    ramp = (np.arange(n) / n * 0.9 - 0.45).astype(np.float32)
    path = tmp_path_factory.mktemp("source") / "video_audio.wav"
    wavfile.write(path, SOURCE_RATE, (ramp * 32767).astype(np.int16))
    return path, ramp


class FakeDownloader:
    """Stands in for yt-dlp: copies the long wav into the work folder; `unavailable` ids fail like removed videos."""

    def __init__(self, source: Path, unavailable=()):
        self.source, self.unavailable, self.calls = source, set(unavailable), []

    def __call__(self, ytid: str, workdir: Path) -> Path:
        self.calls.append(ytid)
        assert workdir.is_dir() and workdir.name.startswith(".")
        if ytid in self.unavailable:
            raise RuntimeError(f"ERROR: [youtube] {ytid}: Video unavailable")
        target = workdir / "source.wav"
        shutil.copyfile(self.source, target)
        return target


@needs_ffmpeg
def test_prepare_musiccaps_trims_resumes_and_records_failures(tmp_path, long_wav):
    source, ramp = long_wav
    ytids = make_ytids(6, seed=5)
    spans = [(5, 15), (20, 30), (0, 10), (12.5, 22.5), (3, 13), (25, 35)]  # the last one runs past the video's end
    csv_path = tmp_path / "musiccaps-public.csv"
    write_musiccaps_csv(csv_path, ytids, spans)
    audio_dir = tmp_path / "clips"
    bad = ytids[4]

    fake = FakeDownloader(source, unavailable={bad})
    report = prepare_musiccaps(csv_path, audio_dir, jobs=2, download=fake)
    assert sorted(fake.calls) == sorted(ytids)
    assert sorted(report.downloaded) == sorted(ytids[:4])
    assert set(report.failed) == {bad, ytids[5]}
    for ytid, (start, end) in zip(ytids[:4], spans):
        clip = audio_dir / f"{ytid}.wav"
        assert abs(audio_duration(clip) - (end - start)) < 0.02
        rate, pcm = wavfile.read(clip)
        assert rate == SOURCE_RATE
        expected = ramp[int(start * rate) : int(start * rate) + pcm.shape[0]]
        np.testing.assert_allclose(pcm / 32767, expected, atol=5e-4)  # cut where it should be (< ~10 ms off)
    failures = read_failures(audio_dir)
    assert set(failures) == {bad, ytids[5]}
    assert "Video unavailable" in failures[bad] and "too short" in failures[ytids[5]]
    assert not (audio_dir / f"{ytids[5]}.wav").exists()  # a too-short clip is not kept
    assert sorted(p.name for p in audio_dir.iterdir()) == sorted([f"{y}.wav" for y in ytids[:4]] + ["failed.csv"])

    # Resume: clips already there are not fetched again, recorded failures are skipped.
    (audio_dir / f"{ytids[1]}.wav").unlink()
    fake = FakeDownloader(source)
    report = prepare_musiccaps(csv_path, audio_dir, download=fake)
    assert fake.calls == [ytids[1]]
    assert sorted(report.existing) == sorted([ytids[0], ytids[2], ytids[3]])
    assert sorted(report.skipped_failed) == sorted([bad, ytids[5]])

    # Retry: the video that is back is fetched and leaves failed.csv; the too-short one fails again.
    fake = FakeDownloader(source)
    report = prepare_musiccaps(csv_path, audio_dir, download=fake, retry_failed=True)
    assert sorted(fake.calls) == sorted([bad, ytids[5]])
    assert report.downloaded == [bad] and set(report.failed) == {ytids[5]}
    assert set(read_failures(audio_dir)) == {ytids[5]}
    assert abs(audio_duration(audio_dir / f"{bad}.wav") - 10.0) < 0.02
    assert sum(len(s) for s in load_musiccaps(csv_path, audio_dir).values()) == 5

    # --limit: only the first rows of the csv are considered.
    fresh = tmp_path / "fresh"
    fake = FakeDownloader(source)
    prepare_musiccaps(csv_path, fresh, limit=2, download=fake, audio_format="flac", sampling_rate=4000)
    assert fake.calls == ytids[:2]
    assert sorted(find_clips(fresh)) == sorted(ytids[:2])
    assert abs(audio_duration(fresh / f"{ytids[0]}.flac") - 10.0) < 0.02


@needs_ffmpeg
def test_prepare_musiccaps_never_leaves_half_a_clip(tmp_path, long_wav, monkeypatch):
    source, _ = long_wav
    ytids = make_ytids(3, seed=7)
    csv_path = tmp_path / "musiccaps-public.csv"
    write_musiccaps_csv(csv_path, ytids, [(0, 10)] * 3)
    audio_dir = tmp_path / "clips"
    real_trim = musiccaps.trim_audio

    def killed_while_writing(src, target, start, end, sampling_rate=None):
        if ytids[1] in Path(target).name:
            Path(target).write_bytes(b"RIFF\x00\x00half a clip")
            raise KeyboardInterrupt  # the run is stopped in the middle of writing this clip
        real_trim(src, target, start, end, sampling_rate)

    monkeypatch.setattr(musiccaps, "trim_audio", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        prepare_musiccaps(csv_path, audio_dir, download=FakeDownloader(source))
    assert sorted(find_clips(audio_dir)) == [ytids[0]]  # the first is complete, the second never got its name
    assert [p.name for p in audio_dir.iterdir()] == [f"{ytids[0]}.wav"]  # temp file and download folder removed
    assert not (audio_dir / "failed.csv").exists()  # an interrupt is not a failure of the video

    # A SIGKILL leaves hidden leftovers behind: they are not clips, and the next run clears them and resumes.
    (audio_dir / f".{ytids[1]}.part.wav").write_bytes(b"RIFF\x00half")
    (audio_dir / f".{ytids[1]}.part-dl-x1y2").mkdir()
    assert sorted(find_clips(audio_dir)) == [ytids[0]]
    monkeypatch.setattr(musiccaps, "trim_audio", real_trim)
    fake = FakeDownloader(source)
    report = prepare_musiccaps(csv_path, audio_dir, download=fake)
    assert fake.calls == ytids[1:] and report.existing == [ytids[0]]
    assert sorted(p.name for p in audio_dir.iterdir()) == sorted(f"{y}.wav" for y in ytids)


def test_prepare_musiccaps_without_yt_dlp_says_how_to_install(tmp_path, capsys):
    try:
        import yt_dlp  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("yt-dlp is installed")
    csv_path = tmp_path / "musiccaps-public.csv"
    write_musiccaps_csv(csv_path, make_ytids(2))
    with pytest.raises(ImportError, match=r"audiocap\[musiccaps\]"):
        prepare_musiccaps(csv_path, tmp_path / "clips")
    assert musiccaps.main(["prepare", "--csv", str(csv_path), "--audio_dir", str(tmp_path / "clips")]) == 2
    assert "pip install 'audiocap[musiccaps]'" in capsys.readouterr().err
