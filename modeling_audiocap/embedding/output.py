"""The on-disk side of `extract_embeddings` and `predict_catalogue`: the output dataset's format, the run's plan (to
resume), and the final `save_to_disk` layout written from the finished shards.

Layout of `output_dir`: `data-XXXXX-of-YYYYY.arrow` shards, `state.json` and `dataset_info.json` (so that
`datasets.load_from_disk(output_dir)` reads them as one dataset), `skipped.json` (clips that could not be read, with
the reason), the settings and counts (`embedding_config.json` / `predict_config.json`); `.audiocap-embed/` (or
`.audiocap-predict/`) holds the plan and a marker per finished shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sources import Clip

if TYPE_CHECKING:  # `datasets` is imported when needed: `import modeling_audiocap` stays fast
    import datasets

STATE_FILE = "state.json"
INFO_FILE = "dataset_info.json"
SKIPPED_FILE = "skipped.json"


@dataclass(frozen=True)
class OutputLayout:
    """What a kind of run writes: the command that writes it (its work folder is `.<tool>`), its settings file and
    the description its dataset carries."""

    tool: str
    config_file: str
    description: str

    @property
    def work_dir(self) -> str:
        return f".{self.tool}"


EMBED = OutputLayout("audiocap-embed", "embedding_config.json", "Layer-wise audio embeddings written by audiocap-embed")


# -- output format -------------------------------------------------------------------------------------------------


def output_features(num_layers: int, width: int, pooling: str) -> datasets.Features:
    """Columns: `id`, `path`, `duration` (seconds), `window_starts` (seconds), `embeddings`: `(windows, layers, width)`
    float32 for `"mean"` (width doubled, mean then std, for `"mean+std"`), `(windows, layers, frames, width)` for
    `"frames"`."""
    import datasets

    if pooling == "frames":
        embeddings = datasets.List(datasets.List(datasets.List(datasets.List(datasets.Value("float32")))))
    else:
        embeddings = datasets.Array3D(shape=(None, num_layers, width), dtype="float32")
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "path": datasets.Value("string"),
            "duration": datasets.Value("float64"),
            "window_starts": datasets.List(datasets.Value("float64")),
            "embeddings": embeddings,
        }
    )


def shard_file_name(index: int, num_shards: int) -> str:
    return f"data-{index:05d}-of-{num_shards:05d}.arrow"


def atomic_write_json(path: Path, value: Any, sort_keys: bool = True) -> None:
    """Write JSON under a temporary name, then rename it: readers see the old file or the whole new one."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=sort_keys, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- run bookkeeping -------------------------------------------------------------------------------------------------


def inputs_digest(clips: Sequence[Clip]) -> str:
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(f"{clip.id}\0{clip.path}\n".encode())
    return digest.hexdigest()[:24]


def prepare_output(output_dir: Path, plan: dict, overwrite: bool, layout: OutputLayout = EMBED) -> None:
    """Create `output_dir` or check that it holds a run with the same plan (to resume); remove stale temporary
    files. With `overwrite`, the files of an earlier run are removed first."""
    work = output_dir / layout.work_dir
    ours = [STATE_FILE, INFO_FILE, SKIPPED_FILE, layout.config_file]
    if overwrite and output_dir.exists():
        for path in [*output_dir.glob("data-*-of-*.arrow*"), *(output_dir / name for name in ours)]:
            path.unlink(missing_ok=True)
        if work.exists():
            for path in work.iterdir():
                path.unlink()
    plan_file = work / "plan.json"
    if plan_file.exists():
        with open(plan_file, encoding="utf-8") as f:
            previous = json.load(f)
        if previous != plan:
            changed = sorted(k for k in set(previous) | set(plan) if previous.get(k) != plan.get(k))
            raise ValueError(
                f"{output_dir} holds a {layout.tool} run with other settings ({', '.join(changed)} differ); "
                "pass overwrite=True (--overwrite) to replace it, or choose another output_dir"
            )
    elif any(output_dir.glob("data-*-of-*.arrow")) or (output_dir / STATE_FILE).exists():
        raise ValueError(f"{output_dir} already holds a dataset not written by {layout.tool}; choose another output_dir")
    work.mkdir(parents=True, exist_ok=True)
    for stale in [*output_dir.glob("*.tmp-*"), *work.glob("*.tmp-*")]:
        stale.unlink(missing_ok=True)
    if not plan_file.exists():
        atomic_write_json(plan_file, plan)


def write_dataset_files(
    output_dir: Path, num_shards: int, features: datasets.Features, plan: dict, layout: OutputLayout = EMBED,
    extra: dict | None = None,
) -> dict:
    """Write `state.json` / `dataset_info.json` (so `load_from_disk` reads the shards as one dataset),
    `skipped.json` and the settings file (the plan, the counts and `extra`); returns the run's counts."""
    import datasets

    work = output_dir / layout.work_dir
    markers = []
    for shard in range(num_shards):
        with open(work / f"shard-{shard:05d}.json", encoding="utf-8") as f:
            markers.append(json.load(f))
    skipped = [item for marker in markers for item in marker["skipped"]]
    counts = {
        "clips": sum(m["clips"] for m in markers),
        "windows": sum(m["windows"] for m in markers),
        "audio_seconds": sum(m["audio_seconds"] for m in markers),
        "skipped": len(skipped),
        "processes_that_wrote_shards": len({m.get("process", 0) for m in markers}),
        **(extra or {}),
    }
    atomic_write_json(output_dir / SKIPPED_FILE, skipped)
    atomic_write_json(output_dir / layout.config_file, {**plan, **counts})
    info = datasets.DatasetInfo(
        description=f"{layout.description}: " + json.dumps(plan, sort_keys=True),
        features=features,
    )
    # datasets' own dict form (it writes a ClassLabel's names as `load_from_disk` reads them); not sorted below the
    # first level: that would reorder the columns in `features`
    from datasets.utils.py_utils import asdict

    info_dict = asdict(info)
    atomic_write_json(output_dir / INFO_FILE, {key: info_dict[key] for key in sorted(info_dict)}, sort_keys=False)
    state = {
        "_data_files": [{"filename": shard_file_name(k, num_shards)} for k in range(num_shards)],
        "_fingerprint": hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16],
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    atomic_write_json(output_dir / STATE_FILE, state)
    return counts




__all__ = [
    "EMBED", "OutputLayout", "atomic_write_json", "inputs_digest", "output_features", "prepare_output",
    "shard_file_name", "write_dataset_files",
]
