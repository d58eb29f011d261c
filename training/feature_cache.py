"""The fast mode's trunk features on disk, one cache per shard, read back memory-mapped.

    python -m avsdk.training.train --data BENCH --shards shards/ --mode fast ...
    torchrun --nproc_per_node 4 -m avsdk.training.train ... --shards shards/ --mode fast --feature-cache /scratch/f

In RAM, the fast mode's cache (avsdk.training.fast) costs 0.5 MB per view and image: 289 GB for
VGGSound's 144k clips with 4 views. On shards, each process instead writes the features of its
own shards to disk, a shard at a time, and training reads the rows a batch needs from
memory-mapped files, so host memory holds one shard's records while building and the page
cache's choice of rows while training.

Layout (``root`` is ``--feature-cache``, by default ``<shards>/features``)::

    root/<digest>/settings.json          what the features depend on (below); <digest> hashes it
    root/<digest>/shard-000012/          one folder per shard, renamed into place when whole
        features.npy   float16 [n, V, C, 14, 14]   the trunk's output for each view
        segments.npy   int16 [n, V, 14, 14]         Felzenszwalb ids (SACL with segments only)
        audio.npy      float32 [n, N, 1, 96, 64]    log-mel examples, or [n, A, D] embeddings
                                                     of a frozen audio backbone (SoundNet)
        index.json     keys and labels of the n pairs (the shard's order), the shard's size

The settings are the trunk (name and a digest of its weights), the audio input (and a digest of
a frozen audio backbone's weights), the number of views, scheme, seed, segmentation, the
evaluation view's size and the shards' plan.json: a change in any of them is another digest,
so a cache is never used for features it does not hold. Shards written over
(avsdk.training.shards, ``overwrite``) take ``<shards>/features`` with them. Sample ``i`` of shard ``s`` draws its
random views from ``np.random.default_rng((seed, s, i))``, so a shard's cache is the same
whichever process builds it and however many there are (a run resumed on another number of
GPUs reuses every shard built before).

A shard's cache is written into ``shard-000012.partial-<pid>/`` and renamed when whole: a
killed run loses only the shard in flight, and the next run (``--resume`` or a fresh one)
builds just the missing shards. A process that finds another's complete folder keeps it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from avsdk._atomic import write_atomic
from avsdk.errors import bad_input

from .fast import BatchPlan, audio_embeddings, check_views, feature_batches, plan_batch, plural

log = logging.getLogger(__name__)
FILES = ("features.npy", "segments.npy", "audio.npy")


def _digest_tensors(module: torch.nn.Module) -> str:
    """A digest of a module's parameters and buffers (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_settings(model, shards: str | os.PathLike, views: int, scheme: str, seed: int, segment: bool,
                   segment_size: int, audio_views: int = 1, size: int = 224) -> dict:
    """What a shard's cached features depend on (see the module doc)."""
    embedded = model.audio_spec.kind == "waveform"
    settings = {
        "format": "avsdk.feature_cache", "version": 1,
        "trunk": model.config.visual, "trunk_digest": _digest_tensors(model.visual_trunk),
        "audio": model.config.audio, "audio_input": model.audio_spec.kind, "sample_rate": model.audio_spec.sample_rate,
        "views": views, "scheme": scheme, "seed": seed, "segment": segment,
        "segment_size": segment_size if segment else None, "size": size,
        "plan_digest": hashlib.sha256((Path(shards) / "plan.json").read_bytes()).hexdigest()[:16],
    }
    if embedded:
        backbone = torch.nn.ModuleList(model.audio_net.backbone_modules())
        settings.update(audio_views=audio_views, audio_digest=_digest_tensors(backbone))
    return settings


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ShardFeatures:
    """One shard's cache, memory-mapped."""

    features: np.ndarray  # float16 [n, V, C, 14, 14]
    segments: np.ndarray | None  # int16 [n, V, 14, 14]
    audio: np.ndarray  # float32 [n, N, 1, 96, 64] or [n, A, D]
    keys: list[str]
    labels: list[str | None]

    @classmethod
    def open(cls, folder: Path) -> "ShardFeatures":
        index = json.loads((folder / "index.json").read_text())
        segments = folder / "segments.npy"
        return cls(np.load(folder / "features.npy", mmap_mode="r"),
                   np.load(segments, mmap_mode="r") if segments.is_file() else None,
                   np.load(folder / "audio.npy", mmap_mode="r"), index["keys"], index["labels"])


