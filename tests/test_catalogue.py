"""predict_catalogue / audiocap-predict: a genre model and a captioner over a folder of real formats in one pass,
each track's row equal to what `pipeline()` gives for the file; broken files listed; a killed run resumed; the
command line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from conftest import CAPTION_WORDS, caption_model, ffmpeg, genre_model, tone, word_tokenizer, write_wav
from transformers import pipeline

from modeling_audiocap import AudioCapFeatureExtractor, AudioCapProcessor, AudioGenreClassificationPipeline
from modeling_audiocap.catalogue import predict_catalogue
from modeling_audiocap.catalogue.cli import main as cli_main
from modeling_audiocap.embedding import ExtractionInterrupted

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = CAPTION_WORDS + [f"word{i}" for i in range(64 - len(CAPTION_WORDS))]  # every id the tiny T5 writes is a word
GENERATION = {"max_new_tokens": 6}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """A folder of tracks as users have them (WAV stereo 44.1 kHz, FLAC 48 kHz, MP3, OGG; shorter than a window,
    several windows long; a broken file), a MERT genre model (24 kHz, 0.5 s windows every 0.25 s) and a wav2vec2
    captioner (16 kHz): two rates, so each track is decoded twice and cut by each model's processor."""
    root = tmp_path_factory.mktemp("catalogue")
    music = root / "music"
    (music / "rock").mkdir(parents=True)
    (music / "jazz").mkdir()
    stereo = np.stack([tone(1.3, 44100, 330.0), tone(1.3, 44100, 220.0, seed=1)], axis=1)
    import soundfile as sf

    sf.write(music / "rock" / "stereo.wav", stereo, 44100)
    write_wav(music / "rock" / "short.wav", tone(0.3, 22050, 500.0, seed=2), 22050)
    write_wav(root / "src.wav", tone(2.2, 48000, 260.0, seed=3), 48000)
    ffmpeg(root / "src.wav", music / "jazz" / "long.flac")
    ffmpeg(root / "src.wav", music / "jazz" / "track.mp3", "-b:a", "64k")
    ffmpeg(root / "src.wav", music / "jazz" / "track.ogg", "-c:a", "libvorbis")
    (music / "jazz" / "broken.mp3").write_bytes(b"ID3 not really an mp3")
    torch.manual_seed(0)
    genre, resolved = genre_model("mert")
    genre.save_pretrained(root / "genre")
    AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5, hop_seconds=0.25).save_pretrained(root / "genre")
    captioner, resolved = caption_model("wav2vec2-layernorm")
    captioner.generation_config.update(min_new_tokens=3, suppress_tokens=[0, 2])  # words, not an empty caption
    captioner.save_pretrained(root / "captioner")
    AudioCapProcessor(resolved.feature_extractor, word_tokenizer(WORDS), window_seconds=0.5).save_pretrained(root / "captioner")
    return root


def predict(catalogue, out, inputs=None, **kwargs):
    settings = dict(batch_size=3, shard_size=2, num_workers=0, device="cpu", progress=False, generation=GENERATION)
    return predict_catalogue(inputs or catalogue / "music", [catalogue / "genre", catalogue / "captioner"], out,
                             **{**settings, **kwargs})


def test_each_track_gets_what_the_pipelines_give(catalogue, tmp_path):
    rows = predict(catalogue, tmp_path / "out", window_scores=True, embeddings=True)
    files = sorted(p.relative_to(catalogue / "music").as_posix() for p in (catalogue / "music").rglob("*.*"))
    assert rows["id"] == [f for f in files if "broken" not in f]  # each readable track once, in input order
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert [item["id"] for item in skipped] == ["jazz/broken.mp3"] and "broken.mp3" in skipped[0]["error"]
    labels = rows.features["genre_label"].names
    classify = pipeline("audio-classification", model=str(catalogue / "genre"),
                        pipeline_class=AudioGenreClassificationPipeline)
    describe = pipeline("music-captioning", model=str(catalogue / "captioner"))
    model, resolved = genre_model("mert")
    width = model.family.layer_width(resolved.config)  # the genre model's pooled embedding
    captions = set()
    for row in rows:
        expected = {item["label"]: item["score"] for item in classify(row["path"], top_k=None)}
        np.testing.assert_allclose(row["genre_scores"], [expected[label] for label in labels], rtol=0, atol=1e-6)
        assert labels[row["genre_label"]] == max(expected, key=expected.get)
        assert row["captioner_caption"] == describe(row["path"], **GENERATION)[0]["generated_text"]
        captions.add(row["captioner_caption"])
        windows = np.asarray(row["genre_window_scores"])
        assert windows.shape[1] == len(labels) and np.allclose(windows.sum(1), 1.0, atol=1e-5)
        assert len(row["genre_embedding"]) == width
    assert "" not in captions
    by_id = {row["id"]: row for row in rows}
    assert len(by_id["rock/short.wav"]["genre_window_scores"]) == 1  # shorter than a window: one short window
    assert len(by_id["jazz/long.flac"]["genre_window_scores"]) == 8  # 2.2 s: every 0.25 s, the last at the end
    config = json.loads((tmp_path / "out" / "predict_config.json").read_text())
    genre, captioner = config["models"]
    assert genre["labels"] == labels and (genre["window_seconds"], genre["hop_seconds"]) == (0.5, 0.25)
    assert captioner["generation"]["max_new_tokens"] == 6 and captioner["sampling_rate"] == 16000
    assert config["clips"] == 5 and config["skipped"] == 1


