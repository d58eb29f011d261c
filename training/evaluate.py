"""Evaluate a model on a benchmark split, beside the trivial baselines.

    python -m avsdk.training.evaluate --checkpoint runs/edge/best.pt --data bench --split test
    python -m avsdk.training.evaluate --checkpoint edge.int8.onnx --data bench --json int8.json
    python -m avsdk.training.evaluate --checkpoint edge.onnx --flickr Datasets/SoundNet_Flickr
    python -m avsdk.training.evaluate --sacl frame_best.pth sound_best.pth --vggss Datasets/VGG-Sound
    python -m avsdk.training.evaluate --check --flickr Datasets/SoundNet_Flickr

Prints a Markdown table (model, all-ones map, centre box) with cIoU@0.5 and AUC under both
binarisation rules of docs/method.md, "Evaluation"; on avsdk's own benchmark (--data) also the
pointing game and the distractor accuracy. --flickr and --vggss read the published benchmarks
in the reference code's folder layouts (docs/datasets.md) and mark the rule of their protocol;
--check only reads such a folder and says which pairs are missing or unreadable, and why (exit
status 1 when any is). Any file ``avsdk.Localizer.load`` reads works: a .pt checkpoint, an .onnx
graph, a TensorRT .engine; --sacl takes the released SACL pair of state_dicts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from avsdk.cli import command, flags, input_file, output_file, write_output
from avsdk.datasets import ON_SCREEN_SPLITS as SPLITS  # the splits with a box to score
from avsdk.errors import bad_input
from avsdk.frames import TRANSFORMS, canonical_transform



def run_evaluation(checkpoint: str | os.PathLike | None, data: str | os.PathLike, split: str = "test",
                   batch_size: int = 16, limit: int | None = None, transform: str | None = None,
                   progress: bool = True, localizer=None) -> dict:
    """Score ``checkpoint`` and the baselines on ``split`` of the benchmark at ``data``.

    ``transform``, when given, overrides the frame transform recorded with the model:
    "stretch" or "centre_crop". ``localizer``, when given, is scored instead of loading
    ``checkpoint`` (a Localizer.load_sacl pair).

    Returns:
        {"model": EvalReport, "all-ones": EvalReport, "centre box": EvalReport}.
    Raises:
        InputError: a bad limit, batch size or transform, no benchmark at ``data``, no model
            file at ``checkpoint``; all before the slow part.
    """
    if transform is not None:
        transform = canonical_transform(transform)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise bad_input("limit", "an int >= 1 (None: all samples)", limit)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise bad_input("batch_size", "an int >= 1", batch_size)
    from avsdk.datasets import load_split
    from avsdk.evaluation import evaluate, evaluate_baselines
    from avsdk.localizer import Localizer

    samples = list(load_split(data, split))
    if limit is not None:
        samples = samples[:limit]
    if localizer is None:
        localizer = Localizer.load(checkpoint, transform=transform)
    model = evaluate(localizer.predict, samples, batch_size=batch_size, progress=progress, audio=localizer.audio,
                     transform=localizer.transform, image_size=localizer.image_size)
    return {"model": model, **evaluate_baselines(samples)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m avsdk.training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", help="model file: .pt, .onnx or .engine")
    model.add_argument("--sacl", nargs=2, metavar=("FRAME", "SOUND"),
                       help="the released SACL checkpoint pair (visual and audio state_dicts)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="benchmark root written by build_benchmark")
    data.add_argument("--flickr", metavar="ROOT", help="Flickr-SoundNet test, the SoundNet_Flickr folder "
                      "(or its parent) in the layout of docs/datasets.md")
    data.add_argument("--vggss", metavar="ROOT", help="VGG-SS, the VGG-Sound folder (or its parent) in the "
                      "layout of docs/datasets.md")
    parser.add_argument("--check", action="store_true", help="with --flickr / --vggss: only read every pair "
                        "and report what is missing or unreadable (no model)")
    parser.add_argument("--test-list", default=None, metavar="CSV", help="with --flickr / --vggss: the test "
                        "list to read instead of the reference's (one id per line)")
    parser.add_argument("--split", default=None, choices=SPLITS, help="with --data: split to score (default: test)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N samples")
    parser.add_argument("--transform", default=None, metavar="{" + ",".join(TRANSFORMS) + "}",
                        help="override the frame transform recorded with the model: stretch (the whole "
                        "frame resized to the model's square input) or centre_crop (its centre square)")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports (per image) here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from avsdk.evaluation import format_table

    published = "flickr" if args.flickr is not None else "vggss" if args.vggss is not None else None
    _check_combination(args, published)
    if args.json is not None:
        output_file("--json", args.json)
    transform = None if args.transform is None else canonical_transform(args.transform, "--transform")
    if published is not None:
        return _published(args, published, transform)
    args.split = args.split or "test"
    sacl = {"localizer": _sacl(args.sacl, transform)} if args.sacl is not None else {}
    with flags({"limit": "--limit", "batch_size": "--batch-size", "root": "--data", "path": "--checkpoint"}):
        reports = run_evaluation(args.checkpoint, args.data, args.split, args.batch_size, args.limit,
                                 transform, progress=not args.no_progress, **sacl)
    print(f"{_model_name(args)} on {args.split} ({reports['model'].n} images)")
    print(format_table(reports))
    if args.json is not None:
        payload = {**_model_json(args), "data": str(args.data), "split": args.split,
                   "reports": {key: report.to_dict() for key, report in reports.items()}}
        write_output("--json", args.json, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    return 0


def _check_combination(args, published: str | None) -> None:
    """Flags that mean nothing together are refused, not ignored."""
    if args.check and published is None:
        raise bad_input("--check", "--flickr ROOT or --vggss ROOT (it checks a published benchmark's folder)",
                        "--data", described=True)
    if args.check and (args.checkpoint or args.sacl):
        raise bad_input("--check", "no model (it reads the data only)",
                        "--checkpoint" if args.checkpoint else "--sacl", described=True)
    if not args.check and not (args.checkpoint or args.sacl):
        raise bad_input("--checkpoint", "a model file (.pt, .onnx or .engine), or --sacl FRAME SOUND",
                        "neither", described=True)
    if published is not None and args.split is not None:
        raise bad_input("--split", f"only with --data (--{published} has one test list)", args.split)
    if published is None and args.test_list is not None:
        raise bad_input("--test-list", "only with --flickr or --vggss", args.test_list)


def _sacl(paths, transform: str | None):
    """Localizer.load_sacl of the --sacl pair, with --transform if given."""
    from avsdk.localizer import Localizer

    frame, sound = (input_file("--sacl", path) for path in paths)
    localizer = Localizer.load_sacl(frame, sound)
    if transform is not None:
        localizer.transform = transform
    return localizer


def _model_name(args) -> str:
    return Path(args.checkpoint).name if args.checkpoint else "SACL " + " + ".join(Path(p).name for p in args.sacl)


def _model_json(args) -> dict:
    return {"checkpoint": str(args.checkpoint) if args.checkpoint else None,
            **({"sacl": list(args.sacl)} if args.sacl else {})}


def _published(args, name: str, transform: str | None) -> int:
    """--flickr / --vggss: check the folder, or score the model on it."""
    from avsdk.datasets.published import check, format_check, load_published
    from avsdk.published_eval import evaluate_published, format_report

    for flag, paths in (("--sacl", args.sacl or []), ("--checkpoint", [args.checkpoint] if args.checkpoint else [])):
        for path in paths:  # before the listing, which reads every annotation
            input_file(flag, path)
    with flags({"root": f"--{name}", "test_list": "--test-list", "limit": "--limit",
                "batch_size": "--batch-size", "path": "--checkpoint"}):
        bench = load_published(name, getattr(args, name), args.test_list)
        if args.check:
            checked = check(bench, progress=not args.no_progress)
            print(format_check(checked))
            if args.json is not None:
                payload = {"benchmark": name, "root": str(bench.root), "layout": bench.layout,
                           "test_list": str(bench.test_list), "listed": bench.listed, "usable": list(checked.usable),
                           "skipped": [{"id": s.id, "reason": s.reason, "detail": s.detail} for s in checked.skipped]}
                write_output("--json", args.json, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
            return 1 if checked.skipped else 0
        if args.sacl is not None:
            localizer = _sacl(args.sacl, transform)
        else:
            from avsdk.localizer import Localizer

            localizer = Localizer.load(args.checkpoint, transform=transform)
        report = evaluate_published(localizer, bench, args.batch_size, args.limit, progress=not args.no_progress)
    print(f"{_model_name(args)} on {bench.title} at {bench.root}")
    print(format_report(report))
    if args.json is not None:
        payload = {**_model_json(args), **report.to_dict()}
        write_output("--json", args.json, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
