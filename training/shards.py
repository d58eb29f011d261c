"""A cache that scales: sources (avsdk.training.ingest) -> WebDataset tar shards, in parallel,
resumable after a kill.

    python -m avsdk.training.shards --videos clips/ --labels labels.csv --pairs-per-video 3 \\
        --out shards/ --workers 8
    python -m avsdk.training.shards --manifest pairs.jsonl --out shards/
    python -m avsdk.training.shards --benchmark data/realparts --split train --out shards/

Each shard ``shard-000012.tar`` holds the pairs of ``shard_size`` consecutive sources, one
WebDataset sample per pair (key "00000012_1": source 12, pair 1):

    <key>.jpg or <key>.frame.npy    the frame at the training size: the uint8 pixels that
                                     avsdk.frames normalises (the model's transform and size)
    <key>.log_mel.npy | .waveform.npy  the model's audio input (avsdk.preprocess.audio_array)
      or <key>.clip.npy              with --audio clip: the heard window, float32 16 kHz mono
    <key>.mask.png                   the source's mask file, as it is (when it has one)
    <key>.json                       origin, label, time, window, level_db, size [h, w], box

A shard is written under a temporary name and renamed when whole; its sidecar
``shard-000012.json`` (pairs written, items skipped and why, seconds) is renamed last, and is
what marks the shard complete. A rerun skips complete shards and redoes the others, so a
killed run loses at most the shards in flight. ``plan.json`` holds the settings and a digest
of the sources: a rerun with other ones is refused (``overwrite`` starts over). Tars are
byte-for-byte reproducible (fixed mtime and owner), whatever the number of workers. A worker
that dies (a crash in a decoder, the OOM killer) costs only its own shard: the shards of the
broken pool are written again, each in a process of its own; one that dies again is listed in
the summary's ``failed_shards`` for a rerun. Processes that write shards end with the run's
process (Linux), so a killed run leaves none behind.

A source that hangs is skipped as "timeout", at two levels. ``item_timeout`` (default 60 s) is
the soft limit: a SIGALRM timer raises in the reading thread, the source is skipped and the
shard goes on. It needs the main thread (a worker process always reads in its main thread; a
call from another thread has no soft limit) and code that returns to the interpreter. A hang in
C code that does not return meets the hard limit, ``item_timeout + max(2, item_timeout / 2)``:
faulthandler's watchdog (a C thread) writes the stacks to ``shard-000012.watch``, after the
source's key, and ends the process. The next attempt at the shard, in a process of its own,
appends that source to ``shard-000012.hung`` and skips the sources listed there. With a time
limit, even ``workers=1`` writes in a child process, so that the hard limit never ends the
caller's process; without one (``item_timeout=None``), workers=1 writes in this process. The
limit is not part of plan.json: a rerun may change it.
``summary.json`` counts the pairs and the skipped items by reason; ``skipped.jsonl`` lists them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from avsdk._atomic import write_atomic
from avsdk.cli import command, flags, output_folder
from avsdk.errors import bad_input

from . import hangs
from .ingest import REASONS, ReadOptions, Skipped, Source, finite_number, read_pairs

log = logging.getLogger(__name__)
PLAN_FORMAT, PLAN_VERSION = "avsdk.shards", 1
FRAME_FORMATS = ("jpeg", "npy")
AUDIO_STORES = ("model", "clip")
GRACE_SECONDS = 2.0  # the hard limit is item_timeout + max(GRACE_SECONDS, item_timeout / 2)


@dataclass(frozen=True)
class ShardConfig:
    """How pairs are stored; ``read`` says how sources become pairs (and holds the model's
    Preprocessing: frame transform and size, audio input)."""

    read: ReadOptions = field(default_factory=ReadOptions)
    shard_size: int = 1000  # sources per shard: ~90 MB of 224 px JPEG + log-mel pairs
    frame: str = "jpeg"  # "jpeg" | "npy" (uint8, lossless, ~2x the bytes)
    jpeg_quality: int = 90
    audio: str = "model"  # "model": the model's audio input; "clip": the 16 kHz heard window
    # seconds one source may take (read and encode) before it is skipped as "timeout"; None: no
    # limit. Not part of plan.json: it decides which items are skipped, not the bytes of a pair
    item_timeout: float | None = 60.0

    def __post_init__(self):
        if self.frame not in FRAME_FORMATS:
            raise bad_input("frame", f"one of {FRAME_FORMATS}", self.frame)
        if self.audio not in AUDIO_STORES:
            raise bad_input("audio", f"one of {AUDIO_STORES}", self.audio)
        from avsdk.frames import TRANSFORMS

        prep = self.read.preprocessing
        if prep.transform not in TRANSFORMS:
            raise bad_input("transform", f"one of {TRANSFORMS}", prep.transform)
        if isinstance(prep.image_size, bool) or not isinstance(prep.image_size, int) or prep.image_size < 1:
            raise bad_input("image_size", "a positive int", prep.image_size)
        prep.audio_spec()  # an audio input that does not exist, or log-mel at another rate than 16 kHz
        for name, low, high in (("shard_size", 1, None), ("jpeg_quality", 1, 100)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                raise bad_input(name, f"an int in [{low}, {high or 'inf'}]", value)
        if self.item_timeout is not None and not (finite_number(self.item_timeout) and self.item_timeout > 0):
            raise bad_input("item_timeout", "seconds > 0, or None for no limit", self.item_timeout)

    @property
    def hard_timeout(self) -> float | None:
        """Seconds after which a process that write_shards started ends itself when a source has
        not finished (the soft limit could not interrupt it); None: no limit."""
        if self.item_timeout is None:
            return None
        return self.item_timeout + max(GRACE_SECONDS, self.item_timeout / 2)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["read"]["preprocessing"] = self.read.preprocessing.to_json()
        data["read"]["times"] = list(self.read.times)
        return data


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def write_shards(sources: Sequence[Source], out: str | os.PathLike, config: ShardConfig = ShardConfig(),
                 workers: int = 1, overwrite: bool = False, progress: bool = True) -> dict:
    """Write (or finish writing) the shards of ``sources`` into ``out``; returns the summary.

    Args:
        workers: processes that write shards side by side (1 with ``config.item_timeout`` None:
            in this process; 1 with a time limit: in one child process, so that the hard limit
            can end it, see the module docstring). Child processes are spawned: a script that
            calls this needs ``if __name__ == "__main__":``.
        overwrite: start over in an ``out`` that holds shards of other sources or settings.
    Raises:
        InputError: naming ``out`` (holds another plan) or ``workers``.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise bad_input("workers", "an int >= 1", workers)
    out = Path(out)
    count = -(-len(sources) // config.shard_size)
    _check_plan(out, sources, config, count, overwrite)
    for stale in list(out.glob("*.partial")) + list(out.glob(".shard-*.tmp")):  # a killed run's
        stale.unlink()
    chunks = {i: list(sources[i * config.shard_size : (i + 1) * config.shard_size]) for i in range(count)}
    done = {i for i in chunks if _complete(out, i)}
    pending = [i for i in chunks if i not in done]
    started = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sources), initial=sum(len(chunks[i]) for i in done), unit="source", desc="shards")
    failed = _run(out, chunks, pending, config, workers, bar)
    if bar is not None:
        bar.close()
    return _summarise(out, count, len(sources), len(pending) - len(failed), failed, time.perf_counter() - started,
                      config.item_timeout)


