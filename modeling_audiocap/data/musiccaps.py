"""MusicCaps (Agostinelli et al. 2023): 5,521 ten-second YouTube clips with expert captions, as a captioning
`DatasetDict`, and the command that fetches the clips.

Google distributes only `musiccaps-public.csv` (columns `ytid, start_s, end_s, audioset_positive_labels,
aspect_list, caption, author_id, is_balanced_subset, is_audioset_eval`); the audio has to be cut out of the YouTube
videos. `prepare_musiccaps` does that into a folder of clips named `<ytid>.<ext>`, which `load_musiccaps` reads::

    python -m modeling_audiocap.data.musiccaps prepare --csv musiccaps-public.csv --audio_dir data/musiccaps \\
        [--limit N] [--jobs K] [--retry_failed] [--format wav|flac] [--sampling_rate 48000]

It needs yt-dlp (`pip install 'audiocap[musiccaps]'`) and FFmpeg. Every clip is written to a hidden temporary name
and renamed when complete, so an interrupted run never leaves a half clip under a real name; a rerun skips the
clips already there. Videos that fail (removed, private, region-locked, shorter than `end_s`, ...) are recorded
with the reason in `<audio_dir>/failed.csv`; later runs skip them unless `--retry_failed` is given.

Split protocols of `load_musiccaps` (the split of a clip is decided over the whole csv, before missing clips are
dropped, so a clip keeps its split however many clips could be downloaded):

- `random`: the reference paper's seeded 70/10/20 train/validation/test;
- `official`: `is_audioset_eval` True = test (2,858 clips), the rest train, with a seeded 10% of it as validation.
"""

from __future__ import annotations

import argparse
import ast
import csv
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
    "is_balanced_subset", "is_audioset_eval",
)
CLIP_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".aac")
SPLIT_PROTOCOLS = ("random", "official")
SPLITS = ("train", "validation", "test")
RANDOM_FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}
OFFICIAL_VALIDATION_FRACTION = 0.1
FAILED_FILE = "failed.csv"
TEMP_MARK = ".part"  # temporary files are ".<ytid>.part<...>": hidden, and never "<ytid>.<ext>"
# A trimmed clip shorter than its [start_s, end_s] by more than this is a failure (the video is too short).
DURATION_TOLERANCE_S = 0.5


# --------------------------------------------------------------------------------------------------- reading