def test_a_killed_run_resumes_to_the_same_dataset(catalogue, tmp_path):
    whole = predict(catalogue, tmp_path / "whole")
    with pytest.raises(ExtractionInterrupted):
        predict(catalogue, tmp_path / "resumed", _stop_after_shards=2)
    assert len(list((tmp_path / "resumed").glob("data-*.arrow"))) == 2
    resumed = predict(catalogue, tmp_path / "resumed")
    assert resumed.to_dict() == whole.to_dict()
    with pytest.raises(ValueError, match="other settings"):
        predict(catalogue, tmp_path / "resumed", generation={"max_new_tokens": 3})


def test_command_line(catalogue, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main([str(catalogue / "music" / "rock"), "--model", str(catalogue / "genre"), "--output_dir", str(out),
                     "--device", "cpu", "--num_workers", "1", "--no_progress"])
    assert code == 0 and "2 tracks" in capsys.readouterr().out
    assert datasets.load_from_disk(str(out)).column_names == ["id", "path", "duration", "genre_label", "genre_scores"]
    with pytest.raises(ValueError, match="neither a saved audiocap genre model or captioner nor an encoder"):
        cli_main([str(catalogue / "music"), "--model", str(catalogue / "music"), "--output_dir", str(tmp_path / "x")])


@pytest.mark.slow
def test_two_processes_predict_each_track_once(catalogue, tmp_path):
    """`torchrun --nproc_per_node 2 -m modeling_audiocap.catalogue.cli`: the shards split between two CPU processes,
    one dataset with every track once, equal to a one-process run."""
    out = tmp_path / "two"
    args = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
        "modeling_audiocap.catalogue.cli", str(catalogue / "music"), "--model", str(catalogue / "genre"),
        "--model", str(catalogue / "captioner"), "--output_dir", str(out), "--batch_size", "3", "--shard_size", "2",
        "--num_workers", "0", "--max_new_tokens", "6", "--no_progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((out / "predict_config.json").read_text())["processes_that_wrote_shards"] == 2
    assert datasets.load_from_disk(str(out)).to_dict() == predict(catalogue, tmp_path / "one").to_dict()


def test_file_lists_name_the_tracks(catalogue, tmp_path):
    """A `.txt` (paths relative to it, comments), `.csv` (with ids) or `.parquet` file list gives the tracks it names,
    in its order; a listed file that is missing is skipped and listed, as a broken one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    music = catalogue / "music"
    names = ["jazz/track.ogg", "rock/stereo.wav", "jazz/missing.wav"]
    (music / "list.txt").write_text("# tracks to label\n" + "\n".join(names) + "\n\n")
    (tmp_path / "list.csv").write_text("id,file_name\n" + "\n".join(f"t{i},{music / n}" for i, n in enumerate(names)))
    pq.write_table(pa.table({"path": [str(music / n) for n in names]}), tmp_path / "list.parquet")
    try:
        by_list = {}
        for name, path in (("txt", music / "list.txt"), ("csv", tmp_path / "list.csv"), ("parquet", tmp_path / "list.parquet")):
            out = tmp_path / name
            rows = predict_catalogue(path, [catalogue / "genre"], out, batch_size=3, num_workers=0, device="cpu",
                                     progress=False)
            by_list[name] = rows
            skipped = json.loads((out / "skipped.json").read_text())
            assert [Path(item["path"]).name for item in skipped] == ["missing.wav"]
    finally:
        (music / "list.txt").unlink()
    assert by_list["txt"]["id"] == names[:2] and by_list["csv"]["id"] == ["t0", "t1"]
    assert by_list["parquet"]["id"] == [str(music / n) for n in names[:2]]
    assert by_list["txt"]["genre_scores"] == by_list["csv"]["genre_scores"] == by_list["parquet"]["genre_scores"]


def test_a_parquet_dataset_streams_where_it_lies(catalogue, tmp_path, monkeypatch):
    """`streaming=True` reads a parquet dataset (a Hub snapshot's layout: `data/<split>-*.parquet`, audio bytes in
    its rows, small row groups) row group by row group: the same rows as loading it with `datasets` first, and
    nothing written to the `datasets` cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in (catalogue / "music").rglob("*.*") if "broken" not in p.name)
    rows = [{"bytes": p.read_bytes(), "path": p.name} for p in files]
    (tmp_path / "snapshot" / "data").mkdir(parents=True)
    for split, part in (("train", rows[:3]), ("test", rows[3:])):
        table = pa.table({"audio": pa.array(part), "id": [f"{split}-{i}" for i in range(len(part))]})
        pq.write_table(table, tmp_path / "snapshot" / "data" / f"{split}-00000-of-00001.parquet", row_group_size=2)
    cache = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    snapshot = tmp_path / "snapshot"
    streamed = predict(catalogue, tmp_path / "streamed", snapshot, streaming=True, split="train")
    assert not any(cache.rglob("*.arrow"))  # read where it lies, not copied
    assert streamed["id"] == ["train-0", "train-1", "train-2"]
    assert streamed["path"] == [p.name for p in files[:3]]
    monkeypatch.undo()
    loaded = predict(catalogue, tmp_path / "loaded", snapshot, split="train")
    assert streamed["genre_scores"] == loaded["genre_scores"]
    assert streamed["captioner_caption"] == loaded["captioner_caption"]
    one_file = predict(catalogue, tmp_path / "file", streaming=True,
                       inputs=snapshot / "data" / "test-00000-of-00001.parquet")
    assert one_file["id"] == [f"test-{i}" for i in range(len(files) - 3)]