def _check_plan(out: Path, sources, config: ShardConfig, count: int, overwrite: bool) -> None:
    """Write plan.json, or check that the one in ``out`` is this run's (a resume)."""
    digest = hashlib.sha256(json.dumps([dataclasses.asdict(s) for s in sources]).encode()).hexdigest()
    settings = config.to_json()
    # the time limit decides which slow items are skipped, not the bytes of a written pair: a
    # rerun may change it (and the plans of runs before it existed still match)
    del settings["item_timeout"]
    plan = {"format": PLAN_FORMAT, "version": PLAN_VERSION, "config": settings, "sources": len(sources),
            "sources_sha256": digest, "shards": count}
    path = out / "plan.json"
    if path.is_file() and not overwrite:
        try:
            held = json.loads(path.read_text())
        except ValueError:
            held = None
        if held == json.loads(json.dumps(plan)):
            return
        raise bad_input("out", "an empty folder, the folder of this run (same sources and settings) to resume, "
                        "or overwrite to start over", f"{str(out)!r}, which holds shards of other sources or "
                        "settings", described=True)
    if overwrite and out.is_dir():
        for old in [*out.glob("shard-*.tar"), *out.glob("shard-*.json"), *out.glob("shard-*.hung"),
                    *out.glob("shard-*.watch"), out / "summary.json", out / "skipped.jsonl"]:
            old.unlink(missing_ok=True)
        if (out / "features").is_dir():  # the fast mode's feature caches of the old shards (training.feature_cache)
            import shutil

            log.info("removing %s: the feature caches of the shards written over", out / "features")
            shutil.rmtree(out / "features")
    text = json.dumps(plan, indent=1).encode()
    write_atomic(path, lambda handle: handle.write(text))