class DiskFeatureCache:
    """The shards' caches as one sequence of clips, with FeatureCache's ``batch`` (the same
    random draws, so the same batches as an in-RAM cache of the same features)."""

    def __init__(self, parts: Sequence[ShardFeatures], audio_embedded: bool):
        if not parts:
            raise bad_input("shards", "at least one shard with pairs", "none", described=True)
        self.parts, self.audio_embedded = list(parts), audio_embedded
        self.offsets = np.cumsum([0] + [len(p.keys) for p in self.parts])
        self.views = self.parts[0].features.shape[1]
        self.labels = [label for p in self.parts for label in p.labels]
        self.keys = [key for p in self.parts for key in p.keys]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, index: np.ndarray):
        part = np.searchsorted(self.offsets, index, side="right") - 1
        return part, index - self.offsets[part]

    def plan(self, indices: Sequence[int], rng: np.random.Generator) -> BatchPlan:
        return plan_batch(indices, rng, self.views, self.parts[0].audio.shape[1] if self.audio_embedded else 0)

    def gather(self, plan: BatchPlan):
        """As FeatureCache.gather: (f1, f2 float16 [B, C, 14, 14], seg1, seg2, audio), read from
        the memory-mapped shards."""
        parts, rows = self._locate(plan.index)
        f1, f2, s1, s2, audio = [], [], [], [], []
        for i, (part, row, a, b) in enumerate(zip(parts, rows, plan.first, plan.second)):
            shard = self.parts[part]
            f1.append(shard.features[row, a])
            f2.append(shard.features[row, b])
            if shard.segments is not None:
                s1.append(shard.segments[row, a])
                s2.append(shard.segments[row, b])
            audio.append(shard.audio[row] if plan.audio is None else shard.audio[row, plan.audio[i]])
        segments = (None, None) if not s1 else (torch.from_numpy(np.stack(s1)).long(),
                                                 torch.from_numpy(np.stack(s2)).long())
        return (torch.from_numpy(np.stack(f1)), torch.from_numpy(np.stack(f2)), *segments,
                torch.from_numpy(np.stack(audio)))

    def batch(self, indices: Sequence[int], rng: np.random.Generator):
        """As FeatureCache.batch: the same draws, so the same batch from the same features."""
        return self.gather(self.plan(indices, rng))


def shard_index(path: Path) -> int:
    return int(path.stem.split("-")[1])


def build_shard(model, shard: Path, folder: Path, settings: dict, batch_images: int = 16, num_workers: int = 0,
                progress: bool = True, bar=None) -> Path:
    """Write the cache of one shard into ``folder`` (see the module doc); returns ``folder``.
    ``bar``: a tqdm bar to count the shard's images on (else one of its own when ``progress``)."""
    from .shard_data import shard_records

    records = shard_records(shard)
    number = shard_index(shard)
    views, segment = settings["views"], settings["segment"]
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        arrays = {}
        keys = [(settings["seed"], number, i) for i in range(len(records))]
        start = 0
        for out, ids, log_mel in feature_batches(model, records, keys, views, settings["scheme"], segment,
                                                 settings["segment_size"] or 256, settings["size"], batch_images,
                                                 num_workers, progress, bar=bar,
                                                 desc=f"cache {shard.stem} ({plural(views, 'view')})"):
            parts = {"features.npy": out.numpy(), "segments.npy": None if ids is None else ids.numpy(),
                     "audio.npy": None if log_mel is None else log_mel.numpy()}
            for name, value in parts.items():
                if value is None:
                    continue
                if name not in arrays:  # shapes are known from the first batch
                    arrays[name] = np.lib.format.open_memmap(partial / name, mode="w+", dtype=value.dtype,
                                                             shape=(len(records), *value.shape[1:]))
                arrays[name][start : start + len(value)] = value
            start += len(out)
        if "audio_views" in settings:  # a frozen audio backbone: its embeddings of the clip's audio views
            embedded = audio_embeddings(model, records, settings["audio_views"], (settings["seed"], 7, number),
                                         batch_images, progress=False).numpy()
            np.save(partial / "audio.npy", embedded)
        for array in arrays.values():
            array.flush()
        del arrays
        for name in FILES:
            if (partial / name).is_file():
                with open(partial / name, "rb+") as handle:
                    os.fsync(handle.fileno())
        index = {"shard": shard.name, "bytes": shard.stat().st_size, "keys": [r.key for r in records],
                 "labels": [r.label for r in records]}
        text = json.dumps(index).encode()
        write_atomic(partial / "index.json", lambda handle: handle.write(text))
        try:
            os.rename(partial, folder)
        except OSError:  # another process finished this shard first: keep its copy
            if not (folder / "index.json").is_file():
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder


def _remove_stale(folder: Path) -> None:
    """Remove the partial folders of ``folder`` left by processes of this machine that are gone
    (killed mid-shard)."""
    for partial in folder.parent.glob(f"{folder.name}.partial-*"):
        try:
            os.kill(int(partial.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
        except (ValueError, PermissionError):  # not ours to judge
            continue


def _complete(folder: Path, shard: Path) -> bool:
    index = folder / "index.json"
    if not index.is_file():
        return False
    held = json.loads(index.read_text())
    return held.get("shard") == shard.name and held.get("bytes") == shard.stat().st_size


def shard_feature_cache(model, shards: str | os.PathLike, root: str | os.PathLike | None, views: int, scheme: str,
                        seed: int, segment: bool, segment_size: int = 256, audio_views: int = 1, size: int = 224,
                        rank: int = 0, world: int = 1, num_workers: int = 0, progress: bool = True) -> DiskFeatureCache:
    """The cache of this process's shards (every ``world``-th complete shard from the ``rank``-th):
    shards already cached under the same settings are opened, the others built first.

    Raises:
        InputError: naming ``shards`` when there are fewer complete shards than processes.
    """
    from .shard_data import complete_shards

    check_views(views, size)
    all_shards = complete_shards(shards)
    if len(all_shards) < world:
        raise bad_input("shards", f"at least one complete shard per process ({world})",
                        f"{str(shards)!r} with {len(all_shards)}", described=True)
    settings = cache_settings(model, shards, views, scheme, seed, segment, segment_size, audio_views, size)
    base = Path(root) if root is not None else Path(shards) / "features"
    base = base / settings_digest(settings)
    base.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings, indent=1, sort_keys=True).encode()
    if not (base / "settings.json").is_file():
        write_atomic(base / "settings.json", lambda handle: handle.write(text))
    mine = all_shards[rank::world]
    folders = [base / shard.stem for shard in mine]
    todo = [(s, f) for s, f in zip(mine, folders) if not _complete(f, s)]
    if todo:
        log.info("feature cache %s: %d of %d shard(s) to build, %d reused", base, len(todo), len(mine),
                 len(mine) - len(todo))
    bar = None
    if todo and progress:
        from tqdm import tqdm

        clips = sum(json.loads(s.with_suffix(".json").read_text())["pairs"] for s, _ in todo)
        bar = tqdm(total=clips, desc=f"cache trunk features of {plural(len(todo), 'shard')} ({plural(views, 'view')})",
                   unit="clip")
    try:
        for shard, folder in todo:
            if folder.exists():  # a cache of an older shard of that name (rewritten with overwrite)
                shutil.rmtree(folder)
            _remove_stale(folder)
            build_shard(model, shard, folder, settings, num_workers=num_workers, progress=False, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    parts = [ShardFeatures.open(folder) for folder in folders if (folder / "features.npy").is_file()]
    return DiskFeatureCache(parts, model.audio_spec.kind == "waveform")  # shards without pairs have no features