def read_musiccaps_csv(csv_path: str | os.PathLike) -> list[dict]:
    """Rows of `musiccaps-public.csv` as dicts of strings (`start_s`/`end_s` as floats, flags as bools)."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("ytid", "start_s", "end_s", "caption") if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{csv_path} lacks MusicCaps columns {missing}; has {reader.fieldnames}")
        rows = list(reader)
    for row in rows:
        row["start_s"], row["end_s"] = float(row["start_s"]), float(row["end_s"])
        for flag in ("is_balanced_subset", "is_audioset_eval"):
            if flag in row:
                row[flag] = str(row[flag]).strip().lower() in ("true", "1", "yes")
    return rows


def _parse_aspects(value: str) -> list[str]:
    """`"['low quality', 'piano']"` -> `['low quality', 'piano']` (a plain comma list is accepted too)."""
    value = (value or "").strip()
    if not value:
        return []
    try:
        parsed = ast.literal_eval(value)
        if isinstance(parsed, (list, tuple)):
            return [str(v) for v in parsed]
    except (ValueError, SyntaxError):
        pass
    return [v.strip() for v in value.strip("[]").split(",") if v.strip()]


def find_clips(audio_dir: str | os.PathLike) -> dict[str, Path]:
    """`{ytid: path}` of the clips `<ytid>.<ext>` in `audio_dir` (the first of CLIP_EXTENSIONS wins)."""
    audio_dir = Path(audio_dir)
    found: dict[str, Path] = {}
    if not audio_dir.is_dir():
        return found
    rank = {ext: i for i, ext in enumerate(CLIP_EXTENSIONS)}
    for entry in os.scandir(audio_dir):
        path = Path(entry.path)
        ext = path.suffix.lower()
        if ext not in rank or entry.name.startswith(".") or not entry.is_file():
            continue
        previous = found.get(path.stem)
        if previous is None or rank[ext] < rank[previous.suffix.lower()]:
            found[path.stem] = path
    return found


def assign_splits(rows: list[dict], split_protocol: str = "random", seed: int = 0) -> list[str]:
    """The split of every csv row under `split_protocol` (see the module docstring); seeded and reproducible."""
    if split_protocol not in SPLIT_PROTOCOLS:
        raise ValueError(f"split_protocol must be one of {SPLIT_PROTOCOLS}, got {split_protocol!r}")
    rng = np.random.default_rng(seed)
    out = [""] * len(rows)
    if split_protocol == "random":
        order = rng.permutation(len(rows))
        n_test = int(round(RANDOM_FRACTIONS["test"] * len(rows)))
        n_val = int(round(RANDOM_FRACTIONS["validation"] * len(rows)))
        for rank, i in enumerate(order):
            out[i] = "test" if rank < n_test else ("validation" if rank < n_test + n_val else "train")
        return out
    if any("is_audioset_eval" not in r for r in rows):
        raise ValueError("split_protocol 'official' needs the is_audioset_eval column")
    rest = [i for i, r in enumerate(rows) if not r["is_audioset_eval"]]
    n_val = int(round(OFFICIAL_VALIDATION_FRACTION * len(rest)))
    val = {rest[i] for i in rng.permutation(len(rest))[:n_val]}
    for i, r in enumerate(rows):
        out[i] = "test" if r["is_audioset_eval"] else ("validation" if i in val else "train")
    return out


def load_musiccaps(
    csv_path: str | os.PathLike,
    audio_dir: str | os.PathLike,
    split_protocol: str = "random",
    seed: int = 0,
):
    """MusicCaps as a `datasets.DatasetDict` with `train` / `validation` / `test`.

    Columns: `audio` (`datasets.Audio(decode=False)`: paths to `<audio_dir>/<ytid>.<ext>`), `caption`, `ytid` and
    `aspect_list` (a list of strings). Rows whose clip is missing are skipped and counted in the log.
    """
    import datasets

    rows = read_musiccaps_csv(csv_path)
    splits = assign_splits(rows, split_protocol, seed)
    clips = find_clips(audio_dir)
    features = datasets.Features({
        "audio": datasets.Audio(decode=False),
        "caption": datasets.Value("string"),
        "ytid": datasets.Value("string"),
        "aspect_list": datasets.Sequence(datasets.Value("string")),
    })
    columns = {name: {key: [] for key in features} for name in SPLITS}
    missing = {name: 0 for name in SPLITS}
    for row, split in zip(rows, splits):
        path = clips.get(row["ytid"])
        if path is None:
            missing[split] += 1
            continue
        col = columns[split]
        col["audio"].append(str(path.absolute()))
        col["caption"].append(row["caption"])
        col["ytid"].append(row["ytid"])
        col["aspect_list"].append(_parse_aspects(row.get("aspect_list", "")))
    if sum(missing.values()):
        logger.warning(
            "MusicCaps: skipped %d of %d rows whose clip is missing in %s (%s)", sum(missing.values()), len(rows),
            audio_dir, ", ".join(f"{k} {v}" for k, v in missing.items()),
        )
    out = datasets.DatasetDict({name: datasets.Dataset.from_dict(columns[name], features=features) for name in SPLITS})
    logger.info("MusicCaps splits (%s, seed %d): %s", split_protocol, seed, {k: len(v) for k, v in out.items()})
    return out


# --------------------------------------------------------------------------------------------------- preparing


Downloader = Callable[[str, Path], Path]


def youtube_download(ytid: str, workdir: Path) -> Path:
    """Download the best audio stream of YouTube video `ytid` into `workdir` with yt-dlp; returns the file."""
    yt_dlp = _import_yt_dlp()
    options = {
        "format": "bestaudio/best",
        "outtmpl": str(Path(workdir) / "source.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "retries": 3,
    }
    with yt_dlp.YoutubeDL(options) as ydl:
        ydl.extract_info(f"https://www.youtube.com/watch?v={ytid}", download=True)
    files = [p for p in Path(workdir).iterdir() if p.is_file() and p.name.startswith("source.") and p.stat().st_size]
    if not files:
        raise RuntimeError("yt-dlp finished but wrote no audio file")
    return max(files, key=lambda p: p.stat().st_size)


def _import_yt_dlp():
    try:
        import yt_dlp
    except ImportError as error:
        raise ImportError(
            "Fetching MusicCaps clips needs yt-dlp, which is not installed: pip install 'audiocap[musiccaps]' "
            "(or pip install yt-dlp)"
        ) from error
    return yt_dlp


def _require_ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("Trimming MusicCaps clips needs the ffmpeg program (e.g. apt-get install ffmpeg)")
    return ffmpeg


def trim_audio(
    source: Path, target: Path, start_s: float, end_s: float, sampling_rate: int | None = None
) -> None:
    """Cut `[start_s, end_s]` of `source` into `target` with FFmpeg (format from `target`'s suffix: wav is 16-bit
    PCM, flac lossless); the channel count and rate are kept unless `sampling_rate` is given."""
    codec = {".wav": ["-c:a", "pcm_s16le"], ".flac": ["-c:a", "flac"]}.get(Path(target).suffix.lower(), [])
    fmt = {".wav": "wav", ".flac": "flac"}.get(Path(target).suffix.lower())
    command = [
        _require_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-ss", f"{start_s:.3f}", "-i", str(source), "-t", f"{end_s - start_s:.3f}", "-vn", "-map", "0:a:0",
        *codec, *(["-ar", str(int(sampling_rate))] if sampling_rate else []), *(["-f", fmt] if fmt else []),
        str(target),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(f"ffmpeg failed: {lines[-1] if lines else f'exit status {result.returncode}'}")


def audio_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in `path`, by decoding it (exact, whatever the header says)."""
    from torchcodec.decoders import AudioDecoder

    samples = AudioDecoder(str(path)).get_all_samples()
    return samples.data.shape[-1] / float(samples.sample_rate)