def _complete(out: Path, index: int) -> bool:
    return (out / f"{shard_name(index)}.json").is_file() and (out / f"{shard_name(index)}.tar").is_file()


def _run(out: Path, chunks: dict, pending: list, config: ShardConfig, workers: int, bar) -> dict:
    """Write the ``pending`` shards; returns {shard index: why} for those whose process died."""
    if workers == 1 and config.item_timeout is None:
        for i in pending:
            _finished(write_shard(out, i, chunks[i], config), bar)
        return {}
    if not pending:
        return {}
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    broken = []
    # spawn, not fork: FFmpeg's and soxr's threads do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(write_shard, out, i, chunks[i], config, own_process=True): i for i in pending}
        for future in as_completed(futures):
            try:
                _finished(future.result(), bar)
            except BrokenProcessPool:  # a worker died (a crash in a decoder, the OOM killer): all pending fail
                broken.append(futures[future])
    if broken:
        log.error("a worker process died; %d shard(s) are written again, each in a process of its own", len(broken))
    return _isolated(out, chunks, sorted(broken), config, workers, bar)


def _isolated(out: Path, chunks: dict, shards: list, config: ShardConfig, workers: int, bar) -> dict:
    """Write ``shards`` each in a process of its own, ``workers`` at a time, so that a shard that
    kills its process takes only itself down; returns {index: why} of those that died. A shard
    whose process a hung source ended is written again at once: the next attempt skips it."""
    from multiprocessing import get_context
    from multiprocessing.connection import wait

    context, queue, running, failed = get_context("spawn"), list(shards), {}, {}
    attempts = dict.fromkeys(shards, 0)
    while queue or running:
        while queue and len(running) < workers:
            i = queue.pop(0)
            attempts[i] += 1
            running[i] = context.Process(target=write_shard, args=(out, i, chunks[i], config),
                                         kwargs={"own_process": True})
            running[i].start()
        wait([process.sentinel for process in running.values()])
        for i, process in list(running.items()):
            if process.exitcode is None:
                continue
            del running[i]
            if process.exitcode == 0 and _complete(out, i):
                _finished(json.loads((out / f"{shard_name(i)}.json").read_text()), bar)
            elif (hang := hangs.watched_hang(out / f"{shard_name(i)}.watch")) and attempts[i] <= len(chunks[i]):
                # each attempt records one more hung source and skips the recorded ones: it ends
                log.error("%s: %s (%s) gave no result after %g s; its process was ended, the shard is written "
                          "again without it", shard_name(i), hang["key"], hang["origin"], hang["seconds"])
                queue.append(i)
            else:
                failed[i] = f"its process exited with status {process.exitcode}"
                log.error("%s: %s; the other shards are written, a rerun tries it again", shard_name(i), failed[i])
    return failed


