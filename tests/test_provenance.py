"""Runs say what made them: a pinned revision loads that revision from the Hub cache, and results record the
resolved commits and the digests of the local inputs."""

import hashlib
import shutil

import torch
from conftest import tiny_encoder_config

import train_genre
from modeling_audiocap import resolve_encoder
from modeling_audiocap.training.arguments import AudioDataArguments, EncoderArguments, parse_with_config
from modeling_audiocap.training.provenance import folder_digest, run_sources
from modeling_audiocap.training.runs import builtin_set

REPO = "acme/tiny-encoder"


def hub_cache_with_two_revisions(cache) -> tuple[str, str, dict]:
    """A Hub cache holding two commits of one encoder repo (as `hf download --revision` leaves it), main at the
    newer: returns (old commit, new commit, state of each)."""
    repo = cache / f"models--{REPO.replace('/', '--')}"
    states = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        resolved = resolve_encoder(tiny_encoder_config("wav2vec2"))
        commit = hashlib.sha1(f"commit {seed}".encode()).hexdigest()
        resolved.model.save_pretrained(repo / "snapshots" / commit)
        resolved.feature_extractor.save_pretrained(repo / "snapshots" / commit)
        states[commit] = resolved.model.state_dict()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    old, new = list(states)
    return old, new, states


def test_a_pinned_revision_loads_that_commit_and_the_run_records_it(tmp_path):
    cache = tmp_path / "hub"
    old, new, states = hub_cache_with_two_revisions(cache)
    config = tmp_path / "pinned.yaml"
    config.write_text(f"encoder_name_or_path: {REPO}\nmodel_revision: {old}\ncache_dir: {cache}\n")
    (pinned,) = parse_with_config((EncoderArguments,), ["--config", str(config)])
    data = AudioDataArguments(dataset_name="builtin", builtin_dir=str(tmp_path / "set"), builtin_clips_per_genre=2,
                              builtin_seconds=1.0, max_length_seconds=1.0)
    for args, commit in ((pinned, old), (EncoderArguments(encoder_name_or_path=REPO, cache_dir=str(cache)), new)):
        model, _ = train_genre.build_model(args, train_genre.GenreArguments(), data, ["a", "b"])
        for key, value in model.encoder.state_dict().items():
            torch.testing.assert_close(value, states[commit][key], msg=key)
        builtin_set(data)
        sources = run_sources(data, {"encoder": (args.encoder_name_or_path, args.hub_kwargs())})
        assert sources["models"]["encoder"] == {"name": REPO, "revision": args.model_revision, "commit": commit}
        assert sources["dataset"]["listing_sha256"] == folder_digest(data.builtin_dir)["listing_sha256"]


def test_a_folder_digest_changes_with_any_file_and_digests_its_manifests(tmp_path):
    (tmp_path / "rock").mkdir()
    (tmp_path / "rock" / "a.wav").write_bytes(b"RIFF0000")
    (tmp_path / "metadata.csv").write_text("file_name,label\nrock/a.wav,rock\n")
    first = folder_digest(tmp_path)
    assert (first["files"], first["bytes"]) == (2, 8 + len("file_name,label\nrock/a.wav,rock\n"))
    assert first["manifests"]["metadata.csv"]["sha256"] == hashlib.sha256(
        (tmp_path / "metadata.csv").read_bytes()).hexdigest()
    assert folder_digest(tmp_path) == first
    shutil.copy(tmp_path / "rock" / "a.wav", tmp_path / "rock" / "b.wav")
    assert folder_digest(tmp_path)["listing_sha256"] != first["listing_sha256"]
