"""Evaluate a model on a benchmark split, beside the trivial baselines.

    python -m avsdk.training.evaluate --checkpoint runs/edge/best.pt --data bench --split test
    python -m avsdk.training.evaluate --checkpoint edge.int8.onnx --data bench --json int8.json

Prints a Markdown table (model, all-ones map, centre box) with cIoU@0.5 and AUC under both
binarisation rules of docs/method.md, "Evaluation", the pointing game and the distractor
accuracy. Any file ``avsdk.Localizer.load`` reads works: a .pt checkpoint, an .onnx graph, a
TensorRT .engine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from avsdk.cli import command, flags, output_file, write_output
from avsdk.datasets import ON_SCREEN_SPLITS as SPLITS  # the splits with a box to score
from avsdk.errors import bad_input
from avsdk.frames import TRANSFORMS, canonical_transform



def run_evaluation(checkpoint: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                   batch_size: int = 16, limit: int | None = None, transform: str | None = None,
                   progress: bool = True) -> dict:
    """Score ``checkpoint`` and the baselines on ``split`` of the benchmark at ``data``.

    ``transform``, when given, overrides the frame transform recorded with the model:
    "stretch" or "centre_crop".

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
    localizer = Localizer.load(checkpoint, transform=transform)
    model = evaluate(localizer.predict, samples, batch_size=batch_size, progress=progress, audio=localizer.audio,
                     transform=localizer.transform, image_size=localizer.image_size)
    return {"model": model, **evaluate_baselines(samples)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m avsdk.training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="model file: .pt, .onnx or .engine")
    parser.add_argument("--data", required=True, help="benchmark root written by build_benchmark")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to score (default: test)")
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

    if args.json is not None:
        output_file("--json", args.json)
    transform = None if args.transform is None else canonical_transform(args.transform, "--transform")
    with flags({"limit": "--limit", "batch_size": "--batch-size", "root": "--data", "path": "--checkpoint"}):
        reports = run_evaluation(args.checkpoint, args.data, args.split, args.batch_size, args.limit,
                                 transform, progress=not args.no_progress)
    name = Path(args.checkpoint).name
    print(f"{name} on {args.split} ({reports['model'].n} images)")
    print(format_table(reports))
    if args.json is not None:
        payload = {"checkpoint": str(args.checkpoint), "data": str(args.data), "split": args.split,
                   "reports": {key: report.to_dict() for key, report in reports.items()}}
        write_output("--json", args.json, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
