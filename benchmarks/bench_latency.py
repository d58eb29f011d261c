"""Latency of one localization, stage by stage, for every backend and precision on this machine.

    python benchmarks/bench_latency.py --models runs/main/train/best.pt runs/main/export/edge.onnx \
        runs/main/export/edge.int8.onnx runs/main/export/edge.int8-cpu.onnx --out benchmarks/results

One (image file, sound file) -> LocalizationResult at batch 1, in the stages the SDK runs
(Localizer.__call__):

    decode_image   avsdk.frames.load_frame: the file -> RGB uint8
    decode_audio   avsdk.audio.load_audio: the file -> samples, rate
    resample       avsdk.audio.heard_window: mono 16 kHz, the heard clip
    audio_input    avsdk.audio_input.audio_input: log-mel examples, or the waveform at the model's rate
    frame_input    avsdk.frames.frame_input: resize and normalise -> [3, S, S]
    model          Localizer.predict: [1, 3, S, S] and the audio -> similarity [1, h, w]
    post           avsdk.localizer.result_from_similarity, the heatmap at the image's size, and the
                   on-screen probability of a model with a visibility calibration
    end_to_end     Localizer(image, sound).heatmap: all of it in one call (a big JPEG is decoded
                   at a reduced size there, so it may cost less than the sum of the stages)

and the streaming throughput: frames per second over --stream-frames frames (arrays, as a camera
gives them, each with its own window of one long sound, resampled once) in batches of
--stream-batch, for the whole pipeline and for the model alone.

Backends: each file of --models (.pt: PyTorch eager; .onnx: ONNX Runtime, its precision and
INT8 target read from its manifest; .engine: TensorRT), plus a row for each usual one that is
absent, with the reason (its runtime does not import here, or no such file was given). Runtimes
run with their defaults (ONNX Runtime: a thread per core). Without --image/--audio a 1280x720
JPEG and a 10 s 44.1 kHz stereo WAV are made. Nothing is machine-specific: on a Jetson pass its
engines too. Writes latency.json, latency.md and (with matplotlib) latency.png into --out.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from avsdk.cli import command, flags, input_file, output_folder, write_output
from avsdk.errors import bad_input

STAGES = ("decode_image", "decode_audio", "resample", "audio_input", "frame_input", "model", "post")
PERCENTILES = (50, 90, 99)
MODEL_SUFFIXES = {".pt": "pytorch", ".pth": "pytorch", ".onnx": "onnxruntime", ".engine": "tensorrt",
                  ".plan": "tensorrt", ".trt": "tensorrt"}
RUNTIME_MODULES = {"pytorch": "torch", "onnxruntime": "onnxruntime", "tensorrt": "tensorrt"}
# (runtime, precision, INT8 target): the rows every report has, present or not
USUAL = (("pytorch", "fp32", None), ("onnxruntime", "fp32", None), ("onnxruntime", "int8", "tensorrt"),
         ("onnxruntime", "int8", "cpu"), ("tensorrt", "fp16", None), ("tensorrt", "int8", None))
HOW_TO_MAKE = {
    "onnxruntime": "export/build_engine.py --checkpoint CKPT --fp32 (or --int8 --calib-data BENCH "
                   "[--int8-target cpu])",
    "tensorrt": "export/build_engine.py --onnx ONNX --fp16|--int8 on this device",
    "pytorch": "a training checkpoint (.pt)",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True,
                        help=".pt, .onnx (with its .json manifest) and .engine files")
    parser.add_argument("--image", type=Path, default=None, help="image file (default: a 1280x720 JPEG made here)")
    parser.add_argument("--audio", type=Path, default=None, help="sound file (default: a 10 s 44.1 kHz WAV made here)")
    parser.add_argument("--device", default="auto", help="torch device of a .pt model (auto: cuda if available)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per backend (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default %(default)s)")
    parser.add_argument("--stream-frames", type=int, default=32, help="frames of the streaming run")
    parser.add_argument("--stream-batch", type=int, default=4, help="batch of the streaming run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    return parser.parse_args(argv)


def label(runtime: str, precision: str, target: str | None) -> str:
    name = {"pytorch": "PyTorch eager", "onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}[runtime]
    detail = {None: "", "tensorrt": " (TensorRT Q/DQ)", "cpu": " (cpu target)"}.get(target, f" ({target} target)")
    return f"{name} {precision}{detail}"


def model_kind(path: Path) -> tuple:
    """(runtime, precision, INT8 target or None) of a model file, from its suffix and manifest."""
    runtime = MODEL_SUFFIXES.get(path.suffix.lower())
    if runtime is None:
        raise bad_input("--models", f"files ending in {sorted(MODEL_SUFFIXES)}", str(path))
    if runtime == "pytorch":
        return runtime, "fp32", None
    from avsdk.export import read_manifest

    with flags({"manifest": "--models"}):
        manifest = read_manifest(path)
    if runtime == "onnxruntime" and manifest.precision == "int8":
        return runtime, "int8", manifest.build.get("target", "tensorrt")
    return runtime, manifest.precision, None


def why_not_importable(runtime: str) -> str | None:
    """None when the runtime's module imports here, else why not."""
    module = RUNTIME_MODULES[runtime]
    try:
        importlib.import_module(module)
        return None
    except Exception as exc:  # ImportError, or OSError from a half-installed native library
        return f"{module} does not import here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"


