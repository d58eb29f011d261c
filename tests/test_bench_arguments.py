"""The benchmark scripts reject bad arguments in one line, with exit status 2, before their work."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def edge_ablation():
    return load_script("benchmarks/bench_edge_ablation.py")


@pytest.mark.parametrize("argv,flag", [(["--epochs", "0"], "--epochs"), (["--out", "DIR"], "--out")])
def test_edge_ablation_checks_arguments_first(argv, flag, edge_ablation, tmp_path, capsys):
    argv = ["--bench", str(tmp_path / "no-benchmark")] + [a.replace("DIR", str(tmp_path)) for a in argv]
    assert edge_ablation.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: expected ")


@pytest.mark.parametrize("argv,flag", [(["--rounds", "0"], "--rounds"), (["--calls", "0"], "--calls"),
                                       (["--cpu", "4096"], "--cpu")])
def test_frontend_bench_checks_arguments(argv, flag):
    done = _script(str(BENCHMARKS / "bench_frontend.py"), *argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {flag}: expected ") and done.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def int8_bench():
    pytest.importorskip("onnxruntime", reason="bench_int8.py needs the export extra")
    return load_script("benchmarks/bench_int8.py")


@pytest.mark.parametrize("argv,flag", [
    (["--calib-methods", "minmax,foo"], "--calib-methods"),
    (["--threads", "0"], "--threads"),
    (["--checkpoint", "MISSING"], "--checkpoint"),
    (["--bench", "MISSING"], "--bench"),
])
def test_int8_bench_checks_arguments_before_exporting(argv, flag, int8_bench, tmp_path, capsys):
    """Before: a bad calibration method was an InputError traceback after the ONNX export."""
    checkpoint = tmp_path / "edge.pt"
    checkpoint.write_bytes(b"")  # the arguments are refused before it is read
    base = {"--checkpoint": str(checkpoint), "--bench": str(tmp_path), "--out": str(tmp_path / "out")}
    base.update(dict(zip(argv[::2], [str(tmp_path / v) if v == "MISSING" else v for v in argv[1::2]])))
    assert int8_bench.main([x for pair in base.items() for x in pair]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: expected ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,flag", [(["--clips", "1"], "--clips"), (["--views", "1"], "--views"),
                                       (["--batch-size", "99", "--clips", "8"], "--batch-size"),
                                       (["--workers", "-1"], "--workers")])
def test_data_scale_bench_checks_arguments_first(argv, flag, tiny_benchmark, tmp_path):
    done = _script(str(BENCHMARKS / "bench_data_scale.py"), "--data", str(tiny_benchmark), "--out", str(tmp_path),
                   *argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {flag}: expected ") and done.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_data_scale_bench_refuses_a_folder_that_is_no_benchmark(tmp_path):
    done = _script(str(BENCHMARKS / "bench_data_scale.py"), "--data", str(tmp_path), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and done.stderr.startswith("error: --data: expected a built real-parts benchmark")
