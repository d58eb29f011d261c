"""Checkpoint or ONNX -> (FP16 / Q/DQ INT8 ONNX) -> TensorRT engine, with a manifest per artifact.

    python export/build_engine.py --checkpoint runs/edge/best.pt --int8 --calib-data bench/
    python export/build_engine.py --onnx best.int8.onnx --int8          # on the Jetson

Where TensorRT is not importable the ONNX artifacts are still written, and the script exits
with status 3 after printing the trtexec command that builds the same engine on the device.

The ONNX files of a run and their manifests are written into a hidden staging folder inside
the output folder and moved into place together at the end: an error or Ctrl-C during the
export or the calibration leaves the output folder as it was, never a new ``best.onnx``
beside an older ``best.int8.onnx`` or an ONNX file without its manifest.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from avsdk.cli import command

EXIT_NO_TENSORRT = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as the shell reports a process ended by SIGINT

EPILOG = """\
TensorRT engines are NOT portable: an engine runs only with the TensorRT version and on the
GPU it was built with. Build it on the device that will run it, and again after every
JetPack/TensorRT upgrade; engines are cached under names holding the TensorRT version, the
GPU, the precision and the ONNX hash, so a mismatch rebuilds instead of failing.
Supported: TensorRT 8.5/8.6 (JetPack 5.1/6.0), 10.x (JetPack 6.1+, 7.x), 11.x (on Jetson: 11.4.1+
with JetPack 7.2.2+; 11.0-11.4.0 do not support JetPack).
The engine's precision is its ONNX graph's (fp32, FP16-typed, or Q/DQ INT8): with --onnx and no
precision flag it is read from the file; a flag that contradicts the file is refused (except
--int8 with an fp32 ONNX, which quantizes it), so an engine is never built at another precision
than asked. Every argument and file is checked before any export, calibration or build.
The ONNX files of a run are written together at the end: an error or Ctrl-C before then
leaves the output folder as it was.
Exit status: 0 built, 2 error (one line on stderr), 3 TensorRT not found (ONNX written),
130 interrupted (Ctrl-C)."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="build_engine.py",
        description="Export an avsdk model to ONNX, quantize it and build a TensorRT engine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="avsdk checkpoint (.pt) to export")
    source.add_argument("--onnx", type=Path, help="an ONNX file written by avsdk.export (with its .json manifest)")
    precision = parser.add_mutually_exclusive_group()
    for name, text in (("fp32", "float32 engine (default with --checkpoint; with --onnx: the file's)"),
                       ("fp16", "engine from an FP16-typed ONNX"),
                       ("int8", "engine from a Q/DQ INT8 ONNX (calibrated with --calib-data)")):
        precision.add_argument(f"--{name}", dest="precision", action="store_const", const=name, help=text)
    parser.set_defaults(precision=None)
    parser.add_argument("--calib-data", type=Path, help="benchmark root; INT8 calibrates on its train/val splits")
    parser.add_argument("--calib-size", type=int, default=512, help="calibration samples (default 512)")
    parser.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"), default="percentile",
                        help="activation range method (default percentile, 99.999)")
    parser.add_argument("--calib-seed", type=int, default=0, help="seed of the calibration draw")
    parser.add_argument("--int8-target", choices=("tensorrt", "cpu"), default="tensorrt",
                        help="runtime the INT8 ONNX is for: tensorrt (default; int8 Q/DQ for the engine) or "
                             "cpu (ONNX Runtime's CPU kernels, uint8 activations; written as <name>.int8-cpu.onnx, "
                             "no engine is built)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17, parsed by TensorRT >= 8.5)")
    parser.add_argument("--batch", type=int, default=None, help="static batch size (default: dynamic batch)")
    parser.add_argument("--opt-batch", type=int, default=1, help="batch the engine is tuned for (dynamic batch)")
    parser.add_argument("--max-batch", type=int, default=8, help="largest batch of the engine (dynamic batch)")
    parser.add_argument("--workspace", type=int, default=1024, help="builder workspace in MiB (default 1024)")
    parser.add_argument("--with-embedding", action="store_true", help="also output audio_embedding [B, 512]")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: beside the input)")
    parser.add_argument("--engine", type=Path, default=None,
                        help="engine path (default: <out>/<name>.<precision>.trt<version>.<gpu>.<hash>.engine)")
    parser.add_argument("--adopt", type=Path, default=None, metavar="ENGINE",
                        help="do not build: write the manifest of ENGINE, built from --onnx by trtexec, "
                             "after checking that this TensorRT loads it")
    return parser.parse_args(argv)


def _say(text: str) -> None:
    print(text, flush=True)