def test_the_dataset_is_published_with_a_card_saying_what_made_it(catalogue, tmp_path, monkeypatch):
    """`push_to_hub`: a dataset repo (private, on a branch) gets the dataset and its card, never the run's work
    folder; the card names each model, its columns and windows, and the counts."""
    from huggingface_hub import HfApi

    from modeling_audiocap.hub import HubSettings

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, **kw: calls.append(("create_branch", repo_id, kw)))

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        from huggingface_hub.utils import filter_repo_objects

        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
        calls.append(("upload_folder", kw["repo_id"], {**kw, "files": list(filter_repo_objects(
            files, ignore_patterns=kw["ignore_patterns"]))}))

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    predict(catalogue, tmp_path / "out", push_to_hub="someone/my-labels",
            hub=HubSettings(private=True, revision="v1"))
    (_, repo, create), (_, _, branch), (_, _, upload) = calls
    assert repo == "someone/my-labels" and create["repo_type"] == "dataset" and create["private"] is True
    assert branch["branch"] == "v1" and upload["revision"] == "v1" and upload["repo_type"] == "dataset"
    assert {"README.md", "predict_config.json", "skipped.json", "state.json", "dataset_info.json"} <= set(upload["files"])
    assert not [f for f in upload["files"] if f.startswith(".audiocap-predict")]
    card = (tmp_path / "out" / "README.md").read_text()
    assert str(catalogue / "genre") in card and "`genre_scores`" in card and "`captioner_caption`" in card
    assert "every 0.5-s window every 0.25 s at 24000 Hz" in card and "max_new_tokens=6" in card
    assert "said about 5 tracks" in card and "listed, with the reason, in `skipped.json`" in card


