"""Data in: folders of videos and manifests -> (frame, 3 s of sound) pairs; bad items are skipped.

    sources = video_folder("clips/", labels="labels.csv")     # every video under clips/, nested
    sources = read_manifest("pairs.csv")                       # or pairs.jsonl, one row a source
    sources = benchmark_sources("data/realparts", "train")     # a built real-parts split
    for pair in read_pairs(sources[0], ReadOptions(pairs_per_video=3)):
        pair.frame, pair.heard    # uint8 [H, W, 3]; the model's audio input (avsdk.preprocess)
        # or a Skipped: pair.reason (a key of REASONS) and pair.message

A source is one video (from which ``pairs_per_video`` evenly spaced pairs, or the pairs at
``times``, are taken) or one manifest row: a frame image and a sound file, or a video and a time,
each with an optional class label, box (x0, y0, x1, y1 in the frame's pixels) and mask (a PNG).

A manifest is CSV with a header, or JSON Lines, with the columns ``image`` and ``audio`` or
``video`` (and ``time``), optionally ``start`` (seconds into the sound file where the heard window
begins; empty: its centre, as avsdk.preprocess), ``label``, ``box`` ("x0 y0 x1 y1" in CSV, a list
in JSON) and ``mask``. Relative paths are relative to the manifest's folder.

Nothing that one item holds stops a run: read_pairs turns every failure into a Skipped with a
reason, so that a preprocessing run reaches item 93,000 and reports the counts at the end.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from avsdk.errors import InputError, bad_input
from avsdk.preprocess import Preprocessing

# what a run skips, and why; the keys are what summaries count
REASONS = {
    "missing_file": "a file the source names does not exist",
    "undecodable": "FFmpeg cannot open or decode the video",
    "no_picture": "the video has no picture stream",
    "no_sound_track": "the video has no sound track",
    "unreadable_image": "the frame image cannot be read",
    "unreadable_audio": "the sound file cannot be read",
    "too_short": "less sound around the frame than min_sound_seconds",
    "silent": "the heard window is quieter than silence_db",
    "time_outside": "a requested time lies outside the video",
    "unlabelled": "a labels file was given and does not name this video",
    "bad_row": "a manifest row without the columns a source needs, or with unreadable values",
    "timeout": "reading the source took longer than the time limit (avsdk.training.shards item_timeout)",
    "error": "anything else (the message says what)",
}
# the containers FFmpeg reads that a folder of videos usually holds
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".mts", ".mpg", ".mpeg",
                  ".ogv", ".3gp", ".wmv")


def finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Source:
    """One video, or one manifest row: what read_pairs turns into pairs."""

    key: str  # unique within a listing and free of dots (WebDataset splits names at the first one)
    origin: str  # what a person finds it by: the video's path under the folder, or "manifest.csv:12"
    video: str | None = None
    times: tuple[float, ...] | None = None  # seconds; None: ReadOptions decides
    image: str | None = None
    audio: str | None = None
    start: float | None = None  # seconds into ``audio`` where the heard window begins (None: centre)
    label: str | None = None
    box: tuple[int, int, int, int] | None = None
    mask: str | None = None
    problem: str | None = None  # "reason: message" for a row found bad while listing


@dataclass(frozen=True)
class ReadOptions:
    """How sources become pairs."""

    pairs_per_video: int = 1  # evenly spaced: at (k + 0.5) / n of the video's length
    times: tuple[float, ...] = ()  # seconds; when given, these instead of evenly spaced pairs
    preprocessing: Preprocessing = Preprocessing()  # the model's: clip length and audio input
    min_sound_seconds: float = 1.0  # less sound than this around a frame is "too_short" (shorter is tiled)
    silence_db: float = -60.0  # a heard window whose RMS level is below this is "silent"

    def __post_init__(self):
        if isinstance(self.pairs_per_video, bool) or not isinstance(self.pairs_per_video, int) \
                or self.pairs_per_video < 1:
            raise bad_input("pairs_per_video", "an int >= 1", self.pairs_per_video)
        if not all(finite_number(t) and t >= 0 for t in self.times):
            raise bad_input("times", "seconds >= 0", self.times)
        if not (finite_number(self.min_sound_seconds) and self.min_sound_seconds >= 0):
            raise bad_input("min_sound_seconds", "seconds >= 0", self.min_sound_seconds)
        if not finite_number(self.silence_db):
            raise bad_input("silence_db", "a finite level in dBFS", self.silence_db)


@dataclass(frozen=True)
class Pair:
    """One (frame, sound) pair, ready to store."""

    key: str  # the source's key and the pair's index: "00000012_1"
    origin: str
    frame: np.ndarray  # uint8 [H, W, 3] as read
    heard: np.ndarray  # float32, the model's audio input (avsdk.preprocess.audio_array)
    clip: np.ndarray  # [round(clip_seconds * 16000)], the heard window, mono 16 kHz, not rescaled
    window: tuple[float, float]  # seconds of the sound that were heard
    time: float | None  # seconds into the video of the frame (None: an image)
    level_db: float
    label: str | None
    box: tuple[int, int, int, int] | None
    mask: str | None


@dataclass(frozen=True)
class Skipped:
    key: str
    origin: str
    reason: str  # a key of REASONS
    message: str

    def to_json(self) -> dict:
        return {"key": self.key, "origin": self.origin, "reason": self.reason, "message": self.message}


# ----------------------------------------------------------------------------- listing
def video_folder(folder: str | os.PathLike, labels: str | os.PathLike | None = None,
                 suffixes: Sequence[str] = VIDEO_SUFFIXES) -> list[Source]:
    """Every file ending in one of ``suffixes`` under ``folder`` (nested), in path order.

    ``labels``: a CSV with a header holding ``path`` (the video's path under ``folder``, or its
    name without the suffix) and ``label``; a video it does not name is skipped as "unlabelled".

    Raises:
        InputError: naming ``folder`` (not a folder) or ``labels`` (unreadable, without the columns).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise bad_input("folder", "a folder of videos", str(folder))
    wanted = tuple(s.lower() for s in suffixes)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in wanted and p.is_file())
    names = _labels(labels) if labels is not None else None
    sources = []
    for index, path in enumerate(paths):
        relative = path.relative_to(folder).as_posix()
        label = problem = None
        if names is not None:
            label = names.get(relative, names.get(relative.rsplit(".", 1)[0]))
            if label is None:
                problem = f"unlabelled: {Path(labels).name} does not name it"
        sources.append(Source(key=f"{index:08d}", origin=relative, video=str(path), label=label, problem=problem))
    return sources


