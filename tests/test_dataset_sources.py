"""The one dataset resolver: every form of a user's dataset reaches the genre loader, the caption loader and
audiocap-embed's loader with the same rows; empty sources and script datasets are refused with a way out."""

import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
import pytest
import soundfile as sf
from conftest import run_script

from modeling_audiocap.data import sources
from modeling_audiocap.data.captions import load_caption_dataset
from modeling_audiocap.data.genre import load_genre_dataset
from modeling_audiocap.embedding.sources import list_clips
from modeling_audiocap.training.arguments import AudioDataArguments
from modeling_audiocap.training.genre_data import decode_dataset
from modeling_audiocap.training.runs import load_splits

ROOT = Path(__file__).resolve().parents[1]
GENRES = ("blues", "jazz", "rock")
CLIPS_PER_GENRE = 8
RATE = 8000


def write_clip(path: Path, index: int, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.25 * RATE)) / RATE
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * (200 + 20 * index) * t)).astype(np.float32), RATE, format=fmt)
    return path


def clip_names() -> list[tuple[str, str]]:
    """(genre, GTZAN-style file stem) of every clip."""
    return [(g, f"{g}.{i:05d}") for g in GENRES for i in range(CLIPS_PER_GENRE)]


def records(root: Path) -> list[dict]:
    """Clips written under `root`, with every kind of column a source may have."""
    out = []
    for i, (genre, stem) in enumerate(clip_names()):
        path = write_clip(root / f"{stem}.wav", i)
        out.append({"path": path, "genre": genre, "genre_id": GENRES.index(genre) * 5, "text": f"a {genre} tune"})
    return out


@pytest.fixture(scope="module")
def forms(tmp_path_factory) -> dict[str, dict]:
    """Every form of one 24-clip genre set: folder -> how to load it and which names its rows have."""
    base = tmp_path_factory.mktemp("forms")
    rows = records(base / "clips")
    names = {f"{stem}.wav" for _, stem in clip_names()}
    out = {}

    # A Hub snapshot as `hf download` leaves it: README `configs`, parquet shards of encoded bytes, a ClassLabel.
    snap = base / "snapshot"
    features = datasets.Features({"audio": datasets.Audio(), "genre": datasets.ClassLabel(names=list(GENRES)),
                                  "text": datasets.Value("string")})
    for split, keep in (("train", lambda i: i % 4 != 0), ("test", lambda i: i % 4 == 0)):
        chosen = [r for i, r in enumerate(rows) if keep(i)]
        table = datasets.Dataset.from_dict(
            {"audio": [{"bytes": r["path"].read_bytes(), "path": r["path"].name} for r in chosen],
             "genre": [GENRES.index(r["genre"]) for r in chosen], "text": [r["text"] for r in chosen]},
            features=features,
        )
        (snap / "data").mkdir(parents=True, exist_ok=True)
        table.to_parquet(str(snap / "data" / f"{split}-00000-of-00001.parquet"))
    (snap / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "  - split: test\n    path: data/test-*\n---\n# A genre set\n"
    )
    out["snapshot"] = dict(name=str(snap), names=names, label="genre", caption="text")

    # save_to_disk, string labels, the audio under another name.
    saved = base / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"song": [str(r["path"]) for r in rows], "style": [r["genre"] for r in rows], "text": [r["text"] for r in rows]}
    ).cast_column("song", datasets.Audio())}).save_to_disk(str(saved))
    out["saved"] = dict(name=str(saved), names=names, label="style", caption="text", audio="song")

    # An audiofolder with metadata.jsonl and integer labels.
    jsonl = base / "jsonl"
    jsonl.mkdir()
    with open(jsonl / "metadata.jsonl", "w") as f:
        for i, r in enumerate(rows):
            write_clip(jsonl / "clips" / r["path"].name, i)
            f.write(json.dumps({"file_name": f"clips/{r['path'].name}", "genre_id": r["genre_id"], "text": r["text"]}))
            f.write("\n")
    out["jsonl"] = dict(name=str(jsonl), names=names, label="genre_id", caption="text")

    # GTZAN's tarball (genres/<g>/<g>.000NN.au), pointed at genres/ and at its parent.
    tarball = base / "gtzan-tarball"
    for i, (genre, stem) in enumerate(clip_names()):
        write_clip(tarball / "genres" / genre / f"{stem}.au", i, fmt="AU")
    au_names = {f"{stem}.au" for _, stem in clip_names()}
    for name in (tarball, tarball / "genres"):
        out[f"tarball:{name.name}"] = dict(name=str(name), names=au_names, label="label", caption="label")

    # Kaggle's copy: Data/genres_original/<g>/<g>.000NN.wav beside a features csv and spectrogram images, and one
    # file that is not audio at all.
    kaggle = base / "gtzan-kaggle" / "Data"
    for i, (genre, stem) in enumerate(clip_names()):
        write_clip(kaggle / "genres_original" / genre / f"{stem}.wav", i)
        (kaggle / "images_original" / genre).mkdir(parents=True, exist_ok=True)
        (kaggle / "images_original" / genre / f"{stem.replace('.', '')}.png").write_bytes(b"\x89PNG")
    (kaggle / "genres_original" / "jazz" / "jazz.00054.wav").write_bytes(b"this is not audio" * 10)
    (kaggle / "features_30_sec.csv").write_text("filename,label\nblues.00000.wav,blues\n")
    for name in (kaggle, kaggle / "genres_original"):
        out[f"kaggle:{name.name}"] = dict(
            name=str(name), names=names | {"jazz.00054.wav"}, label="label", caption="label"
        )
    return out