def backends(models: list, device: str) -> list:
    """A row per model file and per usual backend without one: {"name", "runtime", "precision",
    "target", "file", "present", "reason" or "localizer"}."""
    rows, seen = [], set()
    for path in models:
        kind = model_kind(path)
        seen.add(kind)
        row = {"name": label(*kind), "runtime": kind[0], "precision": kind[1], "target": kind[2],
               "file": path.name}
        why = why_not_importable(kind[0])
        if why is None:
            from avsdk import Localizer

            row["localizer"] = Localizer.load(path, device=_torch_device(device) if kind[0] == "pytorch" else "cpu")
        rows.append({**row, "present": why is None, **({"reason": why} if why else {})})
    for kind in USUAL:
        if kind not in seen:
            why = why_not_importable(kind[0]) or f"no such model among --models (make one: {HOW_TO_MAKE[kind[0]]})"
            rows.append({"name": label(*kind), "runtime": kind[0], "precision": kind[1], "target": kind[2],
                         "file": None, "present": False, "reason": why})
    return rows


def _torch_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def synthetic_inputs(folder: Path) -> tuple[Path, Path]:
    """A 1280x720 JPEG (smooth gradients and grain, as a photo compresses) and a 10 s 44.1 kHz
    stereo 16-bit WAV (a tone in noise): what a camera and a microphone give."""
    import soundfile
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:720, 0:1280].astype(np.float32)
    pixels = np.stack([x / 5.0, y / 3.0, (x + y) / 7.0], axis=-1) % 256 + rng.normal(0, 6, (720, 1280, 3))
    image = folder / "frame.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(image, quality=90)
    t = np.arange(10 * 44100) / 44100.0
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)[:, None] * np.array([1.0, 0.8])
    audio = folder / "clip.wav"
    soundfile.write(audio, (tone + 0.05 * rng.standard_normal(tone.shape)).astype(np.float32), 44100,
                    subtype="PCM_16")
    return image, audio


def _on_screen(loc, similarity, clip):
    if loc.visibility is None:
        return None
    from avsdk.visibility import level_db, map_features

    return loc.visibility.probability(map_features(similarity, level_db(clip)))


def stage_pass(loc, image: Path, audio: Path) -> dict:
    """One localization of (image, audio) by ``loc``, stage by stage: {stage: ms}."""
    from avsdk.audio import SAMPLE_RATE, heard_window, load_audio
    from avsdk.audio_input import audio_input
    from avsdk.frames import frame_input, load_frame
    from avsdk.localizer import result_from_similarity

    prep, ms = loc.preprocessing, {}

    def timed(stage, work):
        start = time.perf_counter()
        out = work()
        ms[stage] = (time.perf_counter() - start) * 1e3
        return out

    pixels = timed("decode_image", lambda: load_frame(image, loc.max_pixels))
    sound, rate = timed("decode_audio", lambda: load_audio(audio))
    clip, _ = timed("resample", lambda: heard_window(sound, rate, prep.clip_seconds))
    heard = timed("audio_input", lambda: audio_input(clip, SAMPLE_RATE, prep.audio_spec(), prep.clip_seconds,
                                                     loc.frontend))
    frame, _ = timed("frame_input", lambda: frame_input(pixels, prep.transform, prep.image_size, loc.max_pixels))
    similarity = timed("model", lambda: loc.predict(frame[None], heard[None])[0])
    timed("post", lambda: result_from_similarity(similarity, *pixels.shape[:2], prep.transform,
                                                 _on_screen(loc, similarity, clip)).heatmap)
    return ms


def end_to_end(loc, image: Path, audio: Path) -> float:
    start = time.perf_counter()
    loc(image, audio).heatmap
    return (time.perf_counter() - start) * 1e3