def _labels(path) -> dict[str, str]:
    rows = _read_csv(Path(path), "labels")
    if rows and not {"path", "label"} <= set(rows[0]):
        raise bad_input("labels", "a CSV with the columns path and label", f"{path} (columns {list(rows[0])})",
                        described=True)
    return {row["path"].strip(): row["label"].strip() for row in rows if row.get("path") and row.get("label")}


def read_manifest(path: str | os.PathLike) -> list[Source]:
    """The sources of a manifest (CSV with a header, or JSON Lines for ``.jsonl``), in row order;
    a bad row is a source with a ``problem`` (skipped as "bad_row", or "missing_file"), not an error.

    Raises:
        InputError: naming ``manifest``: missing or unreadable file, a CSV without a header.
    """
    path = Path(path)
    if not path.is_file():
        raise bad_input("manifest", "an existing CSV or JSON Lines file", str(path))
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    row = {"__problem__": f"bad_row: not JSON ({exc})"}
                rows.append((number, row if isinstance(row, dict) else {"__problem__": "bad_row: not an object"}))
    else:
        rows = list(enumerate(_read_csv(path, "manifest"), 2))  # line 1 is the header
    return [_row_source(f"{index:08d}", f"{path.name}:{number}", row, path.parent)
            for index, (number, row) in enumerate(rows)]


