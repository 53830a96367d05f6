"""What made a run, as its results.json and model card record it: the resolved commit of every Hub model and dataset
it used, and the sizes and digests of the local inputs it read (the package stack is `hub.package_versions`).

- `model_source(name, **hub_kwargs)`: a model by how it was given; a Hub one with the commit its revision resolved
  to (the snapshot `from_pretrained` read), a local folder with the digest of its file listing and its configs.
- `dataset_source(name, config_name, revision)`: a Hub dataset with the commit its revision resolves to; a local
  folder (or file) with the digest of its listing and of its manifests (`metadata.csv`, split and tag lists).
- `folder_digest(path)`: files, bytes and a sha256 over the sorted `(relative path, size)` listing of a folder.
- `run_sources(data_args, models)`: all of a run's, as results.json's `sources`.
"""

import hashlib
import logging
import os
from pathlib import Path

import datasets
from huggingface_hub import hf_hub_download

from ..encoder_families import short_names
from .arguments import AudioDataArguments

logger = logging.getLogger(__name__)

# Files that say which clips a local input holds and what they are labelled: digested in full.
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".txt", ".yaml", ".yml", ".md")
CHUNK = 1 << 20


def file_digest(path: str | os.PathLike) -> dict:
    """`{"bytes": ..., "sha256": ...}` of one file."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": sha.hexdigest()}


def folder_digest(root: str | os.PathLike) -> dict:
    """A folder as a listing: the number of files, their total size, a sha256 over the sorted `path<TAB>size` lines
    (any file added, removed, renamed or resized changes it) and the full digest of each manifest file."""
    root = Path(root)
    listing, manifests, total = hashlib.sha256(), {}, 0
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        entries += [Path(dirpath, name) for name in filenames if not name.startswith(".")]
    for path in sorted(entries):
        relative, size = path.relative_to(root).as_posix(), path.stat().st_size
        listing.update(f"{relative}\t{size}\n".encode())
        total += size
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            manifests[relative] = file_digest(path)
    return {"files": len(entries), "bytes": total, "listing_sha256": listing.hexdigest(), "manifests": manifests}


def local_digest(path: str | os.PathLike) -> dict:
    """`folder_digest` of a folder, `file_digest` of a file."""
    return folder_digest(path) if os.path.isdir(path) else file_digest(path)


def hub_model_commit(name: str, **hub_kwargs) -> str | None:
    """The commit a Hub model's revision resolves to: the snapshot its config.json is cached in (where
    `from_pretrained` put it), or None when it is not a Hub model reachable here."""
    try:
        path = Path(hf_hub_download(name, "config.json", **hub_kwargs))
    except Exception:  # not a Hub repo (a short name of a from-scratch encoder), or unreachable
        return None
    return path.parts[path.parts.index("snapshots") + 1] if "snapshots" in path.parts else None


def model_source(name: str, **hub_kwargs) -> dict:
    """Where a model came from: a local folder (digested), a Hub repo (the revision asked for and the commit it
    resolved to) or a name built in code (a short name: random weights, nothing to resolve)."""
    source = {"name": name}
    if os.path.exists(name):
        source.update(path=str(Path(name).resolve()), **local_digest(name))
    elif name not in short_names() and (commit := hub_model_commit(name, **hub_kwargs)) is not None:
        source.update(revision=hub_kwargs.get("revision") or "main", commit=commit)
    return source


def hub_dataset_commit(
    name: str, config_name: str | None = None, revision: str | None = None, **hub_kwargs
) -> str | None:
    """The commit a Hub dataset's revision resolves to (read from its metadata, or the local cache offline), or None
    when it cannot be resolved here."""
    try:
        return datasets.load_dataset_builder(name, config_name, revision=revision, **hub_kwargs).hash
    except Exception as error:  # recorded as unknown, never guessed
        logger.warning("Could not resolve the commit of dataset %s (%s): recorded as unknown", name, error)
        return None


def dataset_source(name: str, config_name: str | None = None, revision: str | None = None, **hub_kwargs) -> dict:
    """Where a run's data came from: a local folder or file (digested) or a Hub dataset (revision and commit)."""
    source = {"name": name}
    if os.path.exists(name):
        source.update(path=str(Path(name).resolve()), **local_digest(name))
    else:
        source.update(config=config_name, revision=revision or "main",
                      commit=hub_dataset_commit(name, config_name, revision, **hub_kwargs))
    return source


def run_sources(data_args: AudioDataArguments, models: dict[str, tuple[str, dict]]) -> dict:
    """A run's sources: each model by role (`role -> (name_or_path, its from_pretrained Hub arguments)`) and its
    data (the built-in set's folder, a local folder, or a Hub dataset)."""
    if data_args.dataset_name == "builtin":
        dataset = dataset_source(data_args.builtin_dir)
    else:
        dataset = dataset_source(data_args.dataset_name, data_args.dataset_config_name, data_args.dataset_revision)
    return {"models": {role: model_source(name, **hub_kwargs) for role, (name, hub_kwargs) in models.items()},
            "dataset": dataset}