def stream(loc, pixels: np.ndarray, sound: np.ndarray, rate: int, frames: int, batch: int) -> dict:
    """Frames per second of the whole pipeline over ``frames`` camera frames (``pixels`` shifted
    a little each frame) with windows of ``sound`` spread over it, ``batch`` frames a model call."""
    from avsdk.audio import SAMPLE_RATE, heard_window, to_mono_16k
    from avsdk.audio_input import audio_input
    from avsdk.frames import frame_input
    from avsdk.localizer import result_from_similarity

    prep = loc.preprocessing
    shots = [np.roll(pixels, 4 * i, axis=1) for i in range(frames)]  # made before the clock starts
    begin, model_s = time.perf_counter(), 0.0
    mono = to_mono_16k(sound, rate)  # once per stream, not per frame
    latest = max(0.0, len(mono) / SAMPLE_RATE - prep.clip_seconds)
    for first in range(0, frames, batch):
        chunk = range(first, min(frames, first + batch))
        starts = [latest * i / max(1, frames - 1) if latest else None for i in chunk]
        clips = [heard_window(mono, SAMPLE_RATE, prep.clip_seconds, start)[0] for start in starts]
        heard = np.stack([audio_input(c, SAMPLE_RATE, prep.audio_spec(), prep.clip_seconds, loc.frontend)
                          for c in clips])
        batch_frames = np.stack([frame_input(shots[i], prep.transform, prep.image_size)[0] for i in chunk])
        start = time.perf_counter()
        maps = loc.predict(batch_frames, heard)
        model_s += time.perf_counter() - start
        for similarity, clip in zip(maps, clips):
            result_from_similarity(similarity, *pixels.shape[:2], prep.transform,
                                   _on_screen(loc, similarity, clip)).heatmap
    total = time.perf_counter() - begin
    return {"frames": frames, "batch": batch, "fps": frames / total, "model_fps": frames / model_s}


def percentiles(values) -> dict:
    """{"p50", "p90", "p99", "mean"} of ``values`` (ms)."""
    found = np.percentile(np.asarray(values, dtype=np.float64), PERCENTILES)
    return {**{f"p{q}": float(v) for q, v in zip(PERCENTILES, found)}, "mean": float(np.mean(values))}