FORMS = ("snapshot", "saved", "jsonl", "tarball:gtzan-tarball", "tarball:genres", "kaggle:Data",
         "kaggle:genres_original")


def audio_names(dataset: datasets.Dataset) -> list[str]:
    paths = pc.struct_field(dataset.with_format("arrow", columns=["audio"])[:]["audio"], "path").to_pylist()
    return [Path(p).name for p in paths]


def all_names(splits: datasets.DatasetDict) -> list[str]:
    return sorted(name for split in splits.values() for name in audio_names(split))


@pytest.mark.parametrize("form", FORMS)
def test_every_loader_reads_every_form_with_the_same_rows(forms, form):
    spec = forms[form]
    audio = spec.get("audio", "audio")
    genre = load_genre_dataset(spec["name"], audio_column_name=audio, label_column_name=spec["label"])
    assert set(genre) == {"train", "validation", "test"}
    assert all_names(genre) == sorted(spec["names"])
    label = genre["train"].features["label"]
    assert isinstance(label, datasets.ClassLabel)
    assert label.names == (["0", "5", "10"] if spec["label"] == "genre_id" else list(GENRES))
    row = genre["train"][0]  # labels follow the clips
    assert label.int2str(row["label"]) in (row["audio"]["path"] or "") or spec["label"] == "genre_id"

    caption = load_caption_dataset(spec["name"], audio_column_name=audio, caption_column_name=spec["caption"])
    assert all_names(caption) == sorted(spec["names"]) and caption["test"]["caption"][0]

    resolved = sources.load_source(spec["name"], audio_column=audio)
    embedded = []
    for split in resolved:
        clips, dataset = list_clips(spec["name"], audio_column=audio, split=split)
        embedded += [Path(c.path).name for c in clips] if dataset is None else audio_names(dataset)
        assert len(clips) == (len(dataset) if dataset is not None else len(clips)) > 0
    assert sorted(embedded) == sorted(spec["names"])


def test_hub_snapshot_keeps_its_test_split_and_carves_validation(forms):
    splits = load_genre_dataset(forms["snapshot"]["name"], label_column_name="genre")
    assert {k: len(v) for k, v in splits.items()} == {"train": 15, "validation": 3, "test": 6}
    assert sorted(splits["test"]["label"]) == [0, 0, 1, 1, 2, 2]  # the source's own test clips
    assert sorted(splits["validation"]["label"]) == [0, 1, 2]  # stratified


def test_unreadable_gtzan_file_is_skipped_and_named(forms):
    splits = load_genre_dataset(forms["kaggle:Data"]["name"])
    whole = datasets.concatenate_datasets(list(splits.values()))
    decoded, skipped = decode_dataset(whole, RATE, cache_dir=None)
    assert len(decoded) == len(whole) - 1 == 24
    assert len(skipped) == 1 and skipped[0]["file"].endswith("jazz.00054.wav")
    tarball = load_genre_dataset(forms["tarball:gtzan-tarball"]["name"])["test"]
    decoded, skipped = decode_dataset(tarball, RATE, cache_dir=None)  # .au decodes
    assert skipped == [] and len(decoded) == len(tarball)


