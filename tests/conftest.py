"""Test configuration shared by the whole suite.

Triton reads TRITON_INTERPRET when a kernel is decorated, so the switch must be set before
anything imports avsdk.kernels (TOOLCHAIN.md, interpreter pitfall 1). Without a GPU every
Triton kernel runs under the interpreter on CPU tensors.
"""
import os

import pytest

try:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover - torch is a hard dependency
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def bench_kernels():
    """benchmarks/bench_kernels.py as a module (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_kernels.py"
    spec = importlib.util.spec_from_file_location("bench_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def device() -> str:
    """The device kernel tests run on: CUDA when present, else the CPU (interpreter)."""
    return "cuda" if _HAS_CUDA else "cpu"


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "gpu" in item.keywords and not _HAS_CUDA:
            item.add_marker(skip_gpu)
