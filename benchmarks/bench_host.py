"""Host (CPU-side) cost of one masked_infonce step, on a machine without a GPU.

Small steps on a GPU are bound by the host, not the device: on the H100 the fused forward +
backward took about as long at B = 64 as at B = 256 (results/kernels_h100.md), so the Python
side (argument checks, autograd, Triton's argument binding, allocations, the torch ops between
kernels) sets the floor of the step time. That side is measured here, for real, without a GPU:
every Triton kernel is compiled for sm_90 (Triton's bundled ptxas) and launched through
Triton's own launch path into a null driver whose launcher does nothing. Everything the host
does per step runs; nothing runs on a device. Torch ops run on small CPU tensors (B = 16),
where their arithmetic is negligible next to their dispatch.

For each tile set: microseconds per forward and per forward + backward (median), Triton
launches per step, and torch ops per step that would launch a CUDA kernel (views and
allocations not counted). The eager reference's row is the same step on CPU tensors.

    python benchmarks/bench_host.py                   # every tile set of the sweep, fp32, bf16
    python benchmarks/bench_host.py --sets default --dtypes bf16

Host speed differs between machines (the lent H100's host ran torch ops several times slower
than this one): compare rows of one run, not runs of different machines.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

if os.environ.get("TRITON_INTERPRET", "0") == "1":  # the interpreter does not compile
    sys.exit("bench_host: unset TRITON_INTERPRET (kernels are compiled, not interpreted)")

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernels import DTYPES, _inputs, _sweep_tiles  # noqa: E402

# torch ops that launch no CUDA kernel: allocations, views, metadata
NO_KERNEL_OPS = {
    "empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "view",
    "_unsafe_view", "as_strided", "detach", "alias", "expand", "t", "transpose", "permute",
    "select", "slice", "squeeze", "unsqueeze", "reshape", "view_as", "lift_fresh",
    "promote_types",
}


def null_driver(arch: int = 90):
    """A Triton driver for a GPU that is not there: kernels compile for sm_<arch>, launches
    go through Triton's whole host path and end in a launcher that counts them."""
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.driver import CudaDriver

    class Utils:
        @staticmethod
        def load_binary(name, kernel, shared, device):  # -> module, function, regs, spills, threads
            return 1, 1, 0, 0, 1024

        @staticmethod
        def get_device_properties(device):
            return {"max_shared_mem": 232448, "multiprocessor_count": 132}

    class NullDriver(CudaDriver):
        def __init__(self):  # CudaDriver's own builds a CUDA C extension: not here
            self.utils = Utils()
            self.launches = 0

            def launcher(src, metadata):
                def launch(*args):
                    self.launches += 1
                return launch

            self.launcher_cls = launcher

        def get_current_device(self):
            return 0

        def get_current_stream(self, device=None):
            return 0

        def get_device_capability(self, device=0):
            return divmod(arch, 10)

        def get_current_target(self):
            return GPUTarget("cuda", arch, 32)

    return NullDriver()


@contextlib.contextmanager
def active(driver):
    from triton.runtime import driver as config

    previous = config._active  # None on a machine without a GPU (no default driver)
    config.set_active(driver)
    try:
        yield driver
    finally:
        config._active = previous


class OpCounter(TorchDispatchMode):
    """Counts the torch ops that would launch a CUDA kernel."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in NO_KERNEL_OPS:
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


def _median_us(call, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def measure(loss_fn, leaves, reps: int, driver=None) -> dict:
    """-> µs per forward and per forward + backward, Triton launches and kernel ops per step."""
    def step():
        loss_fn().backward()
        for leaf in leaves:
            leaf.grad = None

    step()  # compiles
    counter = OpCounter()
    launches_before = driver.launches if driver else 0
    with counter:
        step()
    launches = (driver.launches - launches_before) if driver else 0
    forward_us = _median_us(loss_fn, reps)
    step_us = _median_us(step, reps)
    return {"fwd_us": forward_us, "step_us": step_us, "launches": launches,
            "torch_ops": len(counter.ops), "ops": counter.ops}


def run(dtypes, sets, B: int, C: int, HW: int, reps: int, arch: int = 90) -> list[dict]:
    from avsdk.kernels import reference
    from avsdk.kernels.fused_infonce import MaskedInfoNCE

    rows = []
    driver = null_driver(arch)
    for name in dtypes:
        dtype = DTYPES[name]
        leaves, (mask, keep) = _inputs("masked_infonce", B, C, HW, dtype, device="cpu")
        visual, audio = leaves
        result = measure(lambda: reference.masked_infonce(visual, mask, audio, keep, 0.005),
                         leaves, reps)
        rows.append({"dtype": name, "set": "eager (reference, CPU)", **result})
        with active(driver):
            for set_name, tiles in _sweep_tiles(dtype, 196).items():
                if sets and set_name not in sets:
                    continue
                result = measure(lambda tiles=tiles: MaskedInfoNCE.apply(
                    visual, mask, audio, keep, 0.005, tiles), leaves, reps, driver)
                rows.append({"dtype": name, "set": set_name, **result})
    return rows


def table(rows) -> str:
    lines = ["| dtype | tile set | fwd us | fwd+bwd us | Triton launches | torch kernel ops |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dtype']} | {r['set']} | {r['fwd_us']:.1f} | {r['step_us']:.1f} | "
                     f"{r['launches']} | {r['torch_ops']} ({', '.join(r['ops'])}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--sets", nargs="*", help="tile sets (default: every one of the sweep)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--hw", type=int, default=16)
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args(argv)
    rows = run(args.dtypes, args.sets, args.batch, args.channels, args.hw, args.reps)
    print(f"# host cost of one masked_infonce step: B = {args.batch}, C = {args.channels}, "
          f"HW = {args.hw}, torch {torch.__version__}, median of {args.reps}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
