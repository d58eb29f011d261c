"""Compile the masked_infonce kernels for a GPU architecture on a machine without a GPU, and
report what each launch of each tile set gets: registers, spill stack, shared memory, and
whether its dots run as Hopper warp-group MMAs, older MMAs, or float32 FMAs.

No timing: that needs the GPU (bench_kernels.py). But a tile set whose kernels spill or run
their dots on FMAs cannot be fast, and a kernel that fails to compile for the GPU is caught
here, where the interpreter would not notice.

    python benchmarks/kernel_resources.py                    # sm_90 (H100), B = 256, both dtypes
    python benchmarks/kernel_resources.py --arch 87 --batch 1024 --dtypes fp32

Each launch is captured by running the package's own launch code on CPU tensors with the
kernels' ``run`` replaced by a recorder, so what is compiled is exactly what a CUDA call would
compile. Needs Triton with its bundled ptxas / cuobjdump (Linux wheels have them).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if os.environ.get("TRITON_INTERPRET", "0") == "1":  # the interpreter does not compile
    sys.exit("kernel_resources: unset TRITON_INTERPRET (kernels are compiled, not interpreted)")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernels import DTYPES, _sweep_tiles  # noqa: E402

@dataclass
class Launch:
    kernel: object  # the JITFunction
    signature: dict
    constexprs: dict
    attrs: dict
    options: dict


def _record(kernel, args, kwargs, launches: list) -> None:
    """Specialise the arguments as Triton's launcher would (its own rules: an int equal to 1
    becomes a constant, ints and pointers divisible by 16 are marked so), and keep the launch."""
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import native_specialize_impl

    options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
    values = dict(zip((p.name for p in kernel.params), args))
    values.update(kwargs)
    signature, constexprs, attrs = {}, {}, {}
    for index, param in enumerate(kernel.params):
        value = values[param.name]
        if param.is_constexpr:
            kind, key = "constexpr", None
        else:
            kind, key = native_specialize_impl(BaseBackend, value, False,
                                               not param.do_not_specialize,
                                               not param.do_not_specialize_on_alignment)
        signature[param.name] = kind
        if kind == "constexpr":
            constexprs[param.name] = value
        elif key:
            attrs[(index,)] = BaseBackend.parse_attr(key)
    launches.append(Launch(kernel, signature, constexprs, attrs, options))


@contextlib.contextmanager
def _recording():
    """Within: every Triton kernel launch is recorded (into the list yielded), not run."""
    from triton.runtime.jit import JITFunction

    launches: list[Launch] = []
    original = JITFunction.run

    def record(self, *args, grid, warmup, **kwargs):
        _record(self, args, kwargs, launches)

    JITFunction.run = record
    try:
        yield launches
    finally:
        JITFunction.run = original


def capture(tiles, B: int, C: int, HW: int, dtype: torch.dtype) -> list[Launch]:
    """The launches one masked_infonce forward + backward with ``tiles`` makes."""
    from avsdk.kernels import fused_infonce as fi

    with _recording() as launches:
        visual = F.normalize(torch.randn(B, C, HW), dim=1).to(dtype)
        audio = F.normalize(torch.randn(B, C), dim=1).to(dtype)
        mask = torch.ones(B, HW)
        keep = torch.ones(B, B, dtype=torch.bool).view(torch.uint8)
        gout = torch.ones(())
        plan = fi._plan_for(tiles, visual, audio, 0.005)
        _, grad_sims, argmax = fi._forward(plan, visual, mask, audio, keep)
        fi._grad_visual(plan, grad_sims, argmax, mask, audio, gout)
        fi._grad_audio(plan, grad_sims, argmax, mask, visual, gout)
    return launches


def capture_similarity(B: int, C: int, HW: int, dtype: torch.dtype) -> list[Launch]:
    """The launches of av_similarity's forward and backward."""
    from avsdk.kernels import fused_similarity as fs

    with _recording() as launches:
        visual, audio = torch.randn(B, C, HW).to(dtype), torch.randn(B, C).to(dtype)
        sim, att, pooled, saved = fs._forward(visual, audio)
        fs._backward(visual, audio, sim, att, *saved, sim, att, pooled.float())
    return launches


def _tool(name: str) -> str:
    import triton

    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


def compile_launch(launch: Launch, arch: int) -> dict:
    """Compile for sm_<arch>; -> registers, spill stack bytes, shared bytes, dot kind."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=launch.kernel, signature=launch.signature,
                       constexprs=launch.constexprs, attrs=launch.attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=launch.options)
    ttgir = compiled.asm["ttgir"]
    if "warp_group_dot" in ttgir:
        dots = "wgmma"
    elif "nvidia_mma" in ttgir:
        dots = "mma"
    elif "tt.dot" in ttgir:
        dots = "fma"
    else:
        dots = "-"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        usage = subprocess.run([_tool("cuobjdump"), "-res-usage", cubin.name],
                               capture_output=True, text=True, check=True).stdout
    # the kernel's own line: "REG:n STACK:n SHARED:n LOCAL:n ..."
    found = dict(re.findall(r"(REG|STACK):(\d+)", usage))
    return {"regs": int(found.get("REG", -1)), "stack": int(found.get("STACK", -1)),
            "shared": compiled.metadata.shared, "dots": dots}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90, 87")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--hw", type=int, default=196)
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--sets", nargs="*", help="tile sets to compile (default: all)")
    args = parser.parse_args(argv)
    print(f"# sm_{args.arch}, B = {args.batch}, C = {args.channels}, HW = {args.hw}; stack > 0 "
          "means register spills; shared in bytes")
    print("| dtype | tile set (or op) | kernel | warps | regs | stack | shared | dots |")
    print("|---|---|---|---|---|---|---|---|")
    cache: dict = {}
    for name in args.dtypes:
        dtype = DTYPES[name]
        shape = (args.batch, args.channels, args.hw, dtype)
        runs = [("av_similarity", capture_similarity(*shape))]
        runs += [(set_name, capture(tiles, *shape))
                 for set_name, tiles in _sweep_tiles(dtype, args.hw).items()
                 if not args.sets or set_name in args.sets]
        for set_name, launches in runs:
            for launch in launches:
                key = (launch.kernel.fn.__name__, repr(launch.signature),
                       repr(sorted(launch.constexprs.items())), repr(launch.attrs),
                       repr(launch.options))
                if key not in cache:
                    try:
                        cache[key] = compile_launch(launch, args.arch)
                    except Exception as exc:  # report it with its tile set, go on
                        cache[key] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
                info = cache[key]
                kernel = launch.kernel.fn.__name__.strip("_").removesuffix("_kernel")
                warps = launch.options.get("num_warps", 4)
                if "error" in info:
                    print(f"| {name} | {set_name} | {kernel} | {warps} | FAILED: {info['error']} |")
                    continue
                print(f"| {name} | {set_name} | {kernel} | {warps} | {info['regs']} | "
                      f"{info['stack']} | {info['shared']} | {info['dots']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