def _read_csv(path: Path, argument: str) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise bad_input(argument, "a readable CSV file with a header", f"{path} ({exc})", described=True) from exc
    return rows


def _row_source(key: str, origin: str, row: dict, base: Path) -> Source:
    """A manifest row as a Source; what is wrong with it goes into ``problem``."""
    if "__problem__" in row:
        return Source(key, origin, problem=row["__problem__"])
    value = lambda name: None if row.get(name) in (None, "") else row[name]  # noqa: E731
    try:
        video, image, audio = value("video"), value("image"), value("audio")
        if video is None and (image is None or audio is None):
            raise ValueError("needs image and audio, or video")
        if video is not None and (image is not None or audio is not None):
            raise ValueError("has both a video and an image or audio file")
        times = None if value("time") is None else tuple(_numbers(row["time"], "time"))
        start = None if value("start") is None else float(row["start"])
        box = None if value("box") is None else tuple(int(round(v)) for v in _numbers(row["box"], "box"))
        if box is not None and len(box) != 4:
            raise ValueError(f"box {row['box']!r} is not x0 y0 x1 y1")
        label = None if value("label") is None else str(row["label"])
    except (ValueError, TypeError) as exc:
        return Source(key, origin, problem=f"bad_row: {exc}")
    where = lambda p: None if p is None else str(base / p)  # noqa: E731 (absolute paths stay absolute)
    return Source(key, origin, video=where(video), times=times, image=where(image), audio=where(audio),
                  start=start, label=label, box=box, mask=where(value("mask")))