def _finished(sidecar: dict, bar) -> None:
    for item in sidecar["skipped"]:
        log.warning("skipped %s (%s): %s: %s", item["key"], item["origin"], item["reason"], item["message"])
    if bar is not None:
        bar.update(sidecar["sources"])


def write_shard(out: Path, index: int, sources: Sequence[Source], config: ShardConfig,
                own_process: bool = False) -> dict:
    """Write one shard (see the module docstring) and its sidecar; returns the sidecar.

    ``own_process``: this is a process that write_shards started for shards. Only there does a
    source that outlives ``config.hard_timeout`` end the process (the soft limit,
    ``config.item_timeout``, applies in the main thread of any process).
    """
    name = shard_name(index)
    started = time.perf_counter()
    partial = out / f"{name}.tar.partial"
    skipped, written = [], 0
    if own_process:
        hangs.end_with_parent()
    hung = hangs.hung_sources(out, name)
    watch = hangs.Watch(out / f"{name}.watch", config.hard_timeout) if own_process and config.hard_timeout else None
    if config.item_timeout is not None:
        hangs.import_readers()  # the time limit is for reading a source, not for a process's first imports
    try:
        with open(partial, "wb") as handle:
            # the WebDataset layout is plain tar, written here with the standard library (webdataset
            # itself imports torch, a second per worker process); USTAR as webdataset's own writer
            with tarfile.open(fileobj=handle, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
                for source in sources:
                    for item in _source_samples(source, config, hung.get(source.key), watch):
                        if isinstance(item, Skipped):
                            skipped.append(item.to_json())
                        else:
                            _add(tar, item)
                            written += 1
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if watch is not None:
            watch.close()
    os.replace(partial, out / f"{name}.tar")
    sidecar = {"shard": f"{name}.tar", "pairs": written, "sources": len(sources), "skipped": skipped,
               "seconds": round(time.perf_counter() - started, 3)}
    text = json.dumps(sidecar, indent=1).encode()
    write_atomic(out / f"{name}.json", lambda handle: handle.write(text))  # last: the shard is complete
    return sidecar


def _source_samples(source: Source, config: ShardConfig, hung: dict | None, watch: hangs.Watch | None) -> list:
    """The WebDataset samples of one source's pairs, and a Skipped for each item that is none;
    one Skipped "timeout" for the whole source when it takes longer than ``config.item_timeout``,
    or when ``hung`` records that it outlived the hard limit in an earlier attempt."""
    if hung is not None:
        return [Skipped(source.key, source.origin, "timeout", f"no result after {hung['seconds']:g} s; the process "
                        "reading it was ended and the shard written again without it")]
    if watch is not None:
        watch.arm(source)
    try:
        return hangs.within(config.item_timeout, lambda: _samples(source, config))
    except hangs.TimedOut:
        return [Skipped(source.key, source.origin, "timeout", f"no result after {config.item_timeout:g} s")]
    finally:
        if watch is not None:
            watch.disarm()


def _samples(source: Source, config: ShardConfig) -> list:
    items = []
    for item in read_pairs(source, config.read):
        if not isinstance(item, Skipped):
            try:
                item = encode(item, config)
            except Exception as exc:  # noqa: BLE001 - one item must never end a run of many
                item = Skipped(item.key, item.origin, "error", f"{type(exc).__name__}: {exc}")
        items.append(item)
    return items


def _add(tar, sample: dict) -> None:
    """The files <key>.<extension> of one sample, in extension order, with a fixed mtime and
    owner: the same pairs give the same bytes, in any run and any worker."""
    key = sample["__key__"]
    for extension in sorted(k for k in sample if k != "__key__"):
        data = sample[extension]
        info = tarfile.TarInfo(f"{key}.{extension}")
        info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o444, "avsdk", "avsdk"
        tar.addfile(info, io.BytesIO(data))


def encode(pair, config: ShardConfig) -> dict:
    """One pair as a WebDataset sample {"__key__": key, extension: bytes}."""
    from PIL import Image

    prep = config.read.preprocessing
    pixels = training_pixels(pair.frame, prep.transform, prep.image_size)
    sample = {"__key__": pair.key}
    if config.frame == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=config.jpeg_quality)
        sample["jpg"] = buffer.getvalue()
    else:
        sample["frame.npy"] = _npy(pixels)
    if config.audio == "model":
        sample[f"{prep.audio}.npy"] = _npy(pair.heard.astype(np.float32))
    else:
        sample["clip.npy"] = _npy(pair.clip.astype(np.float32))
    if pair.mask is not None:
        sample["mask.png"] = Path(pair.mask).read_bytes()
    meta = {"key": pair.key, "origin": pair.origin, "label": pair.label, "time": pair.time,
            "window": list(pair.window), "level_db": round(pair.level_db, 4), "size": list(pair.frame.shape[:2]),
            "box": None if pair.box is None else list(pair.box)}
    sample["json"] = json.dumps(meta, sort_keys=True).encode()
    return sample