@pytest.mark.parametrize("contents", [{}, {"notes.txt": b"no audio here", "cover.png": b"\x89PNG"}])
def test_a_source_without_clips_names_what_was_looked_for(tmp_path, contents):
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    loaders = (
        lambda: load_genre_dataset(str(tmp_path)),
        lambda: load_caption_dataset(str(tmp_path)),
        lambda: list_clips(str(tmp_path)),
    )
    for load in loaders:
        with pytest.raises(FileNotFoundError) as err:
            load()
        for looked_for in ("state.json", "configs", "*.parquet", "metadata.jsonl", ".wav", "<label>/<clip>", "genres/"):
            assert looked_for in str(err.value), looked_for
    with pytest.raises(FileNotFoundError, match="No such dataset folder"):
        load_genre_dataset(str(tmp_path / "missing" / "genres"))


def test_missing_columns_are_named(forms):
    with pytest.raises(ValueError, match="no audio column 'sound'.*--audio_column_name"):
        load_genre_dataset(forms["snapshot"]["name"], audio_column_name="sound", label_column_name="genre")
    with pytest.raises(ValueError, match="no label column 'mood'.*genre"):
        load_genre_dataset(forms["snapshot"]["name"], label_column_name="mood")


def test_hub_ids_pass_the_revision_and_script_datasets_get_the_way_out(monkeypatch, forms):
    calls, real_load_dataset = [], datasets.load_dataset

    def fake_load_dataset(name, config=None, revision=None):
        calls.append((name, config, revision))
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found gtzan.py")
        return real_load_dataset(forms["snapshot"]["name"])

    monkeypatch.setattr(sources.datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(ValueError, match=r"marsyas/gtzan is a dataset script.*--dataset_revision refs/convert/parquet"):
        load_genre_dataset("marsyas/gtzan", label_column_name="genre")
    splits = load_genre_dataset(
        "marsyas/gtzan", "all", label_column_name="genre", dataset_revision="refs/convert/parquet"
    )
    assert calls[-1] == ("marsyas/gtzan", "all", "refs/convert/parquet")
    assert sum(len(s) for s in splits.values()) == 24


def test_max_samples_cut_the_splits_after_splitting(forms):
    args = AudioDataArguments(dataset_name=forms["snapshot"]["name"], max_train_samples=5, max_eval_samples=2)
    splits = load_splits(load_genre_dataset, args, 0, {}, label_column_name="genre")
    assert {k: len(v) for k, v in splits.items()} == {"train": 5, "validation": 2, "test": 2}
    again = load_splits(load_genre_dataset, args, 0, {}, label_column_name="genre")
    assert audio_names(again["train"]) == audio_names(splits["train"])  # seeded
    whole = load_genre_dataset(forms["snapshot"]["name"], label_column_name="genre")
    assert set(audio_names(splits["test"])) <= set(audio_names(whole["test"]))
    with pytest.raises(ValueError, match="max_train_samples"):
        AudioDataArguments(max_train_samples=0)


@pytest.mark.slow
def test_train_genre_on_a_hub_snapshot_folder(tmp_path, forms, encoder_dir, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    run_script(
        monkeypatch, "train_genre", "--encoder_name_or_path", str(encoder_dir),
        "--encoder_mode", "frozen", "--dataset_name", forms["snapshot"]["name"], "--label_column_name", "genre",
        "--max_train_samples", "9", "--max_length_seconds", "0.25", "--head_hidden_size", "8",
        "--embedding_cache_dir", str(tmp_path / "cache"), "--decoded_cache_dir", str(tmp_path / "decoded"),
        "--output_dir", str(out), "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
        "--eval_strategy", "epoch", "--save_strategy", "no", "--report_to", "none", "--seed", "0",
    )
    results = json.loads((out / "results.json").read_text())
    assert results["split_sizes"] == {"train": 9, "validation": 3, "test": 6}
    assert results["label_names"] == list(GENRES)


@pytest.mark.slow
def test_a_gtzan_config_trains_offline_on_a_local_copy_of_the_dataset_it_names(tmp_path, encoder_dir, monkeypatch):
    """configs/gtzan-wav2vec2-frozen-filtered.yaml against a local copy of what it names (marsyas/gtzan's parquet
    conversion: `all/train/0000.parquet`, columns `file`, `audio`, ClassLabel `genre`), with the filtered split's own
    clip names: unequal validation and test splits, clips missing from the copy."""
    import io

    from torchaudio.datasets import gtzan

    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    picked = {"train": gtzan.filtered_train[::40], "validation": gtzan.filtered_valid[::40],
              "test": gtzan.filtered_test[::25]}
    rng = np.random.default_rng(0)
    rows = {"file": [], "audio": [], "genre": []}
    for names in picked.values():
        for name in names:
            genre = name.split(".")[0]
            t = np.arange(int(0.6 * 22050)) / 22050
            wave = 0.3 * np.sin(2 * np.pi * 110 * (1 + genres.index(genre)) * t) + 0.01 * rng.standard_normal(t.size)
            buffer = io.BytesIO()
            sf.write(buffer, wave.astype(np.float32), 22050, format="WAV")
            rows["file"].append(f"genres/{genre}/{name}.wav")
            rows["audio"].append({"bytes": buffer.getvalue(), "path": f"{name}.wav"})
            rows["genre"].append(genres.index(genre))
    features = datasets.Features({"file": datasets.Value("string"), "audio": datasets.Audio(sampling_rate=22050),
                                  "genre": datasets.ClassLabel(names=genres)})
    snapshot = tmp_path / "gtzan"
    (snapshot / "all" / "train").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(snapshot / "all" / "train" / "0000.parquet"))

    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    run_script(
        monkeypatch, "train_genre", "--config", str(ROOT / "configs" / "gtzan-wav2vec2-frozen-filtered.yaml"),
        "--dataset_name", str(snapshot), "--encoder_name_or_path", str(encoder_dir), "--max_length_seconds", "0.5",
        "--head_hidden_size", "8", "--num_train_epochs", "1", "--embedding_cache_dir", str(tmp_path / "cache"),
        "--decoded_cache_dir", str(tmp_path / "decoded"), "--output_dir", str(out),
    )
    results = json.loads((out / "results.json").read_text())
    assert results["split_sizes"] == {split: len(names) for split, names in picked.items()}
    assert results["split_protocol"] == "filtered" and results["label_names"] == genres
    assert sum(map(sum, results["test"]["confusion_matrix"])) == len(picked["test"])


def test_a_catalogue_clip_list_is_held_as_columns(tmp_path, monkeypatch):
    """A folder's clips come as a `ClipTable` (Arrow columns, a `Clip` made per read) that reads like the list it
    replaces, also across its conversion batches, and holds a track in far fewer bytes than a `Clip` object."""
    from modeling_audiocap.embedding.sources import Clip, ClipTable

    monkeypatch.setattr(ClipTable, "BATCH", 4)
    files = [write_clip(tmp_path / "music" / f"album{i % 3}" / f"t{i:02d}.wav", i) for i in range(10)]
    clips, dataset = list_clips(str(tmp_path / "music"))
    assert isinstance(clips, ClipTable) and dataset is None and len(clips) == 10
    expected = [Clip(i, f.relative_to(tmp_path / "music").as_posix(), str(f.resolve()), source=str(f))
                for i, f in enumerate(sorted(files, key=lambda f: f.relative_to(tmp_path / "music").as_posix()))]
    assert list(clips) == expected and clips[-1] == expected[-1] and clips[3] == expected[3]
    assert clips[2:7] == expected[2:7] and clips[::4] == expected[::4] and clips[8:20] == expected[8:]
    with pytest.raises(IndexError):
        clips[10]
    many = ClipTable.from_rows((f"artist/album/track{i:06d}.mp3", f"/data/artist/album/track{i:06d}.mp3", None, i)
                               for i in range(20000))
    assert many[12345] == Clip(12345, "artist/album/track012345.mp3", "/data/artist/album/track012345.mp3", row=12345)
    assert many.table.nbytes / len(many) < 120  # a Clip object with these strings takes over 400 bytes


def test_a_folder_is_walked_lazily_in_the_order_of_its_relative_paths(tmp_path):
    """The catalogue's folder walk yields the audio files sorted by relative path, also where a folder's name sorts
    against a file's by the `/` after it (`a.wav` < `a/x.wav` < `a0.mp3`), skips hidden, non-audio and symlinked
    folders, and walks as it is read: files added to a folder it has not reached yet are found."""
    from modeling_audiocap.audio import iter_audio_files

    names = ["a-b.wav", "a/x.wav", "a/b/c.FLAC", "a.wav", "a0.mp3", "A.ogg", "b c/d.wav", "b c/e/f.wav", "z/y.wav"]
    for name in names + [".hidden/x.wav", ".x.wav", "a/notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "link").symlink_to(tmp_path / "a", target_is_directory=True)
    found = iter_audio_files(tmp_path)
    first = next(found)
    (tmp_path / "z" / "late.wav").write_bytes(b"")  # "z/" is read after "a-b.wav"
    walked = [first.relative_to(tmp_path).as_posix()] + [f.relative_to(tmp_path).as_posix() for f in found]
    assert walked == sorted(names + ["z/late.wav"])