def read_failures(audio_dir: str | os.PathLike) -> dict[str, str]:
    """`{ytid: reason}` recorded in `<audio_dir>/failed.csv` (empty when there is none)."""
    path = Path(audio_dir) / FAILED_FILE
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["ytid"]: row["reason"] for row in csv.DictReader(f)}


def _write_failures(audio_dir: Path, failures: dict[str, str]) -> None:
    """Rewrite failed.csv atomically (temp file + rename), or remove it when nothing failed."""
    path = audio_dir / FAILED_FILE
    if not failures:
        path.unlink(missing_ok=True)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{FAILED_FILE}", suffix=TEMP_MARK, dir=audio_dir)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["ytid", "reason"])
            writer.writerows(sorted(failures.items()))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:500]


@dataclass
class PrepareReport:
    """What one `prepare_musiccaps` run did (ytids)."""

    downloaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped_failed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{len(self.downloaded)} downloaded, {len(self.existing)} already present, "
            f"{len(self.skipped_failed)} skipped (failed before), {len(self.failed)} failed"
        )


def fetch_clip(
    row: dict,
    audio_dir: Path,
    download: Downloader,
    audio_format: str = "wav",
    sampling_rate: int | None = None,
) -> Path:
    """Download one csv row's video, trim it to `[start_s, end_s]` and move it to `<audio_dir>/<ytid>.<format>`.

    The clip is written as `.<ytid>.part.<format>` and renamed only once complete and checked, so the real name
    never holds half a clip; the download lives in a temporary folder that is always removed.
    """
    ytid, start, end = row["ytid"], float(row["start_s"]), float(row["end_s"])
    final = audio_dir / f"{ytid}.{audio_format}"
    temp = audio_dir / f".{ytid}{TEMP_MARK}.{audio_format}"
    with tempfile.TemporaryDirectory(prefix=f".{ytid}{TEMP_MARK}-dl-", dir=audio_dir) as workdir:
        try:
            source = Path(download(ytid, Path(workdir)))
            if not source.is_file() or source.stat().st_size == 0:
                raise RuntimeError("the download produced no file")
            trim_audio(source, temp, start, end, sampling_rate)
            got = audio_duration(temp)
            if got < (end - start) - DURATION_TOLERANCE_S:
                raise RuntimeError(
                    f"clip too short: {got:.2f} s of the {end - start:.2f} s in [{start:g}, {end:g}] "
                    "(the video is shorter than end_s)"
                )
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
    return final