def training_pixels(frame: np.ndarray, transform: str, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: ``frame`` [H, W, 3] resized as avsdk.frames does it before it
    normalises (so ``(pixels / 255 - mean) / std`` is the model's frame input)."""
    from PIL import Image

    from avsdk.frames import crop_centre, resize_shorter_side  # the very resize of frame_input

    image = Image.fromarray(frame)
    if transform == "stretch":
        image = image.resize((size, size), Image.BICUBIC)
    else:
        image = crop_centre(resize_shorter_side(image, size), size)
    return np.asarray(image, dtype=np.uint8)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _summarise(out: Path, count: int, sources: int, written: int, failed: dict, seconds: float,
               item_timeout: float | None) -> dict:
    """summary.json and skipped.jsonl from every complete shard's sidecar; returns the summary."""
    pairs, skipped, shard_seconds = 0, [], 0.0
    for i in range(count):
        if _complete(out, i):
            sidecar = json.loads((out / f"{shard_name(i)}.json").read_text())
            pairs += sidecar["pairs"]
            skipped += sidecar["skipped"]
            shard_seconds += sidecar["seconds"]
    reasons = {reason: n for reason in REASONS if (n := sum(s["reason"] == reason for s in skipped))}
    summary = {"sources": sources, "shards": count, "complete_shards": count - len(failed),
               "written_this_run": written, "failed_shards": {shard_name(i): why for i, why in failed.items()},
               "pairs": pairs, "skipped": len(skipped), "skipped_by_reason": reasons,
               "seconds_this_run": round(seconds, 2), "item_timeout": item_timeout,
               # worker-seconds per source, from the sidecars: what sizes a bigger run
               "worker_seconds_per_source": round(shard_seconds / max(1, sources), 5)}
    lines = "".join(json.dumps(s) + "\n" for s in skipped).encode()
    write_atomic(out / "skipped.jsonl", lambda handle: handle.write(lines))
    text = json.dumps(summary, indent=1).encode()
    write_atomic(out / "summary.json", lambda handle: handle.write(text))
    return summary


def _seconds_or_none(text: str) -> float | None:
    """--item-timeout: seconds, or None for 0 and "none" (ShardConfig checks the rest)."""
    import argparse

    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, 0 or none, received {text!r}") from None
    return None if value == 0 else value


def parse_args(argv=None):
    import argparse

    from avsdk.frames import TRANSFORMS

    p = argparse.ArgumentParser(prog="python -m avsdk.training.shards", description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", help="a folder of videos (nested; anything FFmpeg opens)")
    source.add_argument("--manifest", help="a CSV or JSON Lines manifest (avsdk.training.ingest)")
    source.add_argument("--benchmark", help="a built real-parts benchmark (with --split)")
    p.add_argument("--labels", help="with --videos: a CSV of path,label")
    p.add_argument("--split", default="train", help="with --benchmark: the split (default train)")
    p.add_argument("--out", required=True, help="the folder of the shards")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--pairs-per-video", type=int, default=1, help="evenly spaced pairs per video (default 1)")
    when.add_argument("--times", type=float, nargs="+", default=(), help="seconds into each video, instead")
    p.add_argument("--shard-size", type=int, default=ShardConfig.shard_size, help="sources per shard")
    p.add_argument("--workers", type=int, default=1, help="processes writing shards side by side")
    p.add_argument("--frame", choices=FRAME_FORMATS, default="jpeg")
    p.add_argument("--jpeg-quality", type=int, default=ShardConfig.jpeg_quality)
    p.add_argument("--image-size", type=int, default=224, help="frames are stored at this size (the model's)")
    p.add_argument("--transform", choices=TRANSFORMS, default="stretch", help="the model's frame transform")
    p.add_argument("--audio", choices=AUDIO_STORES, default="model",
                   help="model: the model's audio input; clip: the 16 kHz heard window")
    p.add_argument("--audio-input", choices=("log_mel", "waveform"), default="log_mel",
                   help="the model's audio input (avsdk.preprocess)")
    p.add_argument("--audio-rate", type=int, default=16000, help="its sample rate (SoundNet's waveform: 22050)")
    p.add_argument("--min-sound", type=float, default=ReadOptions.min_sound_seconds,
                   help="seconds of sound around a frame below which a pair is skipped")
    p.add_argument("--silence-db", type=float, default=ReadOptions.silence_db,
                   help="RMS level (dBFS) below which a heard window is skipped as silent")
    p.add_argument("--item-timeout", type=_seconds_or_none, default=ShardConfig.item_timeout, metavar="SECONDS",
                   help="seconds one source may take before it is skipped as 'timeout' (default %(default)g; "
                        "0 or none: no limit). A source still running after max(2, SECONDS/2) more seconds "
                        "ends its worker process, and the shard is written again without it")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that holds other shards")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


@command
def main(argv=None) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from avsdk.preprocess import Preprocessing

    from .ingest import benchmark_sources, read_manifest, video_folder

    args = parse_args(argv)
    output_folder("--out", args.out)
    names = {"folder": "--videos", "labels": "--labels", "manifest": "--manifest", "root": "--benchmark",
             "split": "--split", "out": "--out", "workers": "--workers", "shard_size": "--shard-size",
             "pairs_per_video": "--pairs-per-video", "times": "--times", "jpeg_quality": "--jpeg-quality",
             "image_size": "--image-size", "sample_rate": "--audio-rate", "min_sound_seconds": "--min-sound",
             "silence_db": "--silence-db", "item_timeout": "--item-timeout"}
    with flags(names):
        prep = Preprocessing(sample_rate=args.audio_rate, audio=args.audio_input, image_size=args.image_size,
                             transform=args.transform)
        read = ReadOptions(pairs_per_video=args.pairs_per_video, times=tuple(args.times), preprocessing=prep,
                           min_sound_seconds=args.min_sound, silence_db=args.silence_db)
        config = ShardConfig(read=read, shard_size=args.shard_size, frame=args.frame,
                             jpeg_quality=args.jpeg_quality, audio=args.audio, item_timeout=args.item_timeout)
        if args.videos:
            sources = video_folder(args.videos, args.labels)
        elif args.manifest:
            sources = read_manifest(args.manifest)
        else:
            sources = benchmark_sources(args.benchmark, args.split)
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        with logging_redirect_tqdm():  # skipped items are logged above the progress bar
            summary = write_shards(sources, args.out, config, workers=args.workers, overwrite=args.overwrite,
                                   progress=not args.no_progress)
    print(json.dumps(summary, indent=1))
    return 1 if summary["failed_shards"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
