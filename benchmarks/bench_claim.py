"""The SACL paper's claim on our real-parts benchmark: does removing false negatives help?

    python benchmarks/bench_claim.py --out runs/claim --seeds 0 1 2 --variants a b   # ~1 h on 2 CPU cores
    python benchmarks/bench_claim.py --out runs/claim --seeds 0 --variants c d       # ~70 min

(the PCM run alone takes about an hour: its 3x3 convolutions at 512 channels run 5 times per view).

Trains from the same frozen, pretrained visual trunk (EfficientNet-Lite0) on batches that hold
4 clips of each class (the false-negative situation SACL was designed for):

    (a) SACL, false negatives removed (rank-based, keep the 75% least similar)
    (b) SACL, false-negative removal off (plain InfoNCE over every other clip)
    (c) SSPL with its predictive coding module (PCM: 3 levels, 4 cycles; it predicts the
        small CNN's 256-d pooled audio vector, the counterpart of VGGish's embedding)
    (d) SSPL without the PCM

and scores each on the test split and on the unheard classes beside the baselines. The
benchmark is the same for every run (``--data-seed``); ``--seeds`` are training seeds.
Checkpoints are selected on the val split only.

(a) and (b) are the main job's training (``PipelineConfig.train_config``: ModelConfig.edge(),
frozen SoundNet-8 with a trained head, fast mode, tau 0.07, binarised-map positive region,
selection on val AUC) with false-negative removal on or off: the false negatives are ranked
by the frozen SoundNet embedding, which the run does not train (as SACL ranks by pretrained
VGGish). (c) and (d) keep the earlier recipe, the small log-mel CNN trained from scratch (the
PCM predicts its pooled vector), at the edge lr and tau; SSPL trains the parameter groups of
docs/method.md, "SSPL loss".

Each (variant, seed) writes ``OUT/runs/<variant>-seed<seed>/result.json`` when it is done and is
skipped when that file exists with the same settings, so an interrupted run resumes, and
runs made by several commands (as above) add up. ``OUT/claim.md`` reports every finished
run in OUT: mean and spread over seeds, and the per-seed difference (a) - (b).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from avsdk.cli import command, flags, output_folder
from avsdk.errors import bad_input

VARIANTS = {
    "a": ("(a) SACL, false negatives removed", {"scheme": "sacl", "remove_false_negatives": True}, {}),
    "b": ("(b) SACL, all other clips negative", {"scheme": "sacl", "remove_false_negatives": False}, {}),
    "c": ("(c) SSPL (PCM)", {"scheme": "sspl"}, {"pcm": True}),
    "d": ("(d) SSPL without PCM", {"scheme": "sspl"}, {}),
}
SCORED = ("test", "unheard")  # the splits each run is scored on
# (column title, path into EvalReport.to_dict())
METRICS = (("cIoU@0.5", ("value", "ciou_at_0.5")), ("AUC", ("value", "auc")),
           ("pointing game", ("pointing_game",)), ("distractor acc.", ("distractor_accuracy",)))


def _metric(report: dict, path: tuple) -> float:
    value = report
    for key in path:
        value = value[key]
    return float("nan") if value is None else float(value)


def _settings(args) -> dict:
    """What makes two runs comparable; a result written under other settings is redone."""
    return {"epochs": args.epochs, "data_seed": args.data_seed, "split_sizes": args.split_sizes,
            "nonnegative": args.nonnegative, "sacl_model": "edge"}  # (a), (b): ModelConfig.edge() since 2026-12


def run_one(key: str, seed: int, args, data: Path, splits: dict, out: Path, caches: dict) -> dict:
    """Train and score one (variant, seed); returns and writes its result.json."""
    from avsdk.evaluation import evaluate
    from avsdk.localizer import Localizer
    from avsdk.models import ModelConfig
    from avsdk.training.config import TrainConfig
    from avsdk.training.pipeline import EDGE_LR, EDGE_TAU, PipelineConfig
    from avsdk.training.train import train

    name, options, model_options = VARIANTS[key]
    if options["scheme"] == "sacl":  # the main job's training, false-negative removal on or off
        config = PipelineConfig(epochs=args.epochs, seed=seed, progress=not args.no_progress).train_config(
            data, out, **options)
        if args.nonnegative is not None:
            config = dataclasses.replace(config, model=dataclasses.replace(config.model, nonnegative=args.nonnegative))
    else:  # SSPL: the earlier recipe (small log-mel CNN from scratch) at the edge lr and tau
        config = TrainConfig(data=str(data), out=str(out), mode="fast", epochs=args.epochs, seed=seed,
                             tau=EDGE_TAU, lr=EDGE_LR, positive_region="map", fast_views=4,
                             model=ModelConfig(nonnegative=args.nonnegative, **model_options),
                             progress=not args.no_progress, overwrite=True, **options,  # a run not
                             # finished when the command was interrupted starts over; SSPL trains
                             # with the method's per-group rates, scaled like the edge lr
                             lr_audio=EDGE_LR, lr_pcm=EDGE_LR, lr_head=EDGE_LR)
    summary = train(config, caches)
    localizer = Localizer.load(summary["checkpoint"])
    result = {"variant": key, "name": name, "seed": seed, "settings": _settings(args),
              "best": summary["best"], "seconds": summary["seconds"]}
    for split, samples in splits.items():
        report = evaluate(localizer.predict, samples, batch_size=32, progress=not args.no_progress,
                          transform=localizer.transform, audio=localizer.audio, image_size=localizer.image_size)
        result[split] = report.to_dict(per_image=False)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def _mean_spread(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def report(results: list[dict], baselines: dict, split_sizes: dict, command: str) -> str:
    """claim.md: per split, mean ± sample std over seeds; then the paired (a) - (b) differences."""
    from avsdk.evaluation import markdown_table

    lines = ["# SACL's claim on the real-parts benchmark", "", command, "",
             "Mean ± standard deviation over training seeds (one value where one seed ran); "
             "the benchmark is the same for every run. Val (model selection) per run:", ""]
    for r in sorted(results, key=lambda r: (r["variant"], r["seed"])):
        best = r["best"]
        lines.append(f"- {r['name']}, seed {r['seed']}: best val cIoU@0.5 {best['ciou']:.3f}, AUC {best['auc']:.3f}, "
                     f"pointing {best.get('pointing', float('nan')):.3f} (epoch {best['epoch']}), {r['seconds']} s")
    for split in SCORED:
        header = ["method", "seeds"] + [title for title, _ in METRICS]
        rows = []
        for key, (name, _, _) in VARIANTS.items():
            runs = [r for r in results if r["variant"] == key]
            if runs:
                rows.append([name, ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))]
                            + [_mean_spread([_metric(r[split], path) for r in runs]) for _, path in METRICS])
        for name, base in baselines[split].items():
            rows.append([name, "-"] + [_mean_spread([_metric(base, path)]) for _, path in METRICS])
        lines += ["", f"## {split} split ({split_sizes[split]} samples)", "", markdown_table(header, rows)]

    by_seed = {(r["variant"], r["seed"]): r for r in results}
    paired = sorted(seed for variant, seed in by_seed if variant == "a" and ("b", seed) in by_seed)
    if paired:
        lines += ["", "## (a) - (b): what removing false negatives changes, per seed", ""]
        header = ["split", "seed"] + [title for title, _ in METRICS]
        rows = []
        for split in SCORED:
            diffs = {title: [] for title, _ in METRICS}
            for seed in paired:
                row = [split, str(seed)]
                for title, path in METRICS:
                    d = _metric(by_seed["a", seed][split], path) - _metric(by_seed["b", seed][split], path)
                    diffs[title].append(d)
                    row.append(f"{d:+.3f}")
                rows.append(row)
            if len(paired) > 1:
                rows.append([split, "mean"] + [f"{np.mean(diffs[t]):+.3f} ({sum(d > 0 for d in diffs[t])}/"
                                               f"{len(paired)} > 0)" for t, _ in METRICS])
        lines.append(markdown_table(header, rows))
    return "\n".join(lines) + "\n"


@command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/claim")
    parser.add_argument("--epochs", type=int, default=12, help="as the main job")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=sorted(VARIANTS))
    parser.add_argument("--data-seed", type=int, default=0, help="the benchmark's seed (BenchmarkConfig.seed)")
    parser.add_argument("--split-sizes", type=int, nargs=4, metavar=("TRAIN", "VAL", "TEST", "UNHEARD"),
                        help="samples per split (default: BenchmarkConfig's 1600 200 300 200); for smoke runs")
    parser.add_argument("--nonnegative", action=argparse.BooleanOptionalAction, default=None,
                        help="ModelConfig.nonnegative; default: the edge model's (on)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from avsdk.datasets import SPLITS, BenchmarkConfig, build_benchmark, load_split
    from avsdk.evaluation import evaluate_baselines

    if args.epochs < 1:
        raise bad_input("--epochs", "an int >= 1", args.epochs)
    if min(args.seeds) < 0:
        raise bad_input("--seeds", "ints >= 0", args.seeds)
    sizes = dict(zip(SPLITS, args.split_sizes or ()))
    with flags({"seed": "--data-seed", **{split: "--split-sizes" for split in SPLITS}}):
        benchmark = BenchmarkConfig(seed=args.data_seed, **sizes)
    out = output_folder("--out", args.out)
    progress = not args.no_progress
    data = build_benchmark(out / "benchmark", benchmark, progress=progress)
    splits = {name: load_split(data, name) for name in SCORED}
    baselines = {split: {k: r.to_dict(per_image=False) for k, r in evaluate_baselines(samples).items()}
                 for split, samples in splits.items()}
    for seed in args.seeds:
        caches: dict = {}  # (a) and (b) share the SACL views' trunk features, (c) and (d) SSPL's
        for key in args.variants:
            folder = out / "runs" / f"{key}-seed{seed}"
            done = folder / "result.json"
            if done.exists() and json.loads(done.read_text()).get("settings") == _settings(args):
                print(f"{VARIANTS[key][0]}, seed {seed}: done earlier ({done})", flush=True)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            run_one(key, seed, args, data, splits, folder, caches)

    results = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/result.json"))]
    results = [r for r in results if r.get("settings") == _settings(args)]
    command = (f"`python benchmarks/bench_claim.py --out {args.out} --epochs {args.epochs} --data-seed {args.data_seed} "
               "--seeds S.. --variants V..` (runs accumulate in OUT/runs)")
    text = report(results, baselines, {k: len(v) for k, v in splits.items()}, command)
    (out / "claim.md").write_text(text)
    (out / "claim.json").write_text(json.dumps({"baselines": baselines, "runs": results}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
