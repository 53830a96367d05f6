"""`extract_embeddings`: layer-wise embeddings of many tracks, exact, resumable and fast.

Pipeline (one process; `accelerate launch` runs several, each claiming the next shard when it gets free):

    list clips (folder / files / dataset)  ->  shards of `shard_size` clips
    DataLoader workers (or the process itself): claim a shard (`ShardClaims`: an atomic claim file), then the encoder's `AudioCapFeatureExtractor` decodes each track block by block, cuts its windows and
               featurises them (`iter_windows`, `featurize`: the one path training and serving use)
    main loop: bucket windows by input shape (equal length: no padding), run full batches through the encoder
               (`runtime.LayerEmbedder`: inference mode, weight norm folded, bf16 autocast where fast), pool layers
    a shard is written (atomically) as soon as all its clips are done; at the end the shards form one `datasets`
    dataset in `output_dir` (the `save_to_disk` layout: `datasets.load_from_disk(output_dir)` reads it).

Exact: a window is never padded, so a batch gives what each window gives alone (group-norm feature extractors
normalise over the padding, and would not). Windows are cut as everywhere in audiocap (`audio.window_starts`): back
to back (or every `hop_seconds`), the last one aligned to the end of the track, a track shorter than a window is one
short window, batched with windows of the same length or alone.

Resumable: `output_dir/.audiocap-embed/plan.json` records the settings and the input list; each finished shard has
its Arrow file (written under a temporary name, then renamed) and a marker. A re-run with the same settings skips
finished shards; files that cannot be decoded are skipped, logged and listed in `output_dir/skipped.json`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from ..audio import AudioDecodingError
from ..encoder_families import encoder_family
from ..processing_audiocap import AudioCapFeatureExtractor
from .output import (
    EMBED,
    SKIPPED_FILE,
    OutputLayout,
    atomic_write_json,
    write_dataset_files,
    inputs_digest,
    prepare_output,
    output_features,
    shard_file_name,
)
from .runtime import POOLINGS, LayerEmbedder, LoadedEncoder, choose_dtype, load_encoder, resolve_layers
from .sources import Clip, list_clips

if TYPE_CHECKING:  # `datasets` is imported when needed: `import modeling_audiocap` stays fast
    import datasets

logger = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 256


class ExtractionInterrupted(RuntimeError):
    """Raised by the `_stop_after_shards` test hook, as if the run were killed after that many shards."""


# -- processes -------------------------------------------------------------------------------------------------------


@dataclass
class Processes:
    rank: int
    world: int
    device: torch.device
    barrier: Callable[[], None]


def processes(device: str | torch.device | None) -> Processes:
    """This process's rank among those `accelerate launch` (or torchrun) started, and its device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        from accelerate import PartialState

        # Without `cpu=True` accelerate does not join CPU processes into one group (each would think it is alone).
        on_cpu = torch.device(device).type == "cpu" if device is not None else not torch.cuda.is_available()
        state = PartialState(cpu=on_cpu)
        return Processes(
            state.process_index, state.num_processes, torch.device(device) if device else state.device,
            state.wait_for_everyone,
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Processes(0, 1, torch.device(device), lambda: None)


def default_num_workers(device: torch.device) -> int:
    """Decoding workers: on a GPU machine enough to keep it fed; on a CPU, where decoding takes the encoder's cores,
    a few only when there are cores to spare (decoding is ~1 % of a transformer encoder's CPU time)."""
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(8, cores - 1))
    return min(2, max(0, cores // 4))


# -- decoding workers ----------------------------------------------------------------------------------------------


def _identity(item):
    return item


def min_input_samples(encoder: torch.nn.Module, config) -> int:
    """The fewest samples a waveform encoder with a convolutional feature encoder turns into at least one frame."""
    lengths = getattr(encoder, "_get_feat_extract_output_lengths", None)
    if lengths is None or not encoder_family(config).waveform:
        return 1
    low, high = 1, 1 << 20
    while low < high:
        mid = (low + high) // 2
        if int(lengths(torch.tensor(mid))) >= 1:
            high = mid
        else:
            low = mid + 1
    return low


@dataclass
class ShardClaims:
    """Shards claimed at run time, one at a time, by whichever reader (a process, or a DataLoader worker of one) is
    free: a claim is a file created atomically (`O_CREAT | O_EXCL`) in the work folder, named with the run's token, so
    a slow reader never holds shards it has not started and a shard is read by one reader per run. Shards already
    written (their marker exists) are skipped; a run after a kill has a new token, so the shards the killed run had
    claimed but not written are claimed again."""

    work_dir: Path
    num_shards: int
    token: str
    rank: int
    next_shard: int = 0

    def claim(self) -> int | None:
        """The next shard this reader now owns, or None when every shard is written or claimed."""
        while self.next_shard < self.num_shards:
            shard = self.next_shard
            self.next_shard += 1
            if (self.work_dir / f"shard-{shard:05d}.json").exists():
                continue
            try:
                fd = os.open(self.work_dir / f"claim-{self.token}-{shard:05d}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, f"{self.rank} {os.getpid()}\n".encode())
            os.close(fd)
            return shard
        return None


@dataclass(frozen=True)
class StreamHead:
    """One model's view of the tracks: its processor (rate, normalisation, windows), the fewest samples a window
    needs, and whether only a track's first window is wanted (a captioner describes the start, as its pipeline)."""

    processor: AudioCapFeatureExtractor
    min_samples: int = 1
    first_window_only: bool = False


class WindowStream(IterableDataset):
    """Events for the main loop, shard by shard: each reader (the process, or each of its DataLoader workers) claims
    a shard (`ShardClaims`), reads its clips one by one, then claims the next:

    - `("shard", shard, positions)`: the reader took this shard, of these clips;
    - `("windows", position, head, first_index, starts, features)`: up to `block_windows` featurised windows of a
      clip, cut and featurised by `heads[head]`'s processor;
    - `("end", position, num_windows, duration)`: the clip is fully read (`num_windows` per head, `duration` in s);
    - `("error", position, message)`: the clip cannot be read (its earlier windows are dropped).

    With one head a track is read block by block (`iter_windows`: a long track is held one window at a time); with
    several it is decoded once per distinct rate and normalisation (`load`) and each head cuts its own windows
    (`windows`: the same windows `iter_windows` gives).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        shard_size: int,
        claims: ShardClaims,
        dataset: datasets.Dataset | None,
        audio_column: str,
        heads: Sequence[StreamHead],
        block_windows: int,
    ):
        self.clips = clips
        self.shard_size = shard_size
        self.claims = claims
        self.dataset = dataset
        self.audio_column = audio_column
        self.heads = list(heads)
        self.block_windows = max(1, block_windows)

    def _source(self, clip: Clip):
        if clip.row is None:
            return clip.source
        return self.dataset[clip.row][self.audio_column]

    def __iter__(self):
        while (shard := self.claims.claim()) is not None:
            members = self.clips[shard * self.shard_size : (shard + 1) * self.shard_size]
            yield ("shard", shard, [clip.position for clip in members])
            for clip in members:
                yield from self._clip_events(clip)

    def _head_windows(self, source) -> Iterator[tuple[int, int, torch.Tensor]]:
        """`(head, start, samples)` of every window each head wants."""
        if len(self.heads) == 1:
            head = self.heads[0]
            windows = head.processor.iter_windows(source)
            for start, samples in windows:
                yield 0, start, samples
                if head.first_window_only:
                    windows.close()  # the rest of the track is never decoded
                    return
            return
        decoded: dict[tuple, torch.Tensor] = {}
        for index, head in enumerate(self.heads):
            processor = head.processor
            key = (processor.sampling_rate, processor.normalize)
            if key not in decoded:
                decoded[key] = processor.load(source)[0]
            wave = decoded[key]
            cuts = zip(processor.window_starts(wave.shape[0]), processor.windows(wave))
            for start, samples in list(cuts)[: 1 if head.first_window_only else None]:
                yield index, start, samples

    def _clip_events(self, clip: Clip):
        blocks: dict[int, tuple[list[int], list[torch.Tensor]]] = {}
        counts = [0] * len(self.heads)
        duration = 0.0
        try:
            for index, start, samples in self._head_windows(self._source(clip)):
                head = self.heads[index]
                if samples.shape[0] < head.min_samples:
                    raise AudioDecodingError(
                        clip.path or clip.id,
                        f"too short: {samples.shape[0]} samples at {head.processor.sampling_rate} Hz, the encoder needs "
                        f"at least {head.min_samples}",
                    )
                starts, block = blocks.setdefault(index, ([], []))
                starts.append(start)
                block.append(samples)
                duration = max(duration, (start + samples.shape[0]) / head.processor.sampling_rate)
                if len(block) == self.block_windows:
                    yield ("windows", clip.position, index, counts[index], starts, head.processor.featurize(block))
                    counts[index] += len(block)
                    blocks[index] = ([], [])
            for index, (starts, block) in blocks.items():
                if block:
                    yield ("windows", clip.position, index, counts[index], starts,
                           self.heads[index].processor.featurize(block))
                    counts[index] += len(block)
        except AudioDecodingError as error:
            yield ("error", clip.position, str(error))
            return
        if 0 in counts:
            yield ("error", clip.position, f"Cannot load audio {clip.path or clip.id}: no audio")
            return
        yield ("end", clip.position, counts, duration)


# -- the main loop ---------------------------------------------------------------------------------------------------


@dataclass
class Track:
    """A track in flight: its clip, shard, window starts and per-window results of each head (`(head, index)`)."""

    clip: Clip
    shard: int
    starts: dict[int, list[int]] = field(default_factory=dict)
    results: dict[tuple[int, int], Any] = field(default_factory=dict)
    num_windows: list[int] | None = None
    duration: float = 0.0
    error: str | None = None
    ended: bool = False
    finished: bool = False

    def head_results(self, head: int) -> list[Any]:
        """The head's per-window results, in window order."""
        return [self.results[(head, i)] for i in range(self.num_windows[head])]


class ShardRunner:
    """Runs this process's shards: buckets each head's windows by shape, batches them through the head's job
    (`jobs[head]`: featurised windows -> one result per window), writes finished shards (`columns`: finished tracks
    -> the shard's columns)."""

    def __init__(
        self,
        clips: Sequence[Clip],
        claims: ShardClaims,
        shard_size: int,
        num_shards: int,
        stream: dict,
        jobs: Sequence[Callable[[dict], Sequence[Any]]],
        columns: Callable[[list[Track]], dict],
        batch_size: int,
        num_workers: int,
        features: datasets.Features,
        output_dir: Path,
        procs: Processes,
        progress: str | None,
        stop_after_shards: int | None,
        layout: OutputLayout = EMBED,
    ):
        self.jobs = list(jobs)
        self.columns = columns
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.features = features
        self.output_dir = output_dir
        self.work_dir = output_dir / layout.work_dir
        self.num_shards = num_shards
        self.device = procs.device
        self.rank = procs.rank
        self.stop_after_shards = stop_after_shards
        self.clips = clips
        self.tracks: dict[int, Track] = {}
        self.shard_unended: dict[int, int] = {}
        self.shard_left: dict[int, int] = {}
        self.shard_tracks: dict[int, list[int]] = {}
        self.stream = WindowStream(clips, shard_size, claims, **stream)
        self.buckets: dict[tuple, list[tuple[int, int, int, dict]]] = {}
        self.shards_written = 0
        self.audio_seconds = 0.0
        self.started = time.perf_counter()
        self.progress = None
        if progress:
            from tqdm.auto import tqdm

            left = sum(min(shard_size, len(clips) - k * shard_size) for k in range(num_shards)
                       if not (self.work_dir / f"shard-{k:05d}.json").exists())
            self.progress = tqdm(  # shards are claimed as processes get free: this one's share is about 1 / world
                total=math.ceil(left / procs.world), unit="clip", desc=progress if self.rank == 0 else f"{progress} [rank {self.rank}]",
                position=self.rank, dynamic_ncols=True,
            )

    # events -------------------------------------------------------------------------------------------------------

    def run(self) -> None:
        loader = DataLoader(
            self.stream,
            batch_size=None,
            collate_fn=_identity,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.num_workers > 0 else None,
        )
        try:
            for event in loader:
                kind, position = event[0], event[1]
                if kind == "shard":
                    self._start_shard(position, event[2])
                    continue
                track = self.tracks[position]
                if kind == "windows":
                    self._add_windows(track, *event[2:])
                elif kind == "end":
                    track.ended, track.num_windows, track.duration = True, event[2], event[3]
                    self._track_read(track)
                else:
                    track.ended, track.error = True, event[2]
                    logger.warning("Skipped %s: %s", track.clip.path or track.clip.id, track.error)
                    for key in list(self.buckets):
                        self.buckets[key] = [item for item in self.buckets[key] if item[0] != position]
                    self._track_read(track)
            self._flush()
        finally:
            if self.progress is not None:
                self.progress.close()

    def _start_shard(self, shard: int, positions: list[int]) -> None:
        self.shard_tracks[shard] = positions
        self.shard_unended[shard] = self.shard_left[shard] = len(positions)
        for position in positions:
            self.tracks[position] = Track(self.clips[position], shard)
        if not positions:  # an empty input list: its one shard is written right away
            self._write_shard(shard)

    def _add_windows(self, track: Track, head: int, first: int, starts: list[int], features: dict) -> None:
        track.starts.setdefault(head, []).extend(starts)
        names = sorted(features)
        key = (head, *((name, tuple(features[name].shape[1:]), str(features[name].dtype)) for name in names))
        bucket = self.buckets.setdefault(key, [])
        for i in range(len(starts)):
            bucket.append((track.clip.position, head, first + i, {name: features[name][i : i + 1] for name in names}))
            if len(bucket) >= self.batch_size:
                self._run(bucket[: self.batch_size])
                del bucket[: self.batch_size]

    def _track_read(self, track: Track) -> None:
        self.shard_unended[track.shard] -= 1
        if self.shard_unended[track.shard] == 0:
            # every clip of the shard is read: run its windows still waiting in partly filled buckets
            shard_positions = set(self.shard_tracks[track.shard])
            for key in list(self.buckets):
                if any(item[0] in shard_positions for item in self.buckets[key]):
                    self._run_bucket(key)
        self._maybe_finish(track)

    def _flush(self) -> None:
        for key in list(self.buckets):
            self._run_bucket(key)

    def _run_bucket(self, key: tuple) -> None:
        bucket = self.buckets.pop(key, [])
        for i in range(0, len(bucket), self.batch_size):
            self._run(bucket[i : i + self.batch_size])

    def _run(self, items: list[tuple[int, int, int, dict]]) -> None:
        if not items:
            return
        names = items[0][3].keys()
        batch = {name: torch.cat([item[3][name] for item in items]) for name in names}
        values = self.jobs[items[0][1]](batch)
        for (position, head, index, _), value in zip(items, values):
            self.tracks[position].results[(head, index)] = value.numpy()
        for position in dict.fromkeys(item[0] for item in items):
            self._maybe_finish(self.tracks[position])

    def _maybe_finish(self, track: Track) -> None:
        if track.finished or not track.ended:
            return
        if track.error is None and len(track.results) < sum(track.num_windows):
            return
        track.finished = True
        if track.error is None:
            self.audio_seconds += track.duration
        if self.progress is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            hours = self.audio_seconds / 3600
            self.progress.set_postfix(
                {"audio_h": f"{hours:.3g}", "audio_h/s": f"{hours / elapsed:.3g}"}, refresh=False
            )
            self.progress.update(1)
        self.shard_left[track.shard] -= 1
        if self.shard_left[track.shard] == 0:
            self._write_shard(track.shard)

    # output -------------------------------------------------------------------------------------------------------

    def _write_shard(self, shard: int) -> None:
        from datasets.arrow_writer import ArrowWriter

        tracks = [self.tracks.pop(position) for position in self.shard_tracks[shard]]
        rows = [t for t in tracks if t.error is None]
        skipped = [{"id": t.clip.id, "path": t.clip.path, "error": t.error} for t in tracks if t.error is not None]
        name = shard_file_name(shard, self.num_shards)
        tmp = self.output_dir / f"{name}.tmp-{self.rank}-{os.getpid()}"
        writer = ArrowWriter(features=self.features, path=str(tmp))
        try:
            if rows:
                writer.write_batch(self.columns(rows))
            writer.finalize()
        finally:
            writer.close()
        os.replace(tmp, self.output_dir / name)
        atomic_write_json(
            self.work_dir / f"shard-{shard:05d}.json",
            {
                "shard": shard,
                "file": name,
                "process": self.rank,
                "clips": len(rows),
                "windows": sum(sum(t.num_windows) for t in rows),
                "audio_seconds": sum(t.duration for t in rows),
                "skipped": skipped,
            },
        )
        self.shards_written += 1
        del self.shard_tracks[shard]
        if self.stop_after_shards is not None and self.shards_written >= self.stop_after_shards:
            raise ExtractionInterrupted(f"stopped after {self.shards_written} shard(s) (test hook)")


def embedding_columns(tracks: list[Track], rate: int) -> dict:
    """A shard's columns of `extract_embeddings`: id, path, duration, window starts (s) and the windows' embeddings."""
    return {
        "id": [t.clip.id for t in tracks],
        "path": [t.clip.path for t in tracks],
        "duration": [t.duration for t in tracks],
        "window_starts": [[start / rate for start in t.starts[0]] for t in tracks],
        "embeddings": [np.stack(t.head_results(0)) for t in tracks],
    }


def _wait_for(paths: Callable[[], bool], poll_seconds: float = 0.5) -> None:
    while not paths():
        time.sleep(poll_seconds)


# -- the entry point -------------------------------------------------------------------------------------------------


def extract_embeddings(
    inputs,
    encoder,
    output_dir: str | os.PathLike,
    *,
    window_seconds: float = 10.0,
    hop_seconds: float | None = None,
    layers: str | int | Sequence[int] = "all",
    pooling: str = "mean",
    batch_size: int = 16,
    dtype: str = "auto",
    shard_size: int = DEFAULT_SHARD_SIZE,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    audio_column: str = "audio",
    id_column: str = "id",
    split: str | None = None,
    streaming: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    _stop_after_shards: int | None = None,
) -> datasets.Dataset:
    """Embed every track of `inputs` with `encoder`, layer by layer, into a `datasets` dataset saved in `output_dir`.

    Args:
        inputs: a folder (audio files found recursively by extension), an audio file, a list of files, a `Dataset` /
            `DatasetDict` with an `audio_column`, a `save_to_disk` directory, or a Hub dataset id (`split=`).
        encoder: whatever `resolve_encoder` accepts (Hub id, encoder checkpoint directory, config, short name of a
            from-scratch encoder), a `ResolvedEncoder`, or a saved audiocap model directory (its `.encoder`, and its
            processor's feature extractor and `normalize` setting).
        output_dir: where the dataset is written (and resumed from).
        window_seconds: window length; tracks are cut into windows and never sent whole.
        hop_seconds: hop between windows (`None`: back to back); at most `window_seconds`.
        layers: `"all"`, or hidden-state indices (0 = the input embedding, -1 = the top layer). Layers above the
            deepest one asked for are not run.
        pooling: `"mean"` -> `(windows, layers, width)`; `"mean+std"` -> `(windows, layers, 2 * width)` (mean, then
            population std over frames); `"frames"` -> `(windows, layers, frames, width)`.
        batch_size: windows per encoder call (windows of one length; a partly filled batch runs when its shard's
            clips are all read).
        dtype: `"auto"` (bf16 autocast on CUDA GPUs with bf16 and on CPUs with AMX / AVX512-BF16, else float32),
            `"float32"`, `"bfloat16"`, or `"float16"` (GPU). Embeddings are stored as float32.
        shard_size: clips per output shard, the unit of resumption.
        num_workers: DataLoader worker processes decoding ahead of the encoder (`None`: `default_num_workers`).
        device: `"cpu"`, `"cuda"`, ... (`None`: this process's accelerator under `accelerate launch`, else CUDA when
            available, else the CPU).
        audio_column, id_column, split: for dataset inputs.
        streaming: read a parquet dataset (a `.parquet` file, a local folder or a Hub id) where it lies, row group by
            row group, instead of loading (or downloading) it first.
        overwrite: replace an earlier run in `output_dir` instead of resuming it (a run with other settings is an
            error otherwise).
        progress: show a progress bar (clips, audio hours, audio hours per second).

    Returns:
        The dataset (`datasets.load_from_disk(output_dir)`), one row per clip that decoded, in input order: `id`,
        `path`, `duration`, `window_starts` (seconds), `embeddings`. Clips that did not decode are listed with the
        reason in `output_dir/skipped.json`; the settings and counts are in `output_dir/embedding_config.json`.
    """
    import datasets

    _check_settings(pooling, batch_size, shard_size, window_seconds, hop_seconds)
    procs = processes(device)
    plan = _plan(inputs, encoder, procs.device, window_seconds=window_seconds, hop_seconds=hop_seconds, layers=layers,
                 pooling=pooling, dtype=dtype, shard_size=shard_size, audio_column=audio_column, id_column=id_column,
                 split=split, streaming=streaming)
    output_dir = Path(output_dir)
    claims = start_claims(plan, output_dir, procs, overwrite)
    workers = default_num_workers(procs.device) if num_workers is None else num_workers
    _run_shards(plan, claims, output_dir, procs, batch_size, workers, progress, _stop_after_shards)
    finish(plan, output_dir, procs)
    return datasets.load_from_disk(str(output_dir))


def _check_settings(pooling: str, batch_size: int, shard_size: int, window_seconds: float, hop_seconds: float | None):
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError("batch_size and shard_size must be positive")
    if window_seconds is None or window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    if hop_seconds is not None and not 0 < hop_seconds <= window_seconds:
        raise ValueError(f"hop_seconds must be in (0, window_seconds={window_seconds}], got {hop_seconds}")


@dataclass
class _Plan:
    """What a run embeds and how: the encoder, its layers and processor, the clips and their shards, and `settings`
    (what `plan.json` records, so that a resumed run can check it has the same ones)."""

    loaded: LoadedEncoder
    layer_ids: list[int]
    compute_dtype: torch.dtype
    processor: AudioCapFeatureExtractor
    min_samples: int
    clips: Sequence[Clip]  # a ClipTable, or a list for in-memory inputs
    dataset: Any
    features: Any
    shard_size: int
    num_shards: int
    pooling: str
    settings: dict


def _plan(inputs, encoder, device: torch.device, *, window_seconds: float, hop_seconds: float | None, layers,
          pooling: str, dtype: str, shard_size: int, audio_column: str, id_column: str, split: str | None,
          streaming: bool) -> _Plan:
    loaded = load_encoder(encoder)
    compute_dtype = choose_dtype(dtype, device)
    layer_ids = resolve_layers(layers, loaded.num_layers)
    rate = loaded.sampling_rate
    min_samples = min_input_samples(loaded.model, loaded.config)
    if int(round(window_seconds * rate)) < min_samples:
        raise ValueError(f"window_seconds={window_seconds} is too short for this encoder (at least {min_samples} samples)")
    clips, dataset = list_clips(inputs, audio_column=audio_column, id_column=id_column, split=split, streaming=streaming)
    width = loaded.family.layer_width(loaded.config) * (2 if pooling == "mean+std" else 1)
    num_shards = max(1, math.ceil(len(clips) / shard_size))
    settings = {
        "encoder": loaded.name,
        "encoder_model_type": loaded.config.model_type,
        "sampling_rate": rate,
        "normalize": loaded.normalize,
        "window_seconds": float(window_seconds),
        "hop_seconds": None if hop_seconds is None else float(hop_seconds),
        "layers": layer_ids,
        "pooling": pooling,
        "dtype": str(compute_dtype).replace("torch.", ""),
        "shard_size": shard_size,
        "num_shards": num_shards,
        "num_inputs": len(clips),
        "inputs_digest": inputs_digest(clips),
    }
    processor = AudioCapFeatureExtractor(
        loaded.feature_extractor, window_seconds=window_seconds, hop_seconds=hop_seconds, normalize=loaded.normalize
    )
    return _Plan(loaded, layer_ids, compute_dtype, processor, min_samples, clips, dataset,
                 output_features(len(layer_ids), width, pooling), shard_size, num_shards, pooling, settings)


def start_claims(plan, output_dir: Path, procs: Processes, overwrite: bool, layout: OutputLayout = EMBED) -> ShardClaims:
    """After the first process prepared `output_dir` (or checked that it holds a run of the same `plan.settings`) and
    gave the run a new token, every process's claims on the shards of `plan` not yet written."""
    work = output_dir / layout.work_dir
    if procs.rank == 0:
        prepare_output(output_dir, plan.settings, overwrite, layout)
        for stale in work.glob("claim-*"):  # claims of an earlier (killed) run
            stale.unlink(missing_ok=True)
        atomic_write_json(work / "run.json", {"token": uuid.uuid4().hex, "processes": procs.world, "started": time.time()})
        done = sum(1 for k in range(plan.num_shards) if (work / f"shard-{k:05d}.json").exists())
        if done and done < plan.num_shards:
            logger.info("Resuming %s: %d of %d shards already written", output_dir, done, plan.num_shards)
    procs.barrier()
    with open(work / "run.json", encoding="utf-8") as f:
        token = json.load(f)["token"]
    return ShardClaims(work, plan.num_shards, token, procs.rank)


def _run_shards(plan: _Plan, claims: ShardClaims, output_dir: Path, procs: Processes, batch_size: int, workers: int,
                progress: bool, stop_after_shards: int | None) -> None:
    stream = dict(dataset=plan.dataset, audio_column="audio", heads=[StreamHead(plan.processor, plan.min_samples)],
                  block_windows=batch_size)
    columns = functools.partial(embedding_columns, rate=plan.loaded.sampling_rate)
    with LayerEmbedder(plan.loaded, plan.layer_ids, plan.pooling, procs.device, plan.compute_dtype) as embedder:
        runner = ShardRunner(
            plan.clips, claims, plan.shard_size, plan.num_shards, stream, [embedder], columns, batch_size, workers,
            plan.features, output_dir, procs, "embed" if progress else None, stop_after_shards,
        )
        runner.run()


def finish(plan, output_dir: Path, procs: Processes, layout: OutputLayout = EMBED) -> dict:
    """The first process waits for every shard of `plan` and writes the dataset's files; the others wait for it.
    Returns the run's counts."""
    work = output_dir / layout.work_dir
    if procs.rank != 0:
        _wait_for(lambda: (work / "finished.json").exists())
        with open(work / "finished.json", encoding="utf-8") as f:
            return json.load(f)
    _wait_for(lambda: all((work / f"shard-{k:05d}.json").exists() for k in range(plan.num_shards)))
    with open(work / "run.json", encoding="utf-8") as f:
        run_seconds = time.time() - json.load(f)["started"]  # this run's, models loaded: resumed shards not counted
    counts = write_dataset_files(output_dir, plan.num_shards, plan.features, plan.settings, layout,
                                 {"run_seconds": run_seconds})
    atomic_write_json(work / "finished.json", {"plan": plan.settings, **counts})
    message = (
        f"{layout.tool}: {counts['clips']} clips ({counts['audio_seconds'] / 3600:.3g} h of audio, "
        f"{counts['windows']} windows) into {output_dir}"
    )
    if counts["skipped"]:
        message += f"; skipped {counts['skipped']} that could not be read (listed in {output_dir / SKIPPED_FILE})"
        logger.warning(message)
    else:
        logger.info(message)
    return {"plan": plan.settings, **counts}


__all__ = [
    "ExtractionInterrupted", "ShardClaims", "ShardRunner", "StreamHead", "Track", "WindowStream", "extract_embeddings",
    "min_input_samples", "output_features",
]
