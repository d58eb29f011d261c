"""Time the compiled audio frontend against the numpy reference, side by side, on one core.

    python benchmarks/bench_frontend.py                 # print the table
    python benchmarks/bench_frontend.py --write         # and write benchmarks/results/frontend.md

A 3 s clip (chirp + noise) goes through each path; rounds alternate numpy and compiled so both
see the same machine load. Times are per clip: the best round (least disturbed) and the median,
in thread CPU time, which time-slicing by other processes does not inflate (wall time is shown
too). Real-time factor = processing time / 3 s of audio.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from avsdk import frontend  # noqa: E402
from avsdk.cli import command  # noqa: E402
from avsdk.errors import bad_input  # noqa: E402

SECONDS = 3.0
RESULTS = Path(__file__).parent / "results" / "frontend.md"


def clip(rate: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * rate)) / rate
    x = 0.6 * np.sin(2 * np.pi * (100 + 1500 * t) * t) + 0.05 * rng.standard_normal(t.size)
    x = np.stack([x] * channels, axis=1) if channels > 1 else x
    return x.astype(np.float32)


def time_rounds(fn, calls: int) -> tuple[list[float], list[float]]:
    """Per-call seconds of one round: (thread CPU time, wall time)."""
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.thread_time() - cpu0) / calls, (time.perf_counter() - wall0) / calls


def compare(name: str, make_call, rounds: int, calls: int) -> dict:
    fns = {implementation: make_call(implementation) for implementation in ("numpy", "compiled")}
    for fn in fns.values():  # warm up (tables, caches, lazy imports)
        fn()
    samples = {implementation: {"cpu": [], "wall": []} for implementation in fns}
    for _ in range(rounds):
        for implementation, fn in fns.items():
            cpu, wall = time_rounds(fn, calls)
            samples[implementation]["cpu"].append(cpu)
            samples[implementation]["wall"].append(wall)
    row = {"path": name}
    for implementation, s in samples.items():
        row[implementation] = min(s["cpu"])
        row[implementation + "_median"] = statistics.median(s["cpu"])
        row[implementation + "_wall"] = min(s["wall"])
    row["ratio"] = row["numpy"] / row["compiled"]
    return row


@command
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, default=20, help="calls per round")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core (default: the first allowed)")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/frontend.md")
    args = parser.parse_args()
    for name in ("rounds", "calls"):
        if getattr(args, name) < 1:
            raise bad_input("--" + name, "an int >= 1", getattr(args, name))
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if args.cpu is not None and allowed is not None and args.cpu not in allowed:
        raise bad_input("--cpu", f"one of the cores this process may use, {sorted(allowed)}", args.cpu)

    if frontend.active_implementation() != "compiled":
        print("avsdk._frontend is not built: pip install -e . --no-build-isolation", file=sys.stderr)
        return 1
    if allowed is not None:
        os.sched_setaffinity(0, {args.cpu if args.cpu is not None else min(allowed)})

    mono16k = clip(16_000)
    stereo44k = clip(44_100, channels=2)
    cases = [
        ("log-mel examples of a 3 s 16 kHz waveform (log_mel_examples)",
         lambda i: (lambda: frontend.log_mel_examples(mono16k, implementation=i))),
        ("3 s mono 16 kHz clip, full path (audio_to_examples)",
         lambda i: (lambda: frontend.audio_to_examples(mono16k, 16_000, implementation=i))),
        ("3 s stereo 44.1 kHz clip, full path incl. soxr resampling in both",
         lambda i: (lambda: frontend.audio_to_examples(stereo44k, 44_100, implementation=i))),
    ]
    rows = [compare(name, make, args.rounds, args.calls) for name, make in cases]

    header = "| path | numpy (ms) | compiled (ms) | ratio | RTF numpy | RTF compiled |"
    lines = [header, "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['path']} | {r['numpy'] * 1e3:.3f} (median {r['numpy_median'] * 1e3:.3f}) "
            f"| {r['compiled'] * 1e3:.3f} (median {r['compiled_median'] * 1e3:.3f}) | {r['ratio']:.1f}x "
            f"| {r['numpy'] / SECONDS:.2e} | {r['compiled'] / SECONDS:.2e} |"
        )
    machine = _machine()
    command = "python benchmarks/bench_frontend.py " + " ".join(sys.argv[1:])
    text = "\n".join(
        [f"Machine: {machine}", f"Compiled frontend: {frontend.compiled_implementation()}",
         f"numpy {np.__version__}, Python {platform.python_version()}, one core, "
         f"{args.rounds} alternating rounds x {args.calls} calls; best round (median in brackets), "
         "thread CPU time per 3 s clip. RTF = time / 3 s.", "", *lines]
    )
    print(text)
    for r in rows:
        print(f"wall (best round): {r['path']}: numpy {r['numpy_wall'] * 1e3:.3f} ms, compiled {r['compiled_wall'] * 1e3:.3f} ms")
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# Audio frontend: compiled (C++) vs numpy reference\n\n"
            f"Command (repo root): `{command.strip()}`\nCommit: {_commit()}\n\n{text}\n"
        )
        print(f"wrote {RESULTS}")
    return 0


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({platform.machine()}, {os.cpu_count()} logical CPUs)"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
