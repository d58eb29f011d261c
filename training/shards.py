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
the summary's ``failed_shards`` for a rerun.
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

from .ingest import REASONS, ReadOptions, Skipped, Source, read_pairs

log = logging.getLogger(__name__)
PLAN_FORMAT, PLAN_VERSION = "avsdk.shards", 1
FRAME_FORMATS = ("jpeg", "npy")
AUDIO_STORES = ("model", "clip")


@dataclass(frozen=True)
class ShardConfig:
    """How pairs are stored; ``read`` says how sources become pairs (and holds the model's
    Preprocessing: frame transform and size, audio input)."""

    read: ReadOptions = field(default_factory=ReadOptions)
    shard_size: int = 1000  # sources per shard: ~90 MB of 224 px JPEG + log-mel pairs
    frame: str = "jpeg"  # "jpeg" | "npy" (uint8, lossless, ~2x the bytes)
    jpeg_quality: int = 90
    audio: str = "model"  # "model": the model's audio input; "clip": the 16 kHz heard window

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
        workers: processes that write shards side by side (1: in this process).
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
    return _summarise(out, count, len(sources), len(pending) - len(failed), failed, time.perf_counter() - started)


def _check_plan(out: Path, sources, config: ShardConfig, count: int, overwrite: bool) -> None:
    """Write plan.json, or check that the one in ``out`` is this run's (a resume)."""
    digest = hashlib.sha256(json.dumps([dataclasses.asdict(s) for s in sources]).encode()).hexdigest()
    plan = {"format": PLAN_FORMAT, "version": PLAN_VERSION, "config": config.to_json(), "sources": len(sources),
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
        for old in [*out.glob("shard-*.tar"), *out.glob("shard-*.json"), out / "summary.json", out / "skipped.jsonl"]:
            old.unlink(missing_ok=True)
    text = json.dumps(plan, indent=1).encode()
    write_atomic(path, lambda handle: handle.write(text))


def _complete(out: Path, index: int) -> bool:
    return (out / f"{shard_name(index)}.json").is_file() and (out / f"{shard_name(index)}.tar").is_file()


def _run(out: Path, chunks: dict, pending: list, config: ShardConfig, workers: int, bar) -> dict:
    """Write the ``pending`` shards; returns {shard index: why} for those whose process died."""
    if workers == 1:
        for i in pending:
            _finished(write_shard(out, i, chunks[i], config), bar)
        return {}
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    broken = []
    # spawn, not fork: FFmpeg's and soxr's threads do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(write_shard, out, i, chunks[i], config): i for i in pending}
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
    kills its process takes only itself down; returns {index: why} of those that died."""
    from multiprocessing import get_context
    from multiprocessing.connection import wait

    context, queue, running, failed = get_context("spawn"), list(shards), {}, {}
    while queue or running:
        while queue and len(running) < workers:
            i = queue.pop(0)
            running[i] = context.Process(target=write_shard, args=(out, i, chunks[i], config))
            running[i].start()
        wait([process.sentinel for process in running.values()])
        for i, process in list(running.items()):
            if process.exitcode is None:
                continue
            del running[i]
            if process.exitcode == 0 and _complete(out, i):
                _finished(json.loads((out / f"{shard_name(i)}.json").read_text()), bar)
            else:
                failed[i] = f"its process exited with status {process.exitcode}"
                log.error("%s: %s; the other shards are written, a rerun tries it again", shard_name(i), failed[i])
    return failed


def _finished(sidecar: dict, bar) -> None:
    for item in sidecar["skipped"]:
        log.warning("skipped %s (%s): %s: %s", item["key"], item["origin"], item["reason"], item["message"])
    if bar is not None:
        bar.update(sidecar["sources"])


def write_shard(out: Path, index: int, sources: Sequence[Source], config: ShardConfig) -> dict:
    """Write one shard (see the module docstring) and its sidecar; returns the sidecar."""
    name = shard_name(index)
    started = time.perf_counter()
    partial = out / f"{name}.tar.partial"
    skipped, written = [], 0
    with open(partial, "wb") as handle:
        # the WebDataset layout is plain tar, written here with the standard library (webdataset
        # itself imports torch, a second per worker process); USTAR as webdataset's own writer
        with tarfile.open(fileobj=handle, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
            for source in sources:
                for item in read_pairs(source, config.read):
                    if not isinstance(item, Skipped):
                        try:
                            sample = encode(item, config)
                        except Exception as exc:  # noqa: BLE001 - one item must never end a run of many
                            item = Skipped(item.key, item.origin, "error", f"{type(exc).__name__}: {exc}")
                        else:
                            _add(tar, sample)
                            written += 1
                            continue
                    skipped.append(item.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, out / f"{name}.tar")
    sidecar = {"shard": f"{name}.tar", "pairs": written, "sources": len(sources), "skipped": skipped,
               "seconds": round(time.perf_counter() - started, 3)}
    text = json.dumps(sidecar, indent=1).encode()
    write_atomic(out / f"{name}.json", lambda handle: handle.write(text))  # last: the shard is complete
    return sidecar


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

    from avsdk.frames import _centre_crop, _resize_shorter_side  # the very resize of frame_input

    image = Image.fromarray(frame)
    if transform == "stretch":
        image = image.resize((size, size), Image.BICUBIC)
    else:
        image = _centre_crop(_resize_shorter_side(image, size), size)
    return np.asarray(image, dtype=np.uint8)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _summarise(out: Path, count: int, sources: int, written: int, failed: dict, seconds: float) -> dict:
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
               "seconds_this_run": round(seconds, 2),
               # worker-seconds per source, from the sidecars: what sizes a bigger run
               "worker_seconds_per_source": round(shard_seconds / max(1, sources), 5)}
    lines = "".join(json.dumps(s) + "\n" for s in skipped).encode()
    write_atomic(out / "skipped.jsonl", lambda handle: handle.write(lines))
    text = json.dumps(summary, indent=1).encode()
    write_atomic(out / "summary.json", lambda handle: handle.write(text))
    return summary


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
             "silence_db": "--silence-db"}
    with flags(names):
        prep = Preprocessing(sample_rate=args.audio_rate, audio=args.audio_input, image_size=args.image_size,
                             transform=args.transform)
        read = ReadOptions(pairs_per_video=args.pairs_per_video, times=tuple(args.times), preprocessing=prep,
                           min_sound_seconds=args.min_sound, silence_db=args.silence_db)
        config = ShardConfig(read=read, shard_size=args.shard_size, frame=args.frame,
                             jpeg_quality=args.jpeg_quality, audio=args.audio)
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
