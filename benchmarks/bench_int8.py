"""INT8 vs FP32 by the task metric: cIoU@0.5, AUC and pointing game on the test split, and CPU latency.

    python benchmarks/bench_int8.py --checkpoint runs/edge/best.pt --bench data/realparts

Exports the checkpoint to an fp32 ONNX, quantizes it (Q/DQ, calibrated on train/val samples
only) for each asked target (tensorrt: TensorRT's int8 Q/DQ; cpu: ONNX Runtime's CPU kernels)
with each asked calibration method, evaluates every artifact in ONNX Runtime on the test split
with avsdk.evaluation (docs/method.md, "Evaluation", both rules), times batch-1 calls of all of
them interleaved on the CPU (so that a load on the machine falls on each alike), and
prints/writes the table. The targets: an INT8 model loses at most 0.02 cIoU@0.5, AUC and
pointing game (value rule, >= 0.5) against FP32 for the default edge model, and the cpu target
runs at least 1.5x as fast as FP32 (p50, same run).
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
from avsdk.export.calibration import CALIBRATION_PASS_SAMPLES

MAX_DROP = 0.02
MIN_CPU_SPEEDUP = 1.5  # the cpu target's p50 against fp32's, measured in the same run


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
    parser.add_argument("--targets", default="tensorrt,cpu",
                        help="comma-separated INT8 targets: tensorrt (Q/DQ for TensorRT), cpu (ONNX Runtime's CPU "
                             "kernels)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8"))
    return parser.parse_args(argv)


def latency_ms(runners: dict, frame, log_mel, runs: int) -> dict:
    """Batch-1 wall time of each runner.run, after warm-up, the runners taking turns call by
    call (a load on the machine falls on each alike): {name: {"p50_ms", "p90_ms"}}."""
    for runner in runners.values():
        for _ in range(3):
            runner.run(frame, log_mel)
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.run(frame, log_mel)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90))}
            for name, t in times.items()}


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


def metric_drops(report, base) -> dict:
    """How much ``report`` loses against ``base`` (value rule): positive is worse."""
    return {"ciou_at_0.5": base.rules["value"].ciou_at_05 - report.rules["value"].ciou_at_05,
            "auc": base.rules["value"].auc - report.rules["value"].auc,
            "pointing_game": base.pointing_game - report.pointing_game}


def verdict(report, base, target: str, speedup: float) -> str:
    """"-" for fp32, else PASS when no metric drops by more than MAX_DROP and, for the cpu
    target, the model runs at least MIN_CPU_SPEEDUP times as fast as fp32."""
    if target == "-":
        return "-"
    drops = metric_drops(report, base)
    failed = [name for name, drop in drops.items() if drop > MAX_DROP]
    if target == "cpu" and speedup < MIN_CPU_SPEEDUP:
        failed.append(f"speed {speedup:.2f}x")
    return "PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    from avsdk.datasets import load_split
    from avsdk.evaluation import evaluate, evaluate_baselines, format_table, sample_inputs
    from avsdk.export.onnx_export import export_onnx, preprocessing_from_meta
    from avsdk.export import OnnxRunner, read_manifest
    from avsdk.export.calibration import calibration_inputs, calibration_samples
    from avsdk.export.quantize import METHODS, TARGETS, quantize_int8
    from avsdk.models import load_checkpoint

    # every argument before the export and the calibration
    methods = [m.strip() for m in args.calib_methods.split(",") if m.strip()]
    if not methods or any(m not in METHODS for m in methods):
        raise bad_input("--calib-methods", f"a comma-separated list from {METHODS}", args.calib_methods)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or any(t not in TARGETS for t in targets):
        raise bad_input("--targets", f"a comma-separated list from {TARGETS}", args.targets)
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
    preprocessing = read_manifest(fp32).preprocessing  # with the model's own frame size (the edge model's 384)
    audio = model.audio_spec
    calibration = calibration_inputs(args.bench, args.calib_size, transform=preprocessing.transform, audio=audio,
                                     image_size=preprocessing.image_size)
    artifacts, target_of = {"fp32": fp32}, {"fp32": "-"}
    for method in methods:
        for target in targets:  # the same calibration samples for every target
            kind = "int8" if target == "tensorrt" else f"int8-{target}"
            name = f"{kind} {method}"
            artifacts[name] = quantize_int8(
                fp32, args.out / f"{args.checkpoint.stem}.{kind}-{method}.onnx", calibration, method=method,
                pass_samples=args.pass_samples, target=target)
            target_of[name] = target

    samples = load_split(args.bench, args.split)
    frame, log_mel = sample_inputs(samples[0], preprocessing.transform, audio, preprocessing.image_size)
    import torch

    inputs = [sample_inputs(s, preprocessing.transform, audio, preprocessing.image_size) for s in samples]
    frames = torch.stack([i[0] for i in inputs]).numpy()
    mels = torch.stack([i[1] for i in inputs]).numpy()
    reports, maps, agreement, runners = {}, {}, {}, {}
    for name, path in artifacts.items():
        runner = runners[name] = OnnxRunner(path, threads=args.threads)
        reports[f"{name} (ONNX Runtime)"] = evaluate(runner.run, samples, transform=preprocessing.transform,
                                                     audio=audio, image_size=preprocessing.image_size)
        maps[name] = np.concatenate([runner.run(frames[i:i + 16], mels[i:i + 16])
                                     for i in range(0, len(frames), 16)])
        agreement[name] = map_agreement(maps["fp32"], maps[name])
    reports.update(evaluate_baselines(samples))
    timing = latency_ms(runners, frame[None], log_mel[None], args.latency_runs)
    for name in artifacts:
        timing[name]["speedup_vs_fp32"] = timing["fp32"]["p50_ms"] / timing[name]["p50_ms"]

    lines = [f"# INT8 vs FP32 on the {args.split} split ({len(samples)} samples)", "",
             format_table(reports), "",
             "| artifact | target | cIoU@0.5 drop vs fp32 | AUC drop | pointing game drop "
             "| binary-map IoU with fp32 (mean / min) "
             f"| CPU latency p50 / p90 (batch 1, {args.threads} threads) | speed-up vs fp32 (p50) | verdict |",
             "|:--|:--|--:|--:|--:|--:|--:|--:|:--|"]
    verdicts = {name: verdict(reports[f"{name} (ONNX Runtime)"], reports["fp32 (ONNX Runtime)"], target_of[name],
                              timing[name]["speedup_vs_fp32"]) for name in artifacts}
    for name in artifacts:
        drops = metric_drops(reports[f"{name} (ONNX Runtime)"], reports["fp32 (ONNX Runtime)"])
        agree = agreement[name]
        lines.append(f"| {name} | {target_of[name]} | {drops['ciou_at_0.5']:+.3f} | {drops['auc']:+.3f} | "
                     f"{drops['pointing_game']:+.3f} | "
                     f"{agree['binary_map_iou_mean']:.3f} / {agree['binary_map_iou_min']:.3f} | "
                     f"{timing[name]['p50_ms']:.1f} / {timing[name]['p90_ms']:.1f} ms | "
                     f"{timing[name]['speedup_vs_fp32']:.2f}x | {verdicts[name]} |")
    lines += ["", f"Acceptance: INT8 loses at most {MAX_DROP} cIoU@0.5, AUC and pointing game (value rule); "
              f"the cpu target also runs at least {MIN_CPU_SPEEDUP}x as fast as fp32 (p50 of the interleaved "
              f"calls above). CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
              f"average {os.getloadavg()[0]:.1f} at the end; "
              f"command: python benchmarks/bench_int8.py {' '.join(sys.argv[1:])}"]
    text = "\n".join(lines)
    print(text)
    (args.out / "bench_int8.md").write_text(text + "\n")
    (args.out / "bench_int8.json").write_text(json.dumps({
        "split": args.split, "calibration_size": args.calib_size, "targets": target_of,
        "calibration_pass_samples": args.pass_samples,
        "reports": {k: v.to_dict(per_image=False) for k, v in reports.items()},
        "latency": timing, "map_agreement": agreement, "verdicts": verdicts,
    }, indent=2) + "\n")
    return 0 if not any(v.startswith("FAIL") for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