def check_args(args) -> None:
    """Every check that needs no export, calibration or build; fills in args.precision.

    Raises:
        InputError: naming the flag, before anything is written.
    """
    from avsdk.cli import flags, input_file, output_file, output_folder
    from avsdk.errors import bad_input

    from avsdk.export.manifest import read_manifest
    from avsdk.export.tensorrt_build import onnx_precision

    source = input_file("--checkpoint" if args.checkpoint is not None else "--onnx",
                        args.checkpoint or args.onnx)
    found = "fp32"
    if args.onnx is not None:
        if source.suffix != ".onnx":
            raise bad_input("--onnx", "an .onnx file written by avsdk.export", str(source))
        with flags({"path": "--onnx"}):
            opset = read_manifest(source).build.get("opset")  # an avsdk artifact, with its manifest
        if args.opset is not None and opset != args.opset:
            raise bad_input("--opset", f"the opset of {source.name} ({opset}); re-export from the "
                            "checkpoint", args.opset)
        found = onnx_precision(source)
    args.precision = args.precision or found
    if args.int8_target == "cpu" and (args.precision != "int8" or args.engine or args.adopt):
        raise bad_input("--int8-target", "tensorrt unless --int8 without --engine/--adopt (a cpu-target "
                        "INT8 ONNX runs in ONNX Runtime: no engine)", args.int8_target)
    quantized_for = read_manifest(source).build.get("target", "tensorrt") if found == "int8" else None
    if quantized_for not in (None, args.int8_target):
        raise bad_input("--onnx", f"an INT8 ONNX quantized for --int8-target {args.int8_target}",
                        f"one quantized for {quantized_for}", described=True)
    if found != args.precision and not (found == "fp32" and args.precision == "int8"):
        raise bad_input("--onnx", f"an ONNX file of precision {args.precision} (or fp32 to quantize "
                        "for --int8); FP16 needs the checkpoint: --checkpoint ... --fp16",
                        f"a {found} ONNX file", described=True)
    if args.opset is not None and args.checkpoint is not None:
        from avsdk.export.onnx_export import check_opset_argument

        with flags({"opset": "--opset"}):
            check_opset_argument(args.opset)
    if args.precision == "int8" and found == "fp32":  # calibration ahead: check its data now
        if args.calib_data is None:
            raise bad_input("--calib-data", "a benchmark root for INT8 calibration (train/val splits)",
                            None)
        from avsdk.export.calibration import calibration_samples

        with flags({"size": "--calib-size", "root": "--calib-data"}):
            calibration_samples(args.calib_data, args.calib_size, seed=args.calib_seed)
    with flags({"precision": "--" + args.precision, "workspace_mib": "--workspace",
                "min_batch/opt_batch/max_batch": "--batch/--opt-batch/--max-batch"}):
        engine_config(args)
    output_folder("--out", args.out or source.parent)
    if args.engine is not None:
        output_file("--engine", args.engine, suffix=".engine")
    if args.adopt is not None:
        if args.onnx is None:
            raise bad_input("--adopt", "--onnx, the file the engine was built from", args.checkpoint)
        input_file("--adopt", args.adopt)


def load_model(args):
    """(model, meta) of --checkpoint, None for --onnx.

    Raises:
        CheckpointError: an unusable checkpoint, NaN or Inf weights included, before anything
            is written.
    """
    if args.checkpoint is None:
        return None
    from avsdk.localizer import _check_finite_weights
    from avsdk.models import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint)
    _check_finite_weights(model, f"checkpoint {str(args.checkpoint)!r}")
    return model.eval(), meta


@contextlib.contextmanager
def staged(out: Path):
    """A hidden folder inside ``out`` to write a set of artifacts in. When the block ends
    normally its files move into ``out`` together (os.replace: same file system, each file
    whole); on an error or Ctrl-C it is removed, so ``out`` keeps its previous, consistent set."""
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".build_engine-", dir=out))
    try:
        yield stage
        # each manifest after its artifact: a manifest in place says its artifact is complete
        files = sorted(stage.iterdir(), key=lambda path: (path.suffix == ".json", path.name))
        for path in files:
            os.replace(path, out / path.name)
        if files:
            _say(f"wrote {', '.join(path.name for path in files)} in {out}")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def onnx_for(args, checkpoint, stage: Path) -> Path:
    """Write the ONNX file of the asked precision (and the fp32 one it is made from) with their
    manifests into ``stage`` and return its path there; or return --onnx, when it already has
    that precision. ``checkpoint``: load_model's (model, meta)."""
    from avsdk.export.tensorrt_build import onnx_precision

    if args.checkpoint is not None:
        from avsdk.export.onnx_export import export_onnx, preprocessing_from_meta

        model, meta = checkpoint
        stem = args.checkpoint.stem
        common = dict(
            opset=args.opset or 17, dynamic_batch=args.batch is None, batch_size=args.batch or 1,
            with_embedding=args.with_embedding, checkpoint=args.checkpoint,
            preprocessing=preprocessing_from_meta(meta), visibility=meta.get("visibility"),
        )
        fp32 = export_onnx(model, stage / f"{stem}.onnx", precision="fp32", **common)
        if args.precision == "fp16":
            return export_onnx(model, stage / f"{stem}.fp16.onnx", precision="fp16", **common)
        if args.precision == "fp32":
            return fp32
        return quantize(args, fp32, stage / int8_name(stem, args.int8_target))

    if onnx_precision(args.onnx) == args.precision:  # else fp32 to quantize (check_args)
        return args.onnx
    stem = args.onnx.name[: -len(".onnx")]
    return quantize(args, args.onnx, stage / int8_name(stem, args.int8_target))