def test_an_encoder_gives_each_track_the_mean_of_its_window_embeddings(catalogue, tmp_path, encoder_dir):
    """An encoder among the models: per track the mean over its windows of what `audiocap-embed` writes per window,
    beside a genre model's columns, in the same pass."""
    from modeling_audiocap import extract_embeddings

    rows = predict_catalogue(catalogue / "music" / "rock", [catalogue / "genre", encoder_dir], tmp_path / "out",
                             window_seconds=0.5, layers=[0, -1], num_workers=0, device="cpu", progress=False)
    key = f"{encoder_dir.name}_embedding"
    assert rows.column_names == ["id", "path", "duration", "genre_label", "genre_scores", key]
    embedded = extract_embeddings(catalogue / "music" / "rock", str(encoder_dir), tmp_path / "embed",
                                  window_seconds=0.5, layers=[0, -1], dtype="float32", num_workers=0, device="cpu",
                                  progress=False).with_format("numpy")
    for row, windows in zip(rows, embedded["embeddings"]):
        np.testing.assert_allclose(row[key], np.asarray(windows).mean(0), rtol=1e-5, atol=1e-6)


FORMATS = [("wav", 44100, 2), ("flac", 48000, 2), ("mp3", 44100, 2), ("ogg", 48000, 1)]


@pytest.fixture(scope="module")
def many_tracks(tmp_path_factory):
    """200 files as a catalogue has them: WAV, FLAC, MP3 and OGG at 44.1 and 48 kHz, stereo and mono, 0.3 to 1.4 s
    long, in 8 folders, 4 of them broken (garbage, empty, a truncated FLAC, a text file named .ogg)."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("many") / "music"
    broken = {17: b"ID3 not really an mp3", 61: b"", 122: b"fLaC\x00\x00\x00\x22", 180: b"just some text"}
    for i in range(200):
        fmt, rate, channels = FORMATS[i % len(FORMATS)]
        path = root / f"album{i % 8}" / f"track{i:03d}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i in broken:
            path.write_bytes(broken[i])
            continue
        seconds = 0.3 + (i % 12) * 0.1
        audio = np.stack([tone(seconds, rate, 200.0 + 7 * i, seed=i + c) for c in range(channels)], axis=1)
        sf.write(path, audio, rate)
    return root


@pytest.mark.slow
def test_two_hundred_tracks_as_two_processes_killed_and_restarted(catalogue, many_tracks, tmp_path):
    """200 files in one pass give, file by file, what the two pipelines give; as two torchrun processes, one of them
    killed (SIGKILL) mid-run and the command run again, the same dataset, every readable track once."""
    one = predict(catalogue, tmp_path / "one", inputs=many_tracks)
    readable = sorted(p.relative_to(many_tracks).as_posix() for p in many_tracks.rglob("*.*") if p.stat().st_size > 40)
    assert sorted(one["id"]) == readable and len(readable) == 196
    assert len(json.loads((tmp_path / "one" / "skipped.json").read_text())) == 4
    classify = pipeline("audio-classification", model=str(catalogue / "genre"),
                        pipeline_class=AudioGenreClassificationPipeline)
    describe = pipeline("music-captioning", model=str(catalogue / "captioner"))
    labels = one.features["genre_label"].names
    for row in one:
        expected = {item["label"]: item["score"] for item in classify(row["path"], top_k=None)}
        np.testing.assert_allclose(row["genre_scores"], [expected[label] for label in labels], rtol=0, atol=1e-6)
        assert row["captioner_caption"] == describe(row["path"], **GENERATION)[0]["generated_text"]

    out = tmp_path / "two"
    args = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
        "modeling_audiocap.catalogue.cli", str(many_tracks), "--model", str(catalogue / "genre"),
        "--model", str(catalogue / "captioner"), "--output_dir", str(out), "--batch_size", "3", "--shard_size", "2",
        "--num_workers", "0", "--max_new_tokens", "6", "--no_progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    work = out / ".audiocap-predict"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        claims = [claim.read_text().split() for claim in work.glob("claim-*")] if work.exists() else []
        second = [int(fields[1]) for fields in claims if len(fields) == 2 and fields[0] == "1"]
        if second and len(list(work.glob("shard-*.json"))) >= 5:
            killed = second[-1]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    proc.communicate(timeout=120)
    written = len(list(work.glob("shard-*.json")))
    assert killed is not None and proc.returncode != 0 and 5 <= written < 100, (killed, proc.returncode, written)
    again = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-4000:]
    two = datasets.load_from_disk(str(out)).to_dict()
    expected = one.to_dict()
    # each track once, in input order, with the same answers (scores to float rounding: the windows batch differently)
    np.testing.assert_allclose(two.pop("genre_scores"), expected.pop("genre_scores"), rtol=0, atol=1e-6)
    assert two == expected