def measure(rows: list, image: Path, audio: Path, runs: int, warmup: int, stream_frames: int,
            stream_batch: int) -> None:
    """Fill each present row with "latency_ms" ({stage, "stage_sum", "end_to_end": percentiles})
    and "stream". The backends take turns run by run, so a load on the machine falls on each alike."""
    from avsdk.audio import load_audio
    from avsdk.frames import load_frame

    present = [row for row in rows if row["present"]]
    for row in present:
        for _ in range(warmup):
            stage_pass(row["localizer"], image, audio)
            end_to_end(row["localizer"], image, audio)
    samples = {id(row): {name: [] for name in (*STAGES, "stage_sum", "end_to_end")} for row in present}
    for _ in range(runs):
        for row in present:
            times = samples[id(row)]
            ms = stage_pass(row["localizer"], image, audio)
            for stage in STAGES:
                times[stage].append(ms[stage])
            times["stage_sum"].append(sum(ms.values()))
            times["end_to_end"].append(end_to_end(row["localizer"], image, audio))
    pixels, (sound, rate) = load_frame(image), load_audio(audio)
    for row in present:
        row["latency_ms"] = {name: percentiles(values) for name, values in samples[id(row)].items()}
        row["stream"] = stream(row["localizer"], pixels, sound, rate, stream_frames, stream_batch)


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    """Versions of what the backends run on; None where a package is not installed."""
    import importlib.metadata as metadata

    found = {}
    for name in ("avsdk", "numpy", "torch", "onnxruntime", "tensorrt", "soxr", "pillow"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # JetPack's TensorRT comes from a .deb, without metadata
            found[name] = getattr(sys.modules.get(name), "__version__", None)
    return found


def markdown(report: dict) -> str:
    rows = [r for r in report["backends"] if r["present"]]
    absent = [r for r in report["backends"] if not r["present"]]
    machine, settings = report["machine"], report["settings"]
    batch = settings["stream_batch"]
    lines = [f"# Latency by stage, batch 1 (p50 in ms; {settings['runs']} runs, backends interleaved)", "",
             "| backend | file | " + " | ".join(s.replace("_", " ") for s in STAGES)
             + " | sum | end to end p50 / p90 / p99 | stream fps (batch "
             f"{batch}) | model fps (batch {batch}) |",
             "|:--|:--|" + "--:|" * (len(STAGES) + 4)]
    for row in rows:
        ms = row["latency_ms"]
        e2e = ms["end_to_end"]
        lines.append(f"| {row['name']} | {row['file']} | " + " | ".join(f"{ms[s]['p50']:.1f}" for s in STAGES)
                     + f" | {ms['stage_sum']['p50']:.1f} | {e2e['p50']:.1f} / {e2e['p90']:.1f} / {e2e['p99']:.1f}"
                     f" | {row['stream']['fps']:.1f} | {row['stream']['model_fps']:.1f} |")
    if absent:
        lines += ["", "| absent | why |", "|:--|:--|"] + [f"| {r['name']} | {r['reason']} |" for r in absent]
    image, audio = settings["image"], settings["audio"]
    lines += ["", f"Inputs: {image['name']} ({image['width']}x{image['height']}), {audio['name']} "
              f"({audio['seconds']:.1f} s, {audio['sample_rate']} Hz, {audio['channels']} channel(s)); streaming: "
              f"{settings['stream_frames']} frames in batches of {batch}. Machine: {machine['processor']}, "
              f"{machine['cpu_count']} cores, load average {machine['load_start']:.1f} at the start and "
              f"{machine['load_end']:.1f} at the end; "
              + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v) + "."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path | None:
    """Stacked p50 stages and the end-to-end p50 of each backend; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in report["backends"] if r["present"]]
    fig, axis = plt.subplots(figsize=(9, 1 + 0.6 * len(rows)))
    left = np.zeros(len(rows))
    for stage in STAGES:
        widths = np.array([r["latency_ms"][stage]["p50"] for r in rows])
        axis.barh([r["name"] for r in rows], widths, left=left, label=stage)
        left += widths
    axis.scatter([r["latency_ms"]["end_to_end"]["p50"] for r in rows], [r["name"] for r in rows], color="black",
                 marker="|", s=300, label="end to end", zorder=3)
    axis.set_xlabel("ms (p50, batch 1)")
    axis.legend(fontsize="small", ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    for flag, value, least in (("--runs", args.runs, 1), ("--warmup", args.warmup, 0),
                               ("--stream-frames", args.stream_frames, 1), ("--stream-batch", args.stream_batch, 1)):
        if value < least:
            raise bad_input(flag, f"an int >= {least}", value)
    models = [input_file("--models", path) for path in args.models]
    kinds = [model_kind(path) for path in models]  # every manifest read before any model loads
    for flag, path in (("--image", args.image), ("--audio", args.audio)):
        if path is not None:
            input_file(flag, path)
    output_folder("--out", args.out)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_latency-") as work:
        made = synthetic_inputs(Path(work)) if args.image is None or args.audio is None else (None, None)
        image, audio = args.image or made[0], args.audio or made[1]
        rows = backends(models, args.device)
        print(f"timing {sum(r['present'] for r in rows)} backends ({', '.join(k[0] for k in kinds)}), "
              f"{args.runs} runs each", flush=True)
        measure(rows, image, audio, args.runs, args.warmup, args.stream_frames, args.stream_batch)
        import soundfile
        from PIL import Image

        with Image.open(image) as picture:
            width, height = picture.size
        info = soundfile.info(str(audio))
        settings = {"runs": args.runs, "warmup": args.warmup, "stream_frames": args.stream_frames,
                    "stream_batch": args.stream_batch, "device": args.device,
                    "image": {"name": image.name if args.image else "synthetic 1280x720 JPEG", "width": width,
                              "height": height},
                    "audio": {"name": audio.name if args.audio else "synthetic WAV", "seconds": info.duration,
                              "sample_rate": info.samplerate, "channels": info.channels}}
    report = {
        "stages": list(STAGES),
        "percentiles": [f"p{q}" for q in PERCENTILES],
        "machine": {"processor": cpu_name(), "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "load_start": load_start, "load_end": os.getloadavg()[0],
                    "versions": versions()},
        "settings": settings,
        "backends": [{k: v for k, v in row.items() if k != "localizer"} for row in rows],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    write_output("--out", args.out / "latency.json", (json.dumps(report, indent=2) + "\n").encode())
    write_output("--out", args.out / "latency.md", text.encode())
    picture = plot(report, args.out / "latency.png")
    print(text)
    print(f"wrote {args.out / 'latency.json'}, {args.out / 'latency.md'}"
          + (f", {picture}" if picture else "; no plot: matplotlib is not installed (pip install matplotlib)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
