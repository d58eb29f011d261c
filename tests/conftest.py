"""Test configuration shared by the whole suite.

Triton reads TRITON_INTERPRET when a kernel is decorated, so the switch must be set before
anything imports avsdk.kernels (docs/toolchain.md, "Triton interpreter", item 1). Without a
GPU every Triton kernel runs under the interpreter on CPU tensors.
"""
import os
import re

import pytest

try:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover - torch is a hard dependency
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

os.environ.setdefault("OMP_NUM_THREADS", "2")


def assert_refusal(error, argument: str, expected: str) -> None:
    """``error`` (an InputError) names ``argument`` and reads ``"<argument>: expected ..."``, the
    rest matching the regular expression ``expected`` (what was expected and received)."""
    message = str(error)
    assert error.argument == argument and message.startswith(f"{argument}: expected "), message
    assert re.search(expected, message[len(f"{argument}: expected "):]), message


def load_script(relative: str):
    """A script of the repository (benchmarks/ and export/ scripts are not importable by
    name) loaded as a module, e.g. ``load_script("benchmarks/bench_kernels.py")``."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench_kernels():
    """benchmarks/bench_kernels.py as a module (benchmarks/ is not a package)."""
    return load_script("benchmarks/bench_kernels.py")


@pytest.fixture
def run_compiling_benchmark():
    """-> run(script, *args): benchmarks/<script> in a subprocess without TRITON_INTERPRET (it
    compiles the kernels for a GPU with Triton's bundled ptxas; skips when there is none),
    returning the CompletedProcess after checking its exit code."""
    import subprocess
    import sys
    from pathlib import Path

    triton = pytest.importorskip("triton", reason="compiling the kernels needs triton")
    if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists():
        pytest.skip("this triton build has no bundled ptxas")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"

    def run(script: str, *args: str):
        done = subprocess.run([sys.executable, str(benchmarks / script), *args],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    return run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained default model saved as an avsdk checkpoint (the CLI and bad-input tests)."""
    import torch

    from avsdk.models import ModelConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "edge.pt"
    save_checkpoint(path, build_model(ModelConfig(), pretrained=False))
    return path


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory):
    """A real-parts benchmark of a few samples per split, built from the committed asset pack."""
    datasets = pytest.importorskip("avsdk.datasets")
    config = datasets.BenchmarkConfig(train=12, val=4, test=2, unheard=2)
    return datasets.build_benchmark(tmp_path_factory.mktemp("bench"), config, progress=False)


@pytest.fixture
def device() -> str:
    """The device kernel tests run on: CUDA when present, else the CPU (interpreter)."""
    return "cuda" if _HAS_CUDA else "cpu"


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "gpu" in item.keywords and not _HAS_CUDA:
            item.add_marker(skip_gpu)
