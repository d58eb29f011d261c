"""INT8 vs FP32 by the task metric: cIoU@0.5 and AUC on the test split, and CPU latency.

    python benchmarks/bench_int8.py --checkpoint runs/edge/best.pt --bench data/realparts

Exports the checkpoint to an fp32 ONNX, quantizes it (Q/DQ, calibrated on train/val samples
only) with each asked calibration method, evaluates every artifact in ONNX Runtime on the
test split with avsdk.evaluation (docs/method.md, "Evaluation", both rules), times a batch-1
call of each on the CPU, and prints/writes the table. The target: the INT8 model
loses at most 0.02 cIoU@0.5 (value rule, >= 0.5) against FP32 for the default edge model.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from avsdk.cli import command, flags, input_file, output_folder
from avsdk.errors import bad_input
from avsdk.export.quantize import CALIBRATION_PASS_SAMPLES

MAX_DROP = 0.02


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--bench", type=Path, required=True, help="built real-parts benchmark root")
    parser.add_argument("--split", default="test", choices=("test", "unheard"), help="evaluation split")
    parser.add_argument("--calib-size", type=int, default=512)
    parser.add_argument("--pass-samples", type=int, default=CALIBRATION_PASS_SAMPLES,
                        help="calibrate in passes of this many samples (default %(default)s; "
                             "memory grows with it)")
    parser.add_argument("--calib-methods", default="percentile,minmax,entropy",
                        help="comma-separated: minmax, entropy, percentile")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8"))
    return parser.parse_args(argv)


def latency_ms(runner, frame, log_mel, runs: int) -> dict:
    """Batch-1 wall time of runner.run, after warm-up: p50 and p90 in ms."""
    for _ in range(3):
        runner.run(frame, log_mel)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run(frame, log_mel)
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90))}


def map_agreement(reference: np.ndarray, maps: np.ndarray) -> dict:
    """How far INT8 moves the heatmaps, whatever the ground truth: mean IoU of the binarised
    (>= 0.5 after min-max, at 224x224) maps, and mean Pearson correlation of the raw maps."""
    from avsdk import metrics

    ious, corr = [], []
    for a, b in zip(reference, maps):
        ba = metrics.binarize(metrics.localization_map(a))
        bb = metrics.binarize(metrics.localization_map(b))
        ious.append(float((ba & bb).sum() / max(1, (ba | bb).sum())))
        corr.append(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
    return {"binary_map_iou_mean": float(np.mean(ious)), "binary_map_iou_min": float(np.min(ious)),
            "correlation_mean": float(np.nanmean(corr))}


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    from avsdk.datasets import load_split
    from avsdk.evaluation import evaluate, evaluate_baselines, format_table, sample_inputs
    from avsdk.export.onnx_export import export_onnx, preprocessing_from_meta
    from avsdk.export.onnx_runtime import OnnxRunner
    from avsdk.export.quantize import METHODS, calibration_inputs, calibration_samples, quantize_int8
    from avsdk.models import load_checkpoint

    # every argument before the export and the calibration
    methods = [m.strip() for m in args.calib_methods.split(",") if m.strip()]
    if not methods or any(m not in METHODS for m in methods):
        raise bad_input("--calib-methods", f"a comma-separated list from {METHODS}", args.calib_methods)
    for flag, value in (("--threads", args.threads), ("--latency-runs", args.latency_runs),
                        ("--pass-samples", args.pass_samples)):
        if value < 1:
            raise bad_input(flag, "an int >= 1", value)
    input_file("--checkpoint", args.checkpoint)
    with flags({"size": "--calib-size", "root": "--bench"}):
        calibration_samples(args.bench, args.calib_size)
        load_split(args.bench, args.split)
    output_folder("--out", args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    model, meta = load_checkpoint(args.checkpoint)
    preprocessing = preprocessing_from_meta(meta)
    fp32 = export_onnx(model.eval(), args.out / f"{args.checkpoint.stem}.onnx", checkpoint=args.checkpoint,
                       preprocessing=preprocessing)
    audio = model.audio_spec
    calibration = calibration_inputs(args.bench, args.calib_size, transform=preprocessing.transform, audio=audio,
                                     image_size=preprocessing.image_size)
    artifacts = {"fp32": fp32}
    for method in methods:
        artifacts[f"int8 {method}"] = quantize_int8(
            fp32, args.out / f"{args.checkpoint.stem}.int8-{method}.onnx", calibration, method=method,
            pass_samples=args.pass_samples)

    samples = load_split(args.bench, args.split)
    frame, log_mel = sample_inputs(samples[0], preprocessing.transform, audio, preprocessing.image_size)
    import torch

    inputs = [sample_inputs(s, preprocessing.transform, audio, preprocessing.image_size) for s in samples]
    frames = torch.stack([i[0] for i in inputs]).numpy()
    mels = torch.stack([i[1] for i in inputs]).numpy()
    reports, timing, maps, agreement = {}, {}, {}, {}
    for name, path in artifacts.items():
        runner = OnnxRunner(path, threads=args.threads)
        reports[f"{name} (ONNX Runtime)"] = evaluate(runner.run, samples, transform=preprocessing.transform,
                                                     audio=audio, image_size=preprocessing.image_size)
        timing[name] = latency_ms(runner, frame[None], log_mel[None], args.latency_runs)
        maps[name] = np.concatenate([runner.run(frames[i:i + 16], mels[i:i + 16])
                                     for i in range(0, len(frames), 16)])
        agreement[name] = map_agreement(maps["fp32"], maps[name])
    reports.update(evaluate_baselines(samples))

    base = reports["fp32 (ONNX Runtime)"].rules["value"].ciou_at_05
    lines = [f"# INT8 vs FP32 on the {args.split} split ({len(samples)} samples)", "",
             format_table(reports), "",
             "| artifact | cIoU@0.5 drop vs fp32 | AUC drop | binary-map IoU with fp32 (mean / min) "
             f"| CPU latency p50 / p90 (batch 1, {args.threads} threads) | verdict |",
             "|:--|--:|--:|--:|--:|:--|"]
    base_auc = reports["fp32 (ONNX Runtime)"].rules["value"].auc
    verdicts = {}
    for name in artifacts:
        rules = reports[f"{name} (ONNX Runtime)"].rules["value"]
        drop, auc_drop = base - rules.ciou_at_05, base_auc - rules.auc
        verdicts[name] = "-" if name == "fp32" else ("PASS" if drop <= MAX_DROP else "FAIL")
        agree = agreement[name]
        lines.append(f"| {name} | {drop:+.3f} | {auc_drop:+.3f} | "
                     f"{agree['binary_map_iou_mean']:.3f} / {agree['binary_map_iou_min']:.3f} | "
                     f"{timing[name]['p50_ms']:.1f} / {timing[name]['p90_ms']:.1f} ms | {verdicts[name]} |")
    lines += ["", f"Acceptance: INT8 loses at most {MAX_DROP} cIoU@0.5 (value rule). "
              f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"command: python benchmarks/bench_int8.py {' '.join(sys.argv[1:])}"]
    text = "\n".join(lines)
    print(text)
    (args.out / "bench_int8.md").write_text(text + "\n")
    (args.out / "bench_int8.json").write_text(json.dumps({
        "split": args.split, "calibration_size": args.calib_size,
        "calibration_pass_samples": args.pass_samples,
        "reports": {k: v.to_dict(per_image=False) for k, v in reports.items()},
        "latency": timing, "map_agreement": agreement, "verdicts": verdicts,
    }, indent=2) + "\n")
    return 0 if all(v != "FAIL" for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
