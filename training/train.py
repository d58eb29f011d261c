"""Training loop and CLI.

    python -m avsdk.training.train --data BENCH --out runs/sacl --mode fast --epochs 8
    torchrun --nproc_per_node 4 -m avsdk.training.train --data ... --device cuda --mode full
    torchrun --nproc_per_node 4 -m avsdk.training.train --data BENCH --shards SHARDS --mode fast ...

Model selection is on the validation split only (by default cIoU@0.5 under the >= 0.5 rule,
then AUC; ``select="auc"``: AUC, then the pointing game); the test split is never read here. ``out/best.pt`` is an avsdk checkpoint (written
atomically); ``out/last.pt`` holds the optimiser state and the settings for ``--resume``
(which continues the run, for more epochs say, and refuses other settings and a folder
without a run);
``out/history.json`` the losses and validation scores. A folder that holds a run is not
trained into again without ``--resume`` or ``--overwrite``. With ``--shards`` (avsdk.training.shards)
each process trains on its own shards instead of the train split; validation stays on --data's;
the fast mode then caches each shard's trunk features on disk (avsdk.training.feature_cache).
``--num-workers`` DataLoader workers make the views (full mode), or, in the fast mode, the
cached views and segments and then read the batches from the cache ahead of the steps.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from avsdk._atomic import write_atomic
from avsdk.cli import command, flags, output_folder
from avsdk.errors import bad_input
from avsdk.models import ModelConfig, build_model, save_checkpoint

from .config import SELECTIONS, TrainConfig
from .data import GroupedBatches, ViewsDataset
from .steps import Objective


def _distributed(config: TrainConfig):
    """(rank, world, device); initialises the process group when torchrun started us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(config.device)
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        import datetime

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=config.dist_timeout_minutes))
    return dist.get_rank(), world, device


def deployed_transform(config: TrainConfig) -> str:
    """The frame transform a model of ``config.scheme`` is tested and deployed with, as in each
    reference: SACL stretches the whole frame to 224x224 ("stretch"), SSPL resizes it and keeps
    the centre square ("centre_crop"). (Fast mode validates on the cached evaluation view, the
    stretched one; on square frames they agree.)"""
    return "centre_crop" if config.scheme == "sspl" else "stretch"


