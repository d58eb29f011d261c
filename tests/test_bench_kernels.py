"""benchmarks/bench_kernels.py's tile sweep and profile, run on CPU under the interpreter.

The timings need a GPU (the device check, benchmarks/gpu_check.sh, is short and rare), so
here the timers are replaced by a call counter: what is checked is that every tile set and
stage runs, that each tile set agrees with the default one, and the rows written.
"""
from __future__ import annotations

import argparse

import pytest
import torch

pytest.importorskip("triton", reason="the fused kernels need triton (pip install 'avsdk[train]')")


@pytest.fixture
def bench(monkeypatch, device, bench_kernels):
    if device == "cuda":
        pytest.skip("on a GPU the real benchmark runs (benchmarks/gpu_check.sh)")
    module = bench_kernels
    monkeypatch.setattr(module, "DEVICE", "cpu")
    calls = []

    def fake_bench(fn, *args, quantiles=None, **kwargs):
        fn()
        calls.append(fn)
        return [1.0, 0.5, 1.5]

    import triton.testing

    monkeypatch.setattr(triton.testing, "do_bench", fake_bench)
    monkeypatch.setattr(triton.testing, "do_bench_cudagraph", fake_bench)

    def fake_measure(fn, leaves, extra, *args):  # leaves' .grad untouched, as _measure leaves it
        step = lambda: torch.autograd.grad(fn(*leaves, *extra), leaves)  # noqa: E731
        return {"fwd+bwd": fake_bench(step)}, 0.0

    monkeypatch.setattr(module, "_measure", fake_measure)
    # the interpreter runs the GPU tile sets too slowly: the interpreter's blocks instead
    from avsdk.kernels import fused_infonce

    monkeypatch.setattr(fused_infonce, "default_tiles",
                        lambda B, dtype, on_gpu: fused_infonce.INTERPRETER_TILES)
    monkeypatch.setattr(module, "calls", calls, raising=False)
    return module


def _emitter():
    rows = []

    def emit(op, dtype, B, C, HW, provider, timings, peak_mb, note=""):
        for mode, (p50, _, _) in timings.items():
            rows.append({"provider": provider, "mode": mode, "ms": p50, "note": note})

    return rows, emit


def test_sweep_runs_every_tile_set_and_each_agrees_with_the_default(bench):
    rows, emit = _emitter()
    args = argparse.Namespace(warmup=1, rep=1)
    bench._run_sweep(6, 20, 12, torch.float32, args, emit)
    providers = [r["provider"] for r in rows]
    expected = {f"triton[{name}]" for name in bench._sweep_tiles(torch.float32, 12)}
    assert set(providers) == expected and {"triton[tuned]", "triton[f16x3]"} <= expected
    assert not [r for r in rows if "MISMATCH" in r["note"]]


def test_profile_times_each_kernel_and_the_graphed_step(bench):
    rows, emit = _emitter()
    args = argparse.Namespace(warmup=1, rep=1)
    bench._run_profile(5, 16, 10, torch.float16, args, emit)
    variants = bench._sweep_tiles(torch.float16, 10)
    stages = {"pair_max", "row_loss", "forward", "grad_visual", "grad_audio", "fwd+bwd graph"}
    for name in variants:
        modes = {r["mode"] for r in rows if r["provider"] == f"triton[{name}]"}
        assert modes == stages, name
    assert [r["mode"] for r in rows if r["provider"] == "eager"] == ["fwd+bwd graph"]
    assert len(bench.calls) == len(variants) * len(stages) + 1


def test_target_summary_ratios_fastest_first(bench_kernels):
    rows = [
        {"dtype": "bf16", "B": 256, "provider": "eager", "mode": "fwd+bwd", "ms": 1.8,
         "peak_mb": 240.0},
        {"dtype": "bf16", "B": 256, "provider": "compile", "mode": "fwd+bwd", "ms": 1.2,
         "peak_mb": 200.0},
        {"dtype": "bf16", "B": 256, "provider": "triton", "mode": "fwd+bwd", "ms": 0.9,
         "peak_mb": 60.0},
        {"dtype": "bf16", "B": 256, "provider": "triton[fused]", "mode": "fwd+bwd", "ms": 0.45,
         "peak_mb": 48.0},
        {"dtype": "bf16", "B": 256, "provider": "triton[fused]", "mode": "fwd", "ms": 0.1,
         "peak_mb": 48.0},
        {"dtype": "fp32", "B": 64, "provider": "triton", "mode": "fwd+bwd", "ms": 0.5,
         "peak_mb": 9.0},  # no eager row: no ratios to print
    ]
    table = bench_kernels.target_summary(rows).splitlines()
    assert table[2:] == [
        "| bf16 | 256 | triton[fused] | 0.450 | 4.00 | 2.67 | 20 % |",
        "| bf16 | 256 | triton | 0.900 | 2.00 | 1.33 | 25 % |",
    ]


def test_warm_shards_cover_every_tile_set_once(bench, monkeypatch):
    from avsdk.kernels import fused_infonce

    ran = []
    real = fused_infonce.masked_infonce

    def counting(*args, tiles=None):
        ran.append(tiles)
        return real(*args, tiles=tiles)

    monkeypatch.setattr(fused_infonce, "masked_infonce", counting)
    done = [bench.warm(i, 3, [4], ["fp32", "fp16"], 8, 6) for i in range(3)]
    sets = [bench._sweep_tiles(dtype, 6) for dtype in (torch.float32, torch.float16)]
    assert sum(done) == len(ran) == sum(len(s) for s in sets)
