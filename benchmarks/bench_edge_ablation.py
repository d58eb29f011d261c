"""Why the edge model looks the way it does: its recipe choices, scored on the val split.

    python benchmarks/bench_edge_ablation.py --bench runs/main/benchmark    # ~15 min on 2 CPU cores

Caches the frozen EfficientNet-Lite0 features once (4 views per train image, Felzenszwalb
segments at 128 px), then trains each variant of the edge recipe on the same cache, the same
batches and the same seed, and prints per epoch the val split's cIoU@0.5 and AUC (value rule),
pointing game, distractor accuracy, and the median ratio of the binarised map's area to the
sounding object's area (1.0 is an exact fit; a blob over a third of the image is ~9 here).
Only val is read: this is the table the edge recipe was chosen from, and the test split
stays untouched (docs/edge_model.md, "Where it departs from the SACL paper").

Variants (everything else is the main job's recipe: SACL fast mode, tau 0.07, lr 5e-4):
    linear:      ModelConfig(nonnegative=False), binarised-map positive region
    linear+seg:  the same with Felzenszwalb segments AND the map (the reference rule)
    nonnegative: ModelConfig() (ReLU on both embeddings), binarised-map positive region
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from avsdk.cli import command, flags, output_file
from avsdk.errors import bad_input

VARIANTS = {
    "linear": {"nonnegative": False, "positive_region": "map"},
    "linear+seg": {"nonnegative": False, "positive_region": "segments"},
    "nonnegative": {"nonnegative": True, "positive_region": "map"},
}


def area_ratio(maps, targets) -> float:
    """Median over images of |binarised map (value rule)| / |sounding object mask|."""
    from avsdk.metrics import binarize, localization_map

    return float(np.median([binarize(localization_map(m)).mean() / t.mask.mean() for m, t in zip(maps, targets)]))


def train_variant(name, options, cache, val_cache, labels, targets, args):
    from avsdk.evaluation import report_from_maps
    from avsdk.models import ModelConfig, build_model
    from avsdk.training.config import TrainConfig
    from avsdk.training.data import GroupedBatches
    from avsdk.training.fast import FeatureCache, cached_maps
    from avsdk.training.pipeline import EDGE_LR, EDGE_TAU
    from avsdk.training.steps import Objective

    torch.manual_seed(args.seed)
    model = build_model(ModelConfig(nonnegative=options["nonnegative"]))
    config = TrainConfig(data=str(args.bench), out="unused", mode="fast", tau=EDGE_TAU, lr=EDGE_LR,
                         positive_region=options["positive_region"], seed=args.seed)
    objective = Objective(model, "sacl", config)
    optimizer = torch.optim.AdamW(objective.param_groups(), weight_decay=config.weight_decay)
    sampler = GroupedBatches(labels, config.batch_size, config.clips_per_class, args.seed, 0, 1)
    segments = cache.segments if options["positive_region"] == "segments" else None
    cache = FeatureCache(cache.features, segments, cache.log_mel)
    rows, started = [], time.perf_counter()
    objective.train()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        rng = np.random.default_rng((args.seed, epoch, 0, 1))
        losses = []
        for indices in sampler:
            f1, f2, s1, s2, mel = cache.batch(indices, rng)
            loss = objective(f1.float(), f2.float(), mel, s1, s2, trunk_features=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        maps = cached_maps(objective, val_cache)
        report = report_from_maps(maps, targets)
        row = {"variant": name, "epoch": epoch + 1, "loss": round(float(np.mean(losses)), 3),
               "ciou": report.rules["value"].ciou_at_05, "auc": round(report.rules["value"].auc, 3),
               "pointing": report.pointing_game, "distractor": round(report.distractor_accuracy, 3),
               "area_ratio": round(area_ratio(maps, targets), 2),
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


@command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=Path, required=True, help="a benchmark root (build_benchmark output)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; expected names from {list(VARIANTS)}")
    if args.epochs < 1:
        raise bad_input("--epochs", "an int >= 1", args.epochs)
    if args.out is not None:
        output_file("--out", args.out)

    from avsdk.datasets import load_split
    from avsdk.evaluation import load_target
    from avsdk.models import ModelConfig, build_model
    from avsdk.training.fast import build_cache

    with flags({"root": "--bench"}):
        train_samples, val_samples = load_split(args.bench, "train"), load_split(args.bench, "val")
    trunk = build_model(ModelConfig())  # the frozen trunk is the same in every variant
    segment = any(VARIANTS[n]["positive_region"] == "segments" for n in names)
    cache = build_cache(trunk, train_samples, 4, "sacl", args.seed, segment=segment, segment_size=128)
    val_cache = build_cache(trunk, val_samples, 1, "sacl", args.seed, segment=False)
    targets = [load_target(s) for s in val_samples]
    labels = [s.label for s in train_samples]
    rows = []
    for name in names:
        rows += train_variant(name, VARIANTS[name], cache, val_cache, labels, targets, args)
    print("\n| variant | best val cIoU@0.5 | its AUC | its pointing | its area ratio | epoch |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        best = max((r for r in rows if r["variant"] == name), key=lambda r: (r["ciou"], r["auc"]))
        print(f"| {name} | {best['ciou']:.3f} | {best['auc']:.3f} | {best['pointing']:.3f} | "
              f"{best['area_ratio']:.2f} | {best['epoch']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
