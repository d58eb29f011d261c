"""The INT8 cpu target from the command lines: build_engine.py --int8-target cpu writes an ONNX for
ONNX Runtime's CPU kernels and builds no engine; TensorRT's path refuses that file; bench_int8.py
checks its --targets first. (Its graph and its scores: tests/test_export_onnx.py.)"""
from __future__ import annotations

import json

import pytest

from conftest import load_script

pytest.importorskip("onnxruntime", reason="the export extra is not installed")


@pytest.fixture(scope="module")
def cpu_run(checkpoint, tiny_benchmark, tmp_path_factory):
    from avsdk.export.build_engine import main

    out = tmp_path_factory.mktemp("cpu")
    code = main(["--checkpoint", str(checkpoint), "--int8", "--int8-target", "cpu", "--calib-data",
                 str(tiny_benchmark), "--calib-size", "4", "--out", str(out)])
    return code, out


def test_cpu_target_writes_its_onnx_and_no_engine(cpu_run, capsys):
    code, out = cpu_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["edge.int8-cpu.onnx", "edge.int8-cpu.onnx.json",
                                                      "edge.onnx", "edge.onnx.json"]
    build = json.loads((out / "edge.int8-cpu.onnx.json").read_text())["build"]
    assert (build["target"], build["activations"], build["calibration_samples"]) == (
        "cpu", "uint8 asymmetric per-tensor", 4)


@pytest.mark.parametrize("extra, flag", [([], "--onnx"), (["--int8-target", "tensorrt"], "--onnx")])
def test_the_tensorrt_path_refuses_a_cpu_target_file(cpu_run, capsys, extra, flag):
    from avsdk.export.build_engine import main

    _, out = cpu_run
    assert main(["--onnx", str(out / "edge.int8-cpu.onnx"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: expected an INT8 ONNX quantized for --int8-target tensorrt"), err
    assert "quantized for cpu" in err


@pytest.mark.parametrize("argv", [["--fp16"], ["--fp32"], ["--int8", "--engine", "x.engine"]])
def test_cpu_target_is_only_for_an_int8_onnx(checkpoint, tiny_benchmark, tmp_path, capsys, argv):
    from avsdk.export.build_engine import main

    args = ["--checkpoint", str(checkpoint), "--int8-target", "cpu", "--calib-data", str(tiny_benchmark),
            "--calib-size", "4", "--out", str(tmp_path / "out"), *argv]
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("error: --int8-target: expected tensorrt unless --int8")
    assert not (tmp_path / "out").exists()


def test_bench_int8_checks_its_targets_first(tmp_path, capsys):
    bench = load_script("benchmarks/bench_int8.py")
    checkpoint = tmp_path / "edge.pt"
    checkpoint.write_bytes(b"")  # refused before it is read
    assert bench.main(["--checkpoint", str(checkpoint), "--bench", str(tmp_path), "--targets", "cpu,gpu",
                       "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: --targets: expected a comma-separated list from "
                                              "('tensorrt', 'cpu')")