def synchronised_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` with SyncBatchNorm for BatchNorm on CUDA, as both references train under DDP
    (statistics over the whole batch, not each process's share); the state_dict keys stay
    those of BatchNorm, so checkpoints load into the plain model. SyncBatchNorm runs on CUDA
    only: processes on the CPU keep their own statistics."""
    if device.type != "cuda":
        return module
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)


def _mean_over_processes(losses: list, world: int, device) -> float:
    """The epoch's mean loss over every process's steps (each process runs as many)."""
    total = torch.tensor([sum(losses), len(losses)], dtype=torch.float64, device=device)
    if world > 1:
        torch.distributed.all_reduce(total)
    return float(total[0] / total[1])


def _fewest_batches(clips: int, batch_size: int, world: int, device) -> int:
    """The fewest full batches any process holds: every process runs that many steps an epoch
    (they exchange gradients at each one)."""
    batches = torch.tensor([clips // batch_size], device=device)
    if world > 1:
        torch.distributed.all_reduce(batches, op=torch.distributed.ReduceOp.MIN)
    return int(batches)


# what a resumed run may change: how long it runs, where and how it reports, not what it learns
RESUME_FREE = ("data", "out", "epochs", "max_steps", "resume", "overwrite", "progress", "device",
               "num_workers", "feature_cache", "dist_timeout_minutes")


def _settings(config: TrainConfig) -> dict:
    """The TrainConfig as JSON values (the model config as a dict)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _check_resumable(settings: dict, saved: dict | None, last: Path) -> None:
    """Refuse to continue a run under other settings (a last.pt from before settings were
    saved cannot be checked)."""
    if saved is None:
        return
    changed = sorted(k for k in settings if k not in RESUME_FREE and saved.get(k) != settings[k])
    if changed:
        raise bad_input("resume", f"the settings of the run in {last.parent} (only epochs, max_steps "
                        "and where and how it runs may change)",
                        "other " + ", ".join(f"{k} ({saved.get(k)!r} -> {settings[k]!r})" for k in changed),
                        described=True)


def _feature_cache(caches, model, samples, split: str, config: TrainConfig, views: int, segment: bool,
                   progress: bool, size: int = 224):
    """The fast mode's FeatureCache of ``samples`` (evaluation view ``size`` pixels square), from
    ``caches`` when a run with the same data, trunk, views, scheme, seed, segmentation and size
    built it already (None: no sharing)."""
    from .fast import build_cache

    audio_views = config.fast_audio_views if split == "train" else 1
    key = (config.data, split, len(samples), config.model.visual, config.model.audio, views, audio_views,
           config.scheme, config.seed, segment, config.segment_size, size)
    if caches is not None and key in caches:
        return caches[key]
    cache = build_cache(model, samples, views, config.scheme, config.seed, segment=segment,
                        segment_size=config.segment_size, progress=progress, audio_views=audio_views, size=size,
                        num_workers=config.num_workers)
    if caches is not None:
        caches[key] = cache
    return cache


def _segmented(config: TrainConfig) -> bool:
    """Whether training needs the Felzenszwalb segments (SACL's positive region "segments")."""
    return config.scheme == "sacl" and config.positive_region == "segments"


def _shard_features(config: TrainConfig, model, rank: int, world: int):
    """The fast mode's DiskFeatureCache of this process's shards (built where missing)."""
    from .feature_cache import shard_feature_cache

    return shard_feature_cache(model, config.shards, config.feature_cache, config.fast_views, config.scheme,
                               config.seed, _segmented(config), config.segment_size, config.fast_audio_views,
                               rank=rank, world=world, num_workers=config.num_workers,
                               progress=config.progress and rank == 0)


class Validator:
    """cIoU@0.5 and AUC on the validation split, from cached features (fast) or frames (full)."""

    def __init__(self, objective: Objective, samples, config: TrainConfig, device, caches=None):
        from avsdk.evaluation import load_target

        self.objective, self.samples, self.config, self.device = objective, samples, config, device
        self.targets = [load_target(s) for s in samples]
        self.cache = None
        if config.mode == "fast":
            self.cache = _feature_cache(caches, objective.model, samples, "val", config, 1, segment=False,
                                        progress=config.progress, size=objective.model.config.image_size)

    def __call__(self):
        from avsdk.evaluation import evaluate, report_from_maps

        model = self.objective.model
        if self.cache is not None:
            from .fast import cached_maps

            report = report_from_maps(cached_maps(self.objective, self.cache), self.targets)
        else:
            model.eval()
            report = evaluate(lambda f, m: model(f.to(self.device), m.to(self.device)), self.samples,
                              progress=self.config.progress, transform=deployed_transform(self.config),
                              audio=model.audio_spec, image_size=model.config.image_size)
            model.train()
        value = report.rules["value"]
        return {"ciou": value.ciou_at_05, "auc": value.auc, "pointing": report.pointing_game}


def _batches(config, objective, samples, rank, world, device, caches=None, steps=None, cache=None):
    """An epoch -> iterator of loss-argument tuples, for the configured mode. ``steps``: the steps
    per epoch of processes that hold their own clips (shards), which no sampler splits further.
    ``cache``: the fast mode's features of this process's shards (then ``samples`` is unused)."""
    labels = cache.labels if cache is not None else [s.label for s in samples]
    if steps is not None:
        sampler = GroupedBatches(labels, config.batch_size, config.clips_per_class, config.seed, limit=steps)
    else:
        sampler = GroupedBatches(labels, config.batch_size, config.clips_per_class, config.seed, rank, world)
    segment = _segmented(config)
    if config.mode == "fast":
        if cache is None:
            cache = _feature_cache(caches, objective.model, samples, "train", config, config.fast_views, segment,
                                   progress=config.progress and rank == 0)

        def epoch_batches(epoch):
            from .fast import PlannedBatches

            sampler.set_epoch(epoch)
            rng = np.random.default_rng((config.seed, epoch, rank, 1))
            plans = [cache.plan(indices, rng) for indices in sampler]  # the views drawn here, in order
            batches = (cache.gather(plan) for plan in plans)
            if config.num_workers:  # workers read the batches ahead of the steps
                batches = torch.utils.data.DataLoader(PlannedBatches(cache, plans), batch_size=None,
                                                      num_workers=config.num_workers)
            for f1, f2, s1, s2, mel in batches:  # features arrive as float16: converted on the device
                yield (f1.to(device).float(), f2.to(device).float(), mel.to(device),
                       None if s1 is None else s1.to(device), None if s2 is None else s2.to(device), True,
                       cache.audio_embedded)

        return epoch_batches, len(sampler)

    dataset = ViewsDataset(samples, config.scheme, config.seed, segment=segment, segment_size=config.segment_size,
                           audio=objective.model.audio_spec)

    def epoch_batches(epoch):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers)
        for b in loader:
            yield (b["frame1"].to(device), b["frame2"].to(device), b["log_mel"].to(device),
                   b["seg1"].to(device) if segment else None, b["seg2"].to(device) if segment else None, False,
                   False)

    return epoch_batches, len(sampler)


def _check_out(config: TrainConfig) -> Path:
    """``config.out``, refused when it holds a run that neither resume nor overwrite was asked
    for, and when resume finds no run there (a mistyped out would silently start afresh)."""
    out = Path(config.out)
    held = [name for name in ("best.pt", "last.pt") if (out / name).exists()]
    if held and not (config.resume or config.overwrite):
        raise bad_input("out", "a folder without a training run, or resume to continue it, or "
                        "overwrite to start over", f"{str(out)!r}, which holds {' and '.join(held)}",
                        described=True)
    if config.resume and not (out / "last.pt").is_file():
        where = "holds no last.pt" if out.is_dir() else "does not exist"
        raise bad_input("out", "the folder of the run to resume (with its last.pt)", f"{str(out)!r}, which {where}",
                        described=True)
    return out


def train(config: TrainConfig, caches: dict | None = None) -> dict:
    """Train, validate every ``eval_every`` epochs, keep the best checkpoint. Returns the summary.

    ``caches``: a dict shared between calls (fast mode): runs that would build the same
    feature cache (same data, trunk, views, scheme, seed and segmentation; the trunk is
    frozen, so its features are the same) build it once. The caller empties it to free the
    memory (about 0.5 MB per view and image).
    """
    from avsdk.datasets import load_split

    rank, world, device = _distributed(config)
    torch.manual_seed(config.seed)
    out = _check_out(config)
    model = build_model(config.model).to(device)
    steps = shard_cache = None
    if config.shards:
        if config.mode == "fast":  # this process's shards' features, cached on disk
            train_samples = shard_cache = _shard_features(config, model, rank, world)
        else:
            from .shard_data import load_records

            train_samples = load_records(config.shards, rank, world)  # this process's own shards
        steps = _fewest_batches(len(train_samples), config.batch_size, world, device)
        if steps < 1:
            raise bad_input("batch_size", "at most the clips of the process that holds fewest "
                            "(shards are split between processes)", config.batch_size)
    else:
        train_samples = load_split(config.data, "train")
    val_samples = load_split(config.data, "val")
    if steps is None and len(train_samples) // config.batch_size < world:  # not one full batch per process
        raise bad_input("batch_size", f"at most {len(train_samples) // world} (the {len(train_samples)} "
                        f"train clips over {world} process(es))", config.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    if config.val_limit:
        val_samples = val_samples[: config.val_limit]

    objective = Objective(model, config.scheme, config).to(device)
    optimizer = torch.optim.AdamW(objective.param_groups(), weight_decay=config.weight_decay)
    state = {"epoch": 0, "step": 0, "best": None, "history": []}
    settings = _settings(config)
    last = out / "last.pt"
    if config.resume:
        saved = torch.load(last, map_location=device, weights_only=True)
        _check_resumable(settings, json.loads(saved.get("settings", "null")), last)
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        state = json.loads(saved["state"])

    started = time.perf_counter()
    epoch_batches, steps_per_epoch = _batches(config, objective, train_samples, rank, world, device, caches, steps,
                                              shard_cache)
    validate = Validator(objective, val_samples, config, device, caches) if rank == 0 else None
    step_fn = objective
    if world > 1:
        objective = synchronised_batchnorm(objective, device)
        step_fn = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)

    from tqdm import tqdm

    objective.train()
    for epoch in range(state["epoch"], config.epochs):
        if config.max_steps and state["step"] >= config.max_steps:  # a resumed run that is done
            break
        bar = tqdm(epoch_batches(epoch), total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                   unit="step", disable=not config.progress or rank != 0)
        losses = []
        for view1, view2, mel, seg1, seg2, cached, embedded in bar:
            loss = step_fn(view1, view2, mel, seg1, seg2, trunk_features=cached, audio_embedded=embedded)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            state["step"] += 1
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if config.max_steps and state["step"] >= config.max_steps:
                break
        state["epoch"] = epoch + 1
        done = state["epoch"] == config.epochs or bool(config.max_steps and state["step"] >= config.max_steps)
        record = {"epoch": epoch + 1, "loss": _mean_over_processes(losses, world, device)}
        if rank == 0 and ((epoch + 1) % config.eval_every == 0 or done):
            record.update(validate())
            order = SELECTIONS[config.select]
            if state["best"] is None or tuple(record[k] for k in order) > tuple(state["best"][k] for k in order):
                state["best"] = dict(record)
                save_checkpoint(out / "best.pt", model, epoch=epoch + 1, scheme=config.scheme, mode=config.mode,
                                transform=deployed_transform(config),
                                val_ciou=record["ciou"], val_auc=record["auc"], train_config=settings)
        if rank == 0:
            state["history"].append(record)
            print(json.dumps(record), flush=True)
            resume_state = {"objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                            "state": json.dumps(state), "settings": json.dumps(settings)}
            write_atomic(last, lambda handle: torch.save(resume_state, handle))
            history = json.dumps(state["history"], indent=1).encode()
            write_atomic(out / "history.json", lambda handle: handle.write(history))
        if done:
            break
    summary = {"best": state["best"], "epochs": state["epoch"], "steps": state["step"],
               "seconds": round(time.perf_counter() - started, 1), "checkpoint": str(out / "best.pt")}
    if world > 1:
        # Every rank finishes (rank 0 writes its files last) before any tears the group down: a
        # rank that destroyed a gloo group its peer still used aborted ("terminate called
        # without an active exception", exit -6), seen once in 7 runs of the torchrun test.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return summary


INT_FLAGS = {
    "epochs": "epochs to train",
    "batch_size": "clips per step and process",
    "clips_per_class": "clips of one class kept together in a batch (0: a plain shuffle)",
    "fast_views": "fast mode: cached views per image",
    "segment_size": "side of the image Felzenszwalb segments (256 as the reference)",
    "seed": "seed of the initialisation, views and batches",
    "eval_every": "epochs between validation runs",
    "val_limit": "validate on at most this many val samples (0: all)",
    "num_workers": "DataLoader workers: views (full mode); cached views, then batches read ahead (fast mode)",
    "max_steps": "stop after this many optimiser steps (0: no limit)",
    "dist_timeout_minutes": "torchrun: minutes a process waits for the others at a collective",
}


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m avsdk.training.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="benchmark root (avsdk.datasets.build_benchmark)")
    p.add_argument("--out", required=True, help="output folder (best.pt, last.pt, history.json)")
    p.add_argument("--shards", help="train on these shards (avsdk.training.shards) instead of --data's train split")
    p.add_argument("--feature-cache", help="fast mode on --shards: where each shard's trunk features are "
                   "cached on disk (default: SHARDS/features; see avsdk.training.feature_cache)")
    p.add_argument("--scheme", choices=("sacl", "sspl"), default="sacl")
    p.add_argument("--mode", choices=("full", "fast"), default="full",
                   help="fast: cache the frozen trunk's features once (see avsdk.training.fast)")
    p.add_argument("--visual", default=ModelConfig.visual, help="efficientnet_lite0 | resnet18 | vgg16")
    p.add_argument("--audio", default=ModelConfig.audio, help="small_cnn | vggish")
    p.add_argument("--pcm", action="store_true", help="SSPL's predictive coding module (predicts VGGish's 128-d embedding, or the small CNN's 256-d pooled vector)")
    p.add_argument("--finetune-visual", action="store_true", help="train the visual trunk too (full mode)")
    p.add_argument("--positive-region", choices=("segments", "map"), default="segments",
                   help="SACL positive region: Felzenszwalb segment AND binarised map (reference), or the map alone")
    p.add_argument("--keep-false-negatives", action="store_true", help="SACL without false-negative removal")
    p.add_argument("--select", choices=tuple(SELECTIONS), default="ciou",
                   help="val scores that pick best.pt: ciou (cIoU@0.5, then AUC; the papers') or auc (AUC, then pointing game)")
    p.add_argument("--nonnegative", action=argparse.BooleanOptionalAction, default=None,
                   help="ReLU on the visual map and audio vector (ModelConfig.nonnegative); "
                        "default: on for efficientnet_lite0 (edge), off for the published trunks")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, what in INT_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=int, default=fields[name].default,
                       help=f"{what} (default %(default)s)")
    for name in ("lr", "lr_audio", "lr_pcm", "lr_head", "weight_decay", "tau", "negative_ratio", "retain"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=fields[name].default)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (same settings)")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a run")
    p.add_argument("--no-progress", action="store_true")
    args = vars(p.parse_args(argv))
    names = {name: "--" + name.replace("_", "-") for name in args}
    with flags({**names, "ModelConfig.visual": "--visual", "ModelConfig.audio": "--audio"}):
        model = ModelConfig(visual=args.pop("visual"), audio=args.pop("audio"), pcm=args.pop("pcm"),
                            freeze_visual=not args.pop("finetune_visual"), nonnegative=args.pop("nonnegative"))
        args["remove_false_negatives"] = not args.pop("keep_false_negatives")
        args["progress"] = not args.pop("no_progress")
        return TrainConfig(model=model, **args)


def _version(path: Path):
    """What tells one write of ``path`` from another (write_atomic makes a new inode), or None."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _interrupted(config: TrainConfig, last: Path, before) -> str:
    """What to do after Ctrl-C: continue with --resume when a finished epoch is on disk (a
    last.pt this run wrote, or the one it resumed from), else run the command again."""
    if config.resume or _version(last) not in (None, before):
        how = "--resume instead of --overwrite" if config.overwrite else "--resume"
        return f"interrupted; continue from {last} with the same command and {how}"
    return ("interrupted before the first epoch ended; nothing was saved, so there is nothing to --resume: "
            "run the same command again")


@command
def main(argv=None) -> int:
    from avsdk.datasets import load_split

    config = parse_args(argv)
    # what load_split and train() refuse, named by the flags that set it
    with flags({"root": "--data", "out": "--out", "resume": "--resume", "batch_size": "--batch-size"}):
        load_split(config.data, "train")
        last = output_folder("--out", config.out) / "last.pt"
        before = _version(last)
        try:
            summary = train(config)
        except KeyboardInterrupt:
            print(_interrupted(config, last, before), file=sys.stderr)
            return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
