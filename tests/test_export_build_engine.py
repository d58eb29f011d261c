"""export/build_engine.py as a user runs it, on a machine without TensorRT."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime", reason="the export extra is not installed")
if importlib.util.find_spec("tensorrt") is not None:
    pytest.skip("TensorRT is installed here: these tests cover the machine without it",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "export" / "build_engine.py"


def _run(*args, cwd=ROOT):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from avsdk.models import ModelConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "edge.pt"
    save_checkpoint(path, build_model(ModelConfig()))
    return path


@pytest.fixture(scope="module")
def fp32_run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return _run("--checkpoint", checkpoint, "--fp32", "--out", out, "--max-batch", "4"), out


def test_flags_are_parsed_into_their_values_and_defaults():
    from avsdk.export.build_engine import parse_args

    args = parse_args(["--onnx", "m.onnx", "--int8", "--calib-data", "bench", "--calib-size", "64",
                       "--calib-method", "minmax", "--opset", "18", "--batch", "2", "--out", "o",
                       "--workspace", "512"])
    assert (args.onnx, args.checkpoint, args.precision) == (Path("m.onnx"), None, "int8")
    assert (args.calib_data, args.calib_size, args.calib_method) == (Path("bench"), 64, "minmax")
    assert (args.opset, args.batch, args.out, args.workspace) == (18, 2, Path("o"), 512)
    for flag in ("--fp32", "--fp16"):
        assert parse_args(["--checkpoint", "c.pt", flag]).precision == flag[2:]
    defaults = parse_args(["--checkpoint", "c.pt"])
    assert defaults.precision is None  # fp32 from a checkpoint, the file's own from --onnx
    assert (defaults.calib_size, defaults.calib_method, defaults.calib_data) == (512, "percentile", None)
    assert (defaults.opset, defaults.batch, defaults.out, defaults.workspace) == (None, None, None, 1024)


@pytest.mark.parametrize("argv", [[], ["--checkpoint", "c.pt", "--onnx", "m.onnx"],
                                  ["--checkpoint", "c.pt", "--int8", "--fp16"]],
                         ids=["no-source", "two-sources", "two-precisions"])
def test_one_source_and_at_most_one_precision(argv, capsys):
    from avsdk.export.build_engine import parse_args

    with pytest.raises(SystemExit) as done:
        parse_args(argv)
    assert done.value.code == 2
    capsys.readouterr()  # argparse's usage and error


def test_without_tensorrt_writes_onnx_then_fails_with_trtexec_command(fp32_run, checkpoint):
    result, out = fp32_run
    assert result.returncode == 3, result.stderr
    assert "TensorRT was not found" in result.stderr
    assert "trtexec --onnx=edge.onnx --saveEngine=edge.fp32.engine" in result.stderr
    assert "--maxShapes=frame:4x3x224x224,log_mel:4x3x1x96x64" in result.stderr
    assert "--stronglyTyped" in result.stderr  # the TensorRT 10 line
    assert "--adopt edge.fp32.engine" in result.stderr  # how a trtexec engine gets its manifest
    assert "# TensorRT 11.x (on Jetson: 11.4.1+, JetPack 7.2.2+)" in result.stderr
    # trtexec may load a timing cache made on another device: none travels with the folder
    assert "--timingCacheFile" not in result.stderr
    onnx_file, manifest = out / "edge.onnx", out / "edge.onnx.json"
    assert onnx_file.is_file() and manifest.is_file()
    data = json.loads(manifest.read_text())
    assert data["precision"] == "fp32" and data["build"]["opset"] == 17
    from avsdk.export.manifest import sha256_file

    assert data["source"]["checkpoint_sha256"] == sha256_file(checkpoint)


def test_int8_from_onnx_needs_calibration_data(fp32_run):
    _, out = fp32_run
    result = _run("--onnx", out / "edge.onnx", "--int8")
    assert result.returncode == 2
    assert "--calib-data" in result.stderr and "Traceback" not in result.stderr


def test_fp16_cannot_come_from_an_fp32_onnx(fp32_run):
    _, out = fp32_run
    result = _run("--onnx", out / "edge.onnx", "--fp16")
    assert result.returncode == 2 and "FP16 needs the checkpoint" in result.stderr


def test_existing_onnx_of_the_asked_precision_is_used_as_is(fp32_run):
    _, out = fp32_run
    before = (out / "edge.onnx").stat().st_mtime_ns
    result = _run("--onnx", out / "edge.onnx", "--fp32", "--batch", "2")
    assert result.returncode == 3 and "TensorRT was not found" in result.stderr
    assert "--minShapes=frame:2x3x224x224" in result.stderr and "--maxShapes=frame:2x3" in result.stderr
    assert (out / "edge.onnx").stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from avsdk.datasets import BenchmarkConfig, build_benchmark

    return build_benchmark(tmp_path_factory.mktemp("bench"),
                           BenchmarkConfig(train=6, val=2, test=2, unheard=2), progress=False)


def test_int8_with_calibration_data(fp32_run, bench, tmp_path):
    _, out = fp32_run
    result = _run("--onnx", out / "edge.onnx", "--int8", "--calib-data", bench, "--calib-size", "4",
                  "--out", tmp_path)
    assert result.returncode == 3, result.stderr
    assert "trtexec --onnx=edge.int8.onnx --saveEngine=edge.int8.engine" in result.stderr
    assert " --int8" in result.stderr  # the TensorRT 8.x line
    data = json.loads((tmp_path / "edge.int8.onnx.json").read_text())
    assert data["precision"] == "int8" and data["build"]["calibration_samples"] == 4
    # without a precision flag, the file's own precision is built
    result = _run("--onnx", tmp_path / "edge.int8.onnx")
    assert result.returncode == 3, result.stderr
    assert "--saveEngine=edge.int8.engine" in result.stderr


@pytest.mark.parametrize("case", ["out-is-a-file", "missing-checkpoint", "calib-size-too-large",
                                  "calib-size-zero", "opset-unknown", "workspace-small"])
def test_bad_arguments_fail_at_once_naming_the_flag(case, checkpoint, bench, tmp_path):
    """One line on stderr, exit 2, and nothing exported or created: every check runs first."""
    out = tmp_path / "out"
    args = {"--checkpoint": checkpoint, "--out": out}
    flag = {"out-is-a-file": "--out", "missing-checkpoint": "--checkpoint",
            "calib-size-too-large": "--calib-size", "calib-size-zero": "--calib-size",
            "opset-unknown": "--opset", "workspace-small": "--workspace"}[case]
    if case == "out-is-a-file":
        out.write_text("not a folder")
    elif case == "missing-checkpoint":
        args["--checkpoint"] = tmp_path / "nowhere.pt"
    elif case.startswith("calib-size"):
        args |= {"--int8": None, "--calib-data": bench,
                 "--calib-size": 0 if case == "calib-size-zero" else 100_000}
    elif case == "opset-unknown":
        args["--opset"] = 99
    else:
        args["--workspace"] = 8
    result = _run(*[x for k, v in args.items() for x in ((k,) if v is None else (k, v))])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {flag}: expected"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert out.is_file() if case == "out-is-a-file" else not out.exists()


def test_adopt_needs_the_onnx_it_was_built_from(checkpoint, tmp_path):
    result = _run("--checkpoint", checkpoint, "--adopt", tmp_path / "x.engine", "--out", tmp_path)
    assert result.returncode == 2 and "--adopt" in result.stderr and "Traceback" not in result.stderr