def _numbers(value, name: str) -> list[float]:
    """Numbers from a JSON number or list, or a string "1 2 3" / "1,2,3"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = [float(value)]
    elif isinstance(value, (list, tuple)):
        values = [float(v) for v in value]
    else:
        values = [float(v) for v in str(value).replace(",", " ").replace(";", " ").split()]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} {value!r} is not finite numbers")
    return values


def benchmark_sources(root: str | os.PathLike, split: str) -> list[Source]:
    """The samples of a built real-parts benchmark split as sources (image, audio, label, box,
    mask), keyed by their index."""
    from avsdk.datasets import load_split

    return [Source(key=f"{index:08d}", origin=s.id, image=str(s.image), audio=str(s.audio), label=s.label,
                   box=s.box, mask=None if s.mask is None else str(s.mask))
            for index, s in enumerate(load_split(root, split))]


# ----------------------------------------------------------------------------- reading
def read_pairs(source: Source, options: ReadOptions = ReadOptions()) -> Iterator[Pair | Skipped]:
    """The pairs of one source, or a Skipped for each one that cannot be made (never raises
    for what the files hold: any exception becomes a Skipped with reason "error")."""
    if source.problem is not None:
        reason, _, message = source.problem.partition(": ")
        yield Skipped(source.key, source.origin, reason, message)
        return
    try:
        yield from (_video_pairs if source.video is not None else _image_pair)(source, options)
    except Exception as exc:  # noqa: BLE001 - one item must never end a run of many
        yield Skipped(source.key, source.origin, "error", f"{type(exc).__name__}: {exc}")


def _image_pair(source: Source, options: ReadOptions) -> Iterator[Pair | Skipped]:
    from avsdk.audio import load_audio
    from avsdk.frames import load_frame

    key = source.key  # a skip of the whole source (its one pair would be key + "_0")
    for name in ("image", "audio", "mask"):
        path = getattr(source, name)
        if path is not None and not os.path.isfile(path):
            yield Skipped(key, source.origin, "missing_file", f"{name} {path}")
            return
    try:
        frame = load_frame(source.image)
    except InputError as exc:
        yield Skipped(key, source.origin, "unreadable_image", str(exc))
        return
    try:
        samples, rate = load_audio(source.audio)
    except InputError as exc:
        yield Skipped(key, source.origin, "unreadable_audio", str(exc))
        return
    yield _pair(source, 0, frame, samples, rate, source.start, None, 0.0, options)


def _video_pairs(source: Source, options: ReadOptions) -> Iterator[Pair | Skipped]:
    from avsdk.video import read_clip

    if not os.path.isfile(source.video):
        yield Skipped(source.key, source.origin, "missing_file", f"video {source.video}")
        return
    duration = _duration(source.video)
    if isinstance(duration, Skipped):
        yield Skipped(source.key, source.origin, duration.reason, duration.message)
        return
    clip_seconds = options.preprocessing.clip_seconds
    for index, time in enumerate(_times(source, options, duration)):
        key = f"{source.key}_{index}"
        if not 0.0 <= time <= duration:
            yield Skipped(key, source.origin, "time_outside", f"{time:g} s of a {duration:.3f} s video")
            continue
        try:
            clip = read_clip(source.video, time, clip_seconds=clip_seconds)
        except InputError as exc:
            # read_clip's words for a sound track that ends (or starts) far from the frame
            reason = "too_short" if "no audio samples there" in str(exc) else "undecodable"
            yield Skipped(key, source.origin, reason, str(exc))
            continue
        # read_clip's sound starts at time - clip/2, or at 0 near the start of the video
        offset = max(0.0, clip.time - clip_seconds / 2.0)
        yield _pair(source, index, clip.frame, clip.audio, clip.sample_rate, None, clip.time, offset, options)


def _pair(source: Source, index: int, frame: np.ndarray, samples: np.ndarray, rate: int, start: float | None,
          time: float | None, offset: float, options: ReadOptions) -> Pair | Skipped:
    """The pair of a frame and the sound around it (``offset``: where ``samples`` begin in the
    source's time), or a Skipped when that sound is too short or silent."""
    from avsdk.audio import MIN_SAMPLES_FRAME, SAMPLE_RATE
    from avsdk.preprocess import audio_array
    from avsdk.visibility import level_db

    key = f"{source.key}_{index}"
    seconds = len(samples) / rate
    if seconds < max(options.min_sound_seconds, MIN_SAMPLES_FRAME / SAMPLE_RATE):
        return Skipped(key, source.origin, "too_short", f"{seconds:.2f} s of sound")
    try:
        heard, clip, window = audio_array(samples, rate, options.preprocessing, start)
    except InputError as exc:
        return Skipped(key, source.origin, "unreadable_audio", str(exc))
    level = level_db(clip)
    if level < options.silence_db:
        return Skipped(key, source.origin, "silent", f"{level:.1f} dBFS < {options.silence_db:g}")
    return Pair(key=key, origin=source.origin, frame=frame, heard=np.asarray(heard, np.float32),
                clip=np.asarray(clip, np.float32), window=(offset + window[0], offset + window[1]), time=time,
                level_db=level, label=source.label, box=source.box, mask=source.mask)


def _duration(path: str) -> float | Skipped:
    """The video's length in seconds (avsdk.video's clock), or a Skipped saying what it lacks."""
    import av

    from avsdk.video import stream_span  # the clock read_clip's times are on

    try:
        with av.open(path) as container:
            video = next((s for s in container.streams if s.type == "video"), None)
            sound = next((s for s in container.streams if s.type == "audio"), None)
            if video is None:
                return Skipped("", "", "no_picture", path)
            if sound is None:
                return Skipped("", "", "no_sound_track", path)
            start, end = stream_span(container, (video, sound), av)
    except av.FFmpegError as exc:
        return Skipped("", "", "undecodable", f"{path} ({exc})")
    except InputError as exc:  # no duration
        return Skipped("", "", "undecodable", str(exc))
    return end - start


def _times(source: Source, options: ReadOptions, duration: float) -> tuple[float, ...]:
    if source.times is not None:
        return source.times
    if options.times:
        return options.times
    n = options.pairs_per_video
    return tuple(duration * (k + 0.5) / n for k in range(n))