def _clean_stale_temps(audio_dir: Path) -> None:
    """Remove what a killed run left: hidden `.<ytid>.part*` files and download folders."""
    for entry in audio_dir.iterdir():
        if entry.name.startswith(".") and TEMP_MARK in entry.name:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def prepare_musiccaps(
    csv_path: str | os.PathLike,
    audio_dir: str | os.PathLike,
    limit: int | None = None,
    jobs: int = 1,
    retry_failed: bool = False,
    download: Downloader | None = None,
    audio_format: str = "wav",
    sampling_rate: int | None = None,
) -> PrepareReport:
    """Fetch the MusicCaps clips that `audio_dir` lacks (see the module docstring).

    Args:
        csv_path: `musiccaps-public.csv`.
        audio_dir: where clips `<ytid>.<audio_format>` and `failed.csv` go; created if needed.
        limit: only the first `limit` rows of the csv (present ones included), e.g. for a small trial set.
        jobs: clips fetched in parallel (threads: the work is network and FFmpeg subprocesses).
        retry_failed: retry the ytids recorded in `failed.csv` instead of skipping them.
        download: `download(ytid, workdir) -> path of the downloaded audio` (the whole video's audio, or any file
            FFmpeg reads, covering `[start_s, end_s]`); yt-dlp (`youtube_download`) by default.
        audio_format: wav (16-bit PCM) or flac.
        sampling_rate: resample to this rate; None keeps the source's rate.
    """
    if audio_format not in ("wav", "flac"):
        raise ValueError(f"audio_format must be wav or flac, got {audio_format!r}")
    if download is None:
        _import_yt_dlp()
        download = youtube_download
    _require_ffmpeg()
    audio_dir = Path(audio_dir).absolute()
    audio_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(audio_dir)
    rows = read_musiccaps_csv(csv_path)
    if limit is not None:
        rows = rows[: max(0, int(limit))]
    present = find_clips(audio_dir)
    failures = read_failures(audio_dir)
    report = PrepareReport()
    todo = []
    for row in rows:
        ytid = row["ytid"]
        if ytid in present:
            report.existing.append(ytid)
        elif ytid in failures and not retry_failed:
            report.skipped_failed.append(ytid)
        else:
            todo.append(row)
    logger.info(
        "MusicCaps: %d rows, %d present, %d skipped as failed before, %d to fetch",
        len(rows), len(report.existing), len(report.skipped_failed), len(todo),
    )

    def record(ytid: str, error: BaseException | None) -> None:
        if error is None:
            report.downloaded.append(ytid)
            if failures.pop(ytid, None) is not None:
                _write_failures(audio_dir, failures)
        else:
            reason = _reason(error)
            logger.warning("MusicCaps %s failed: %s", ytid, reason)
            report.failed[ytid] = failures[ytid] = reason
            _write_failures(audio_dir, failures)

    def one(row: dict) -> None:
        fetch_clip(row, audio_dir, download, audio_format, sampling_rate)

    if jobs <= 1:
        for n, row in enumerate(todo, 1):
            try:
                one(row)
            except Exception as error:  # KeyboardInterrupt and friends stop the run; the clip is not recorded
                record(row["ytid"], error)
            else:
                record(row["ytid"], None)
            if n % 50 == 0:
                logger.info("MusicCaps: %d of %d fetched (%s)", n, len(todo), report.summary())
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(one, row): row["ytid"] for row in todo}
            try:
                for n, future in enumerate(as_completed(futures), 1):
                    error = future.exception()
                    if error is not None and not isinstance(error, Exception):
                        raise error
                    record(futures[future], error)
                    if n % 50 == 0:
                        logger.info("MusicCaps: %d of %d fetched (%s)", n, len(todo), report.summary())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    logger.info("MusicCaps prepare: %s", report.summary())
    return report


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_audiocap.data.musiccaps", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="Download and trim the clips listed in musiccaps-public.csv.")
    prepare.add_argument("--csv", required=True, help="musiccaps-public.csv")
    prepare.add_argument("--audio_dir", required=True, help="Folder of <ytid>.<ext> clips (and failed.csv).")
    prepare.add_argument("--limit", type=int, default=None, help="Only the first N rows of the csv.")
    prepare.add_argument("--jobs", type=int, default=4, help="Clips fetched in parallel.")
    prepare.add_argument("--retry_failed", action="store_true", help="Retry the ytids listed in failed.csv.")
    prepare.add_argument("--format", dest="audio_format", choices=("wav", "flac"), default="wav")
    prepare.add_argument("--sampling_rate", type=int, default=None, help="Resample clips (default: keep).")
    args = parser.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = prepare_musiccaps(
            args.csv, args.audio_dir, limit=args.limit, jobs=args.jobs, retry_failed=args.retry_failed,
            audio_format=args.audio_format, sampling_rate=args.sampling_rate,
        )
    except (ImportError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


__all__ = [
    "PrepareReport",
    "assign_splits",
    "audio_duration",
    "fetch_clip",
    "find_clips",
    "load_musiccaps",
    "prepare_musiccaps",
    "read_failures",
    "read_musiccaps_csv",
    "trim_audio",
    "youtube_download",
]

if __name__ == "__main__":
    sys.exit(main())
