"""Time the fused kernels against torch eager and torch.compile of their references (CUDA only).

For each op, dtype and batch size: forward, backward and forward+backward times
(``triton.testing.do_bench`` median with the 20th and 80th percentiles) and the peak memory of
forward+backward above the inputs. Rows are appended to a CSV with the device, versions and
commit. The "triton" provider forces the kernels (``kernel="triton"``) whatever
``kernel="auto"`` would pick. ``--sweep`` also times other tile sets of masked_infonce (block
sizes without register spills, and for float32 the float16-piece dots on the tensor cores),
each checked against the default ones. ``--profile`` times each kernel of each tile set alone,
and forward + backward inside a CUDA graph (GPU time, no host overhead).

    python benchmarks/bench_kernels.py                       # B in 64 256 1024, fp32 and bf16
    python benchmarks/bench_kernels.py --ops masked_infonce --batch 256 --sweep
    python benchmarks/bench_kernels.py --ops --batch 256 --profile  # per kernel, CUDA graphs
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import subprocess
import sys
from dataclasses import replace

import torch
import torch.nn.functional as F

DEVICE = "cuda"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FIELDS = ["time_utc", "device", "torch", "triton", "commit", "op", "dtype", "B", "C", "HW",
          "provider", "mode", "ms_p50", "ms_p20", "ms_p80", "peak_mb", "note"]


def _commit(given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _inputs(op: str, B: int, C: int, HW: int, dtype: torch.dtype, device: str | None = None):
    """-> ([visual, audio] leaves needing grad, the other arguments), on ``device`` (DEVICE)."""
    device = device or DEVICE
    gen = torch.Generator(device=device).manual_seed(0)
    if op == "av_similarity":
        visual = torch.randn(B, C, HW, device=device, generator=gen).to(dtype)
        audio = torch.randn(B, C, device=device, generator=gen).to(dtype)
        return [visual.requires_grad_(), audio.requires_grad_()], ()
    visual = F.normalize(torch.randn(B, C, HW, device=device, generator=gen), dim=1).to(dtype)
    audio = F.normalize(torch.randn(B, C, device=device, generator=gen), dim=1).to(dtype)
    mask = (torch.rand(B, HW, device=device, generator=gen) > 0.5).float()
    sim = audio.float() @ audio.float().t()
    keep = sim.argsort(dim=1).argsort(dim=1) < int(0.75 * B)  # the least similar 75 %
    keep.fill_diagonal_(True)
    return [visual.requires_grad_(), audio.requires_grad_()], (mask, keep)


def _providers(op: str, compile_ops):
    from avsdk import kernels
    from avsdk.kernels import reference

    if op == "av_similarity":
        ref = reference.av_similarity
        fns = {"eager": ref,
               "triton": lambda v, a: kernels.av_similarity(v, a, kernel="triton")}
    else:
        ref = reference.masked_infonce
        fns = {"eager": lambda v, a, m, k: ref(v, m, a, k, 0.005),
               "triton": lambda v, a, m, k: kernels.masked_infonce(v, m, a, k, 0.005,
                                                                  kernel="triton")}
    if op in compile_ops:
        fns["compile"] = torch.compile(fns["eager"], dynamic=False)
    return fns


def _outputs(fn, leaves, extra):
    out = fn(*leaves, *extra)
    return list(out) if isinstance(out, tuple) else [out]


def _measure(fn, leaves, extra, warmup_ms: int, rep_ms: int):
    from triton.testing import do_bench

    quantiles = [0.5, 0.2, 0.8]
    grads = [torch.ones_like(o) for o in _outputs(fn, leaves, extra)]

    def fwd():  # with autograd on, as in training: the graph and saved tensors count
        return fn(*leaves, *extra)

    def both():
        torch.autograd.backward(_outputs(fn, leaves, extra), grads)

    outs = _outputs(fn, leaves, extra)  # one graph that bwd runs backward through again and again

    def bwd():
        torch.autograd.backward(outs, grads, retain_graph=True)

    timings = {}
    for mode, call in (("fwd", fwd), ("bwd", bwd), ("fwd+bwd", both)):
        timings[mode] = do_bench(call, warmup=warmup_ms, rep=rep_ms, quantiles=quantiles,
                                 grad_to_none=leaves)
    outs.clear()  # frees that graph before the memory of one step is measured
    for leaf in leaves:
        leaf.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    both()
    torch.cuda.synchronize()
    peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    for leaf in leaves:
        leaf.grad = None
    return timings, peak_mb


def _sweep_tiles(dtype: torch.dtype, HW: int | None = None):
    """Tile sets to time against the default (HW: unused, no set depends on it).

    "tuned" takes block sizes whose kernels compile for sm_90 without register spills
    (benchmarks/kernel_resources.py; the defaults' one-hot dL/da spills). float32 also gets
    "f16x3" and "f16x3-tuned": its dots as float16 pieces on the tensor cores, the candidate
    for a float32 path faster than eager (avsdk.kernels.infonce_triton_pays follows the result).
    """
    from avsdk.kernels.fused_infonce import default_tiles

    base = default_tiles(256, dtype, on_gpu=True)
    if dtype != torch.float32:
        return {"default": base, "tuned": replace(base, ga_j=64, ga_c=64, ga_p=32, ga_warps=8)}
    tuned = replace(base, pair_j=128, pair_p=64, pair_k=16, pair_warps=8,
                    ga_j=64, ga_c=64, ga_p=32, ga_warps=8)
    return {"default": base, "tuned": tuned, "f16x3": replace(base, fp32_dot="f16x3"),
            "f16x3-tuned": replace(tuned, fp32_dot="f16x3", pair_p=32)}


def _run_profile(B, C, HW, dtype, args, emit):
    """Each kernel of each tile set on its own, then the whole step in a CUDA graph.

    The per-kernel rows show where the time goes; the graph rows ("fwd+bwd graph") are the
    GPU time of forward + backward without Python and launch overhead, for eager and Triton,
    so the gap to the plain fwd+bwd rows is the host's share.
    """
    from triton.testing import do_bench, do_bench_cudagraph

    from avsdk.kernels import fused_infonce as fi

    quantiles = [0.5, 0.2, 0.8]
    leaves, (mask, keep) = _inputs("masked_infonce", B, C, HW, dtype)
    v, a = (x.detach().contiguous() for x in leaves)
    mask_f = mask.float().contiguous()
    keep_u8 = keep.contiguous().view(torch.uint8)
    gout = torch.ones((), device=DEVICE)
    nan = float("nan")
    variants = _sweep_tiles(dtype, HW)
    for name, tiles in list(variants.items()):
        plan = fi._plan_for(tiles, v, a, 0.005)
        try:
            sims, argmax = fi._pair_max(plan, v, mask_f, a)
        except Exception as exc:
            print(f"masked_infonce B={B} triton[{name}]: failed: {exc!r}", flush=True)
            del variants[name]
            continue
        _, grad_sims = fi._row_loss(plan, sims, keep_u8)
        stages = {
            "pair_max": lambda: fi._pair_max(plan, v, mask_f, a),
            "row_loss": lambda: fi._row_loss(plan, sims, keep_u8),
            "forward": lambda: fi._forward(plan, v, mask_f, a, keep_u8),  # both, as a step
            "grad_visual": lambda: fi._grad_visual(plan, grad_sims, argmax, mask_f, a, gout),
            "grad_audio": lambda: fi._grad_audio(plan, grad_sims, argmax, mask_f, v, gout),
        }
        timings = {stage: do_bench(call, warmup=args.warmup, rep=args.rep, quantiles=quantiles)
                   for stage, call in stages.items()}
        emit("masked_infonce", dtype, B, C, HW, f"triton[{name}]", timings, nan,
             "per kernel, launched directly")

    from avsdk.kernels import reference

    steps = {"eager": lambda v, a: reference.masked_infonce(v, mask, a, keep, 0.005)}
    for name, tiles in variants.items():
        steps[f"triton[{name}]"] = (lambda v, a, tiles=tiles:
                                    fi.masked_infonce(v, mask, a, keep, 0.005, tiles=tiles))
    for provider, fn in steps.items():
        def step(fn=fn):
            torch.autograd.grad(fn(*leaves), leaves)

        try:
            t = do_bench_cudagraph(step, rep=args.rep, quantiles=quantiles)
        except Exception as exc:  # capture can fail on some stacks: report, go on
            print(f"masked_infonce B={B} {provider}: CUDA graph failed: {exc!r}", flush=True)
            continue
        emit("masked_infonce", dtype, B, C, HW, provider, {"fwd+bwd graph": t}, nan,
             "CUDA graph: GPU time without host overhead")


def _run_sweep(B, C, HW, dtype, args, emit):
    from avsdk.kernels.fused_infonce import masked_infonce

    leaves, (mask, keep) = _inputs("masked_infonce", B, C, HW, dtype)
    expected = None
    for name, tiles in _sweep_tiles(dtype, HW).items():
        def fn(v, a, m, k, tiles=tiles):
            return masked_infonce(v, m, a, k, 0.005, tiles=tiles)

        try:
            loss = fn(*leaves, mask, keep)
            loss.backward()
        except Exception as exc:  # e.g. a tile set that needs more shared memory than there is
            print(f"masked_infonce B={B} triton[{name}]: failed: {exc!r}", flush=True)
            for leaf in leaves:
                leaf.grad = None
            continue
        result = [loss.detach().float()] + [x.grad.float() for x in leaves]
        for leaf in leaves:
            leaf.grad = None
        if expected is None:
            expected = result
        same = all(torch.allclose(r, e, rtol=2e-2, atol=1e-3 * e.abs().max().item())
                   for r, e in zip(result, expected))
        timings, peak = _measure(fn, leaves, (mask, keep), args.warmup, args.rep)
        emit("masked_infonce", dtype, B, C, HW, f"triton[{name}]", timings, peak,
             "tiles " + repr(tiles) + ("" if same else " MISMATCH vs default"))


def warm(shard: int, shards: int, batches, dtypes, C: int, HW: int) -> int:
    """Compile (run once, untimed) this shard's share of the sweep's tile sets, so that
    several processes fill Triton's on-disk cache at once; -> how many sets it ran."""
    from avsdk.kernels.fused_infonce import masked_infonce

    jobs = [(name, B, set_name, tiles) for name in dtypes for B in batches
            for set_name, tiles in _sweep_tiles(DTYPES[name], HW).items()]
    done = 0
    for index, (name, B, set_name, tiles) in enumerate(jobs):
        if index % shards != shard:
            continue
        leaves, (mask, keep) = _inputs("masked_infonce", B, C, HW, DTYPES[name])
        try:
            masked_infonce(leaves[0], mask, leaves[1], keep, 0.005, tiles=tiles).backward()
            done += 1
        except Exception as exc:  # the sweep reports it again, with its timings
            print(f"warm {name} B={B} {set_name}: {exc!r}", flush=True)
    return done


def target_summary(rows) -> str:
    """The speed and memory targets for masked_infonce (docs/kernels.md), from one run's rows.

    ``rows``: dicts with dtype, B, provider, mode, ms (p50) and peak_mb. For each dtype and
    batch size with an eager row: every Triton tile set's fwd+bwd time as a ratio to eager and
    to torch.compile (targets at B = 256: >= 3x and >= 1.5x), and its peak memory as a share
    of eager's (target at B = 1024: <= 25 %), fastest first.
    """
    lines = ["| dtype | B | tile set | fwd+bwd ms | x eager | x compile | peak / eager |",
             "|---|---|---|---|---|---|---|"]
    both = [r for r in rows if r["mode"] == "fwd+bwd"]
    for dtype, B in sorted({(r["dtype"], r["B"]) for r in both}, key=lambda k: (k[0], k[1])):
        here = {r["provider"]: r for r in both if (r["dtype"], r["B"]) == (dtype, B)}
        eager, compiled = here.get("eager"), here.get("compile")
        if eager is None:
            continue
        tritons = sorted((r for p, r in here.items() if p.startswith("triton")),
                         key=lambda r: r["ms"])
        for r in tritons:
            vs_compile = f"{compiled['ms'] / r['ms']:.2f}" if compiled else "-"
            lines.append(f"| {dtype} | {B} | {r['provider']} | {r['ms']:.3f} | "
                         f"{eager['ms'] / r['ms']:.2f} | {vs_compile} | "
                         f"{100 * r['peak_mb'] / eager['peak_mb']:.0f} % |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="*", default=["masked_infonce", "av_similarity"],
                        help="ops to time (none: only --sweep)")
    parser.add_argument("--batch", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--hw", type=int, default=196)
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--compile-ops", nargs="*", default=["masked_infonce", "av_similarity"],
                        help="ops whose reference is also timed under torch.compile")
    parser.add_argument("--csv", default="benchmarks/results/kernels.csv")
    parser.add_argument("--commit", default=None, help="commit to record (default: git HEAD)")
    parser.add_argument("--warmup", type=int, default=10, help="do_bench warm-up, ms")
    parser.add_argument("--rep", type=int, default=50, help="do_bench repetitions, ms")
    parser.add_argument("--sweep", action="store_true", help="also time other masked_infonce tiles")
    parser.add_argument("--sweep-min-batch", type=int, default=256)
    parser.add_argument("--profile", action="store_true",
                        help="time each masked_infonce kernel of each tile set, and fwd+bwd in "
                             "a CUDA graph (GPU time without host overhead)")
    parser.add_argument("--warm", metavar="I/N",
                        help="only compile the I-th of N shares of the sweep's tile sets "
                             "(several processes at once fill Triton's cache), then exit")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_kernels: needs a CUDA device (the kernels are timed on the GPU only)")
        return 2
    if args.warm:
        shard, shards = (int(x) for x in args.warm.split("/"))
        done = warm(shard, shards, args.batch, args.dtypes, args.channels, args.hw)
        print(f"warm {shard}/{shards}: {done} tile sets compiled", flush=True)
        return 0
    import triton

    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "triton": triton.__version__, "commit": _commit(args.commit)}
    print(f"# {meta}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    new_file = not os.path.exists(args.csv)
    out = open(args.csv, "a", newline="")
    writer = csv.DictWriter(out, FIELDS)
    if new_file:
        writer.writeheader()

    seen = []  # this run's rows, for the summary

    def emit(op, dtype, B, C, HW, provider, timings, peak_mb, note=""):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        short = next(k for k, v in DTYPES.items() if v == dtype)
        for mode, (p50, p20, p80) in timings.items():
            writer.writerow({"time_utc": now, **meta, "op": op, "dtype": short, "B": B, "C": C,
                             "HW": HW, "provider": provider, "mode": mode,
                             "ms_p50": f"{p50:.4f}", "ms_p20": f"{p20:.4f}",
                             "ms_p80": f"{p80:.4f}", "peak_mb": f"{peak_mb:.1f}", "note": note})
        out.flush()
        for mode, (p50, _, _) in timings.items():
            seen.append({"op": op, "dtype": short, "B": B, "provider": provider, "mode": mode,
                         "ms": p50, "peak_mb": peak_mb})
        cells = "  ".join(f"{m} {t[0]:8.3f} ms" for m, t in timings.items())
        print(f"{op:15s} {short:5s} B={B:5d} {provider:18s} {cells}  peak {peak_mb:9.1f} MB",
              flush=True)

    C, HW = args.channels, args.hw
    for op in args.ops:
        providers = _providers(op, args.compile_ops)
        for name in args.dtypes:
            dtype = DTYPES[name]
            for B in args.batch:
                leaves, extra = _inputs(op, B, C, HW, dtype)
                for provider, fn in providers.items():
                    try:
                        timings, peak = _measure(fn, leaves, extra, args.warmup, args.rep)
                    except torch.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        print(f"{op} {name} B={B} {provider}: out of memory", flush=True)
                        continue
                    emit(op, dtype, B, C, HW, provider, timings, peak)
                del leaves, extra
                torch.cuda.empty_cache()
    if args.sweep:
        for name in args.dtypes:
            for B in args.batch:
                if B >= args.sweep_min_batch:
                    _run_sweep(B, C, HW, DTYPES[name], args, emit)
    if args.profile:
        for name in args.dtypes:
            for B in args.batch:
                _run_profile(B, C, HW, DTYPES[name], args, emit)
    out.close()
    summary = target_summary([r for r in seen if r["op"] == "masked_infonce"])
    if summary.count("\n") > 1:
        print("\n# masked_infonce against the targets (this run)\n" + summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