def int8_name(stem: str, target: str) -> str:
    """The INT8 ONNX's file name: ``<stem>.int8.onnx`` for TensorRT, ``<stem>.int8-cpu.onnx`` for
    ONNX Runtime's CPU kernels."""
    return f"{stem}.int8.onnx" if target == "tensorrt" else f"{stem}.int8-{target}.onnx"


def quantize(args, fp32: Path, target: Path) -> Path:
    from avsdk.export.calibration import calibration_inputs
    from avsdk.export.quantize import quantize_int8

    _say(f"calibrating on {args.calib_size} train/val samples of {args.calib_data} ({args.calib_method})")
    from avsdk.export.manifest import read_manifest

    prep = read_manifest(fp32).preprocessing
    inputs = calibration_inputs(args.calib_data, args.calib_size, seed=args.calib_seed, transform=prep.transform,
                                audio=prep.audio_spec(), image_size=prep.image_size)
    return quantize_int8(fp32, target, inputs, method=args.calib_method, target=args.int8_target)


def engine_config(args):
    from avsdk.export.tensorrt_build import EngineConfig

    if args.batch is not None:
        return EngineConfig(args.precision, args.workspace, args.batch, args.batch, args.batch)
    return EngineConfig(args.precision, args.workspace, 1, args.opt_batch, args.max_batch)


def tensorrt_or_none():
    """(module, None) or (None, why it could not be imported)."""
    try:
        import tensorrt

        return tensorrt, None
    except Exception as exc:  # ImportError, or OSError from missing libnvinfer/libnvonnxparser
        return None, f"{type(exc).__name__}: {exc}"


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)
    config = engine_config(args)
    checkpoint = load_model(args)
    out = args.out or (args.checkpoint or args.onnx).parent
    try:
        with staged(out) as stage:
            made = onnx_for(args, checkpoint, stage)
    except KeyboardInterrupt:
        print(f"interrupted; nothing was written ({out} is as it was)", file=sys.stderr)
        return EXIT_INTERRUPTED
    onnx_path = out / made.name if made.parent == stage else made
    if args.int8_target == "cpu":
        _say(f"{onnx_path} is for ONNX Runtime on the CPU (INT8 target cpu): no TensorRT engine")
        return 0
    try:
        return engine_for(args, onnx_path, config)
    except KeyboardInterrupt:
        print(f"interrupted while building the engine; the ONNX files in {out} are complete", file=sys.stderr)
        return EXIT_INTERRUPTED


def engine_for(args, onnx_path: Path, config) -> int:
    """Build (or adopt) the engine of ``onnx_path``, or print how to build it on the device."""
    from avsdk.export.manifest import read_manifest
    from avsdk.export.tensorrt_build import adopt_engine, build_engine, cached_engine, trtexec_commands

    trt, why = tensorrt_or_none()
    if trt is None:
        engine = args.engine or onnx_path.with_name(
            onnx_path.name[: -len(".onnx")].removesuffix(f".{args.precision}") + f".{args.precision}.engine")
        # No --timingCacheFile: recent trtexec loads a cache made on another device too
        # (ignore_mismatch=true), and this folder is about to travel to another machine.
        commands = trtexec_commands(onnx_path.name, engine.name, config, read_manifest(onnx_path))
        print(f"error: TensorRT was not found ({why}).", file=sys.stderr)
        print(f"The ONNX artifacts and their manifests are in {onnx_path.parent}. "
              "Copy them to the device and build the engine there, with", file=sys.stderr)
        print(f"  python export/build_engine.py --onnx {onnx_path.name} --{args.precision}", file=sys.stderr)
        print("or with the exact trtexec command for its TensorRT version "
              "(run it in the folder holding the ONNX file):", file=sys.stderr)
        for label, line in commands.items():
            print(f"  # {label}\n  {line}", file=sys.stderr)
        print("then give the trtexec engine its manifest (the runtime needs it): python "
              f"export/build_engine.py --onnx {onnx_path.name} --{args.precision} --adopt {engine.name}",
              file=sys.stderr)
        return EXIT_NO_TENSORRT
    if args.adopt is not None:
        engine = adopt_engine(onnx_path, args.adopt, config)
        _say(f"wrote the manifest of {engine} (TensorRT {trt.__version__}, {args.precision})")
        return 0
    if args.engine is not None:
        engine = build_engine(onnx_path, args.engine, config)  # timing cache per TensorRT and GPU
    else:
        engine = cached_engine(onnx_path, onnx_path.parent, config)
    _say(f"wrote {engine} (+ .json manifest), TensorRT {trt.__version__}, {args.precision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
