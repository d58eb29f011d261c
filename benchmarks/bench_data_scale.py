"""What data at scale costs per clip here: shard writing, the fast mode's feature cache on disk
(with and without a DataLoader worker for the views), and reading batches from it.

    python benchmarks/bench_data_scale.py --data runs/main/benchmark --clips 96

Takes the first ``--clips`` sources of the benchmark's train split and measures, in one run:

1. shard writing (avsdk.training.shards, one worker): seconds and bytes per pair;
2. the per-shard feature cache (avsdk.training.feature_cache) built with ``--num-workers 0``
   (everything in this process) and with ``--workers`` DataLoader workers for the views and
   Felzenszwalb (the trunk stays here): seconds and bytes per clip;
3. a training batch of ``--batch-size`` clips (two views each) read from the memory-mapped
   cache, warm (pages in RAM) and cold (pages dropped with posix_fadvise first), beside the
   same batch from the in-RAM cache and one training step (forward, backward, AdamW) on it;
4. the training loop over ``--steps`` such batches, read in the loop and read ahead by
   ``--workers`` DataLoader workers (train --num-workers).

Writes benchmarks/results/data_scale.{json,md}. Figures are wall times on this machine,
whatever else runs on it: the load average is recorded beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avsdk.cli import command


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="built real-parts benchmark root")
    parser.add_argument("--clips", type=int, default=96, help="train sources to use")
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--segment-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the second cache build")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20, help="batches timed per way of reading")
    parser.add_argument("--steps", type=int, default=24,
                        help="training steps timed with the batches read in the loop and by --workers workers")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    return parser.parse_args(argv)


def check_args(args) -> list:
    """Every argument before the work (InputError naming the flag); returns the train sources."""
    from avsdk.cli import output_folder
    from avsdk.errors import bad_input
    from avsdk.training.ingest import benchmark_sources

    for flag, value, low in (("--clips", args.clips, 2), ("--shard-size", args.shard_size, 1),
                             ("--views", args.views, 2), ("--segment-size", args.segment_size, 16),
                             ("--workers", args.workers, 0), ("--batch-size", args.batch_size, 2),
                             ("--batches", args.batches, 1), ("--steps", args.steps, 1)):
        if value < low:
            raise bad_input(flag, f"an int >= {low}", value)
    if args.batch_size > args.clips:
        raise bad_input("--batch-size", f"at most --clips ({args.clips})", args.batch_size)
    if not (args.data / "index.json").is_file():
        raise bad_input("--data", "a built real-parts benchmark (with index.json)", str(args.data))
    sources = benchmark_sources(args.data, "train")
    if len(sources) < args.clips:
        raise bad_input("--clips", f"at most the {len(sources)} train clips of --data", args.clips)
    output_folder("--out", args.out)
    return sources[: args.clips]


def _drop_pages(folder: Path) -> None:
    """Ask the kernel to drop the cached pages of the files under ``folder`` (clean pages go)."""
    for path in folder.rglob("*.npy"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _time_batches(cache, clips: int, batch: int, count: int, before=None) -> float:
    """Median ms of ``cache.batch`` over ``count`` random batches (``before()`` ahead of each)."""
    rng = np.random.default_rng(0)
    times = []
    for _ in range(count):
        indices = rng.choice(clips, size=batch, replace=False)
        if before:
            before()
        start = time.perf_counter()
        cache.batch(indices, rng)
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 2)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    sources = check_args(args)
    from avsdk.models import ModelConfig, build_model
    from avsdk.training.config import TrainConfig
    from avsdk.training.fast import FeatureCache, PlannedBatches
    from avsdk.training.feature_cache import shard_feature_cache
    from avsdk.training.shards import ShardConfig, write_shards
    from avsdk.training.steps import Objective

    load = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="bench_data_scale_"))
    result = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "python": platform.python_version(), "torch": torch.__version__},
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    try:
        start = time.perf_counter()
        summary = write_shards(sources, work / "shards", ShardConfig(shard_size=args.shard_size), progress=False)
        seconds = time.perf_counter() - start
        pairs = summary["pairs"]
        result["shards"] = {"pairs": pairs, "seconds": round(seconds, 2),
                            "ms_per_pair": round(1000 * seconds / pairs, 2),
                            "worker_ms_per_source": round(1000 * summary["worker_seconds_per_source"], 2),
                            "kb_per_pair": round(_size(work / "shards") / pairs / 1024, 1)}

        torch.manual_seed(0)
        model = build_model(ModelConfig()).eval()
        settings = dict(views=args.views, scheme="sacl", seed=0, segment=True, segment_size=args.segment_size)
        builds = {}
        for workers in (0, args.workers):
            root = work / f"features-{workers}"
            start = time.perf_counter()
            cache = shard_feature_cache(model, work / "shards", root, num_workers=workers, progress=True, **settings)
            seconds = time.perf_counter() - start
            builds[f"workers_{workers}"] = {"seconds": round(seconds, 2), "s_per_clip": round(seconds / len(cache), 3)}
        result["feature_cache"] = {"clips": len(cache), **builds,
                                   "mb_per_clip": round(_size(root) / len(cache) / 2**20, 3)}

        in_ram = FeatureCache(torch.from_numpy(np.concatenate([np.array(p.features) for p in cache.parts])),
                              torch.from_numpy(np.concatenate([np.array(p.segments) for p in cache.parts])),
                              torch.from_numpy(np.concatenate([np.array(p.audio) for p in cache.parts])))
        count, batch = args.batches, args.batch_size
        reading = {"batch": batch,
                   "ram_ms": _time_batches(in_ram, len(cache), batch, count),
                   "disk_warm_ms": _time_batches(cache, len(cache), batch, count),
                   "disk_cold_ms": _time_batches(cache, len(cache), batch, count, lambda: _drop_pages(root))}
        config = TrainConfig(data="unused", out="unused", mode="fast", batch_size=batch, fast_views=args.views,
                             segment_size=args.segment_size)
        objective = Objective(model, "sacl", config)
        optimizer = torch.optim.AdamW(objective.param_groups(), weight_decay=config.weight_decay)
        objective.train()
        f1, f2, s1, s2, mel = cache.batch(np.arange(batch), np.random.default_rng(0))
        steps = []
        for _ in range(4):
            start = time.perf_counter()
            loss = objective(f1.float(), f2.float(), mel, s1, s2, trunk_features=True, audio_embedded=False)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps.append(time.perf_counter() - start)
        reading["step_ms"] = round(1000 * float(np.median(steps[1:])), 1)
        reading["epoch_ms_per_clip"] = round((reading["disk_warm_ms"] + reading["step_ms"]) / batch, 2)
        rng = np.random.default_rng(1)
        plans = [cache.plan(rng.choice(len(cache), size=batch, replace=False), rng) for _ in range(args.steps)]
        for workers in (0, args.workers):
            batches = (cache.gather(plan) for plan in plans)
            if workers:
                batches = torch.utils.data.DataLoader(PlannedBatches(cache, plans), batch_size=None,
                                                      num_workers=workers)
            start = time.perf_counter()
            for f1, f2, s1, s2, mel in batches:
                loss = objective(f1.float(), f2.float(), mel, s1, s2, trunk_features=True, audio_embedded=False)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            reading[f"loop_ms_per_step_workers_{workers}"] = round(1000 * (time.perf_counter() - start) / args.steps, 1)
        result["reading"] = reading
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load.append(os.getloadavg()[0])
    result["machine"]["load_average_1min"] = [round(x, 2) for x in load]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_scale.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "data_scale.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


def _reader(key: str) -> str:
    workers = key.rsplit("_", 1)[1]
    return "in the loop" if workers == "0" else f"ahead by {workers} DataLoader worker(s)"


def _markdown(r: dict) -> str:
    s, c, b, m = r["shards"], r["feature_cache"], r["reading"], r["machine"]
    workers = [k for k in c if k.startswith("workers_")]
    rows = [f"| shards, 1 worker ({s['pairs']} pairs; wall time, with the worker's start) | {s['ms_per_pair']} ms "
            f"| {s['kb_per_pair']} KB |",
            f"| ... in the worker (the shards' sidecars) | {s['worker_ms_per_source']} ms | |"]
    what = f"feature cache on disk, {r['settings']['views']} views, Felzenszwalb at {r['settings']['segment_size']}"
    rows += [f"| {what}, DataLoader workers {k.split('_')[1]} | {c[k]['s_per_clip']} s | {c['mb_per_clip']} MB |"
             for k in workers]
    return "\n".join([
        "# Data at scale: measured per-clip costs",
        "",
        f"`python benchmarks/bench_data_scale.py --data BENCH --clips {r['settings']['clips']}` on "
        f"{m['cpus']} CPU cores (torch {m['torch']}, {m['torch_threads']} threads), load average "
        f"{m['load_average_1min'][0]} before and {m['load_average_1min'][1]} after.",
        "",
        "| what | per clip | stored per clip |",
        "|------|----------|-----------------|",
        *rows,
        "",
        f"A training batch of {b['batch']} clips (two views each), median of {r['settings']['batches']}:",
        "",
        "| read from | ms per batch |",
        "|-----------|--------------|",
        f"| the in-RAM cache | {b['ram_ms']} |",
        f"| the disk cache, pages in RAM | {b['disk_warm_ms']} |",
        "| the disk cache, pages dropped first (posix_fadvise; a VM's host may still cache them) | "
        f"{b['disk_cold_ms']} |",
        f"| (one training step on that batch: forward, backward, AdamW) | {b['step_ms']} |",
        "",
        f"A fast-mode epoch on the disk cache, reading and stepping: {b['epoch_ms_per_clip']} ms per clip.",
        "",
        f"The training loop over {r['settings']['steps']} such batches, ms per step: "
        + ", ".join(f"{b[k]} with the batches read {_reader(k)}" for k in b if k.startswith("loop_ms_per_step_")) + ".",
        "",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
