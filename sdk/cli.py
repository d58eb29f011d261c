"""The ``avsdk`` command.

    avsdk --version
    avsdk info                                           versions, frontend implementation, CUDA
    avsdk localize MODEL FRAME AUDIO --out overlay.png   heatmap over the frame, box, peak
    avsdk localize MODEL FRAME AUDIO --start 0 --json    the first clip of AUDIO; JSON on stdout
    avsdk localize-video MODEL VIDEO [--time T] --out overlay.png   one frame (the middle by default)
    avsdk localize-video MODEL VIDEO --out overlay.mp4   every frame, annotated, with the sound
    avsdk stream MODEL SOURCE [--out overlay.mp4]         a file or live source; JSON lines
    avsdk train|evaluate|export|pipeline ARGS...          python -m avsdk.training.train ARGS... etc.

The rest of this module is what all of avsdk's command-line tools share (``avsdk``, the
training, export and benchmark scripts): a user error is one line and exit status 2.

    @command
    def main(argv=None) -> int:
        args = parser.parse_args(argv)
        with flags({"batch_size": "--batch-size"}):       # "batch_size: ..." -> "--batch-size: ..."
            config = TrainConfig(batch_size=args.batch_size, ...)
        output_folder("--out", args.out)                   # before any slow work
        ...
        write_output("--json", args.json, text.encode())   # atomically; OSError -> one line

avsdk's own errors (bad input, bad checkpoint, missing optional dependency) print
``error: <message>`` on stderr and exit with status 2; Ctrl-C that the tool does not handle
itself prints ``interrupted`` and exits with status 130; anything else is a bug and keeps its
traceback. Paths are checked up front so that a run does not fail after its slow part, and
every file a tool writes goes through write_output: a failure midway (a full disk) leaves the
previous file whole and is reported as one line naming the flag. A tool whose output is read
through a pipe (``avsdk ... | head -1``) is also decorated with quiet_broken_pipe.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import importlib.metadata as metadata
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from avsdk._atomic import write_atomic
from avsdk.errors import AvsdkError, InputError, bad_input, renamed


EXIT_INTERRUPTED = 130  # Ctrl-C, as the shell reports a process ended by SIGINT


def command(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a CLI's ``main``: an AvsdkError becomes ``error: <message>`` on stderr, exit 2;
    Ctrl-C becomes ``interrupted`` on stderr, exit 130 (a tool that can say what it left behind
    catches KeyboardInterrupt itself, as train and build_engine do)."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except AvsdkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED

    return run


def quiet_broken_pipe(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a CLI's ``main`` whose output may be piped: when the reader closes the pipe early
    (``avsdk localize ... | head -1``), exit with status 1 and no BrokenPipeError traceback.

    The recipe of Python's documentation (signal module, "Note on SIGPIPE"): stdout is flushed
    here, so that a closed pipe fails inside the handler rather than at interpreter exit, then
    pointed at devnull, so that the interpreter's last flush has nowhere to fail.
    """

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            _stdout_to_devnull()
            return 1

    return run


def _stdout_to_devnull() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's stand-in)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def flags(names: Mapping[str, str]):
    """Re-raise an InputError about an argument in ``names`` as one about its flag, so that the
    user reads the option they typed, not a dataclass field (``avsdk.errors.renamed``)."""
    return renamed(names)


def input_file(flag: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path; InputError naming ``flag`` unless it is an existing file."""
    path = Path(path)
    if not path.is_file():
        raise bad_input(flag, "an existing file", str(path))
    return path


def output_file(flag: str, path: str | os.PathLike, suffix: str | None = None) -> Path:
    """``path`` as a Path, checked to be writable as a file (ending in ``suffix`` if given)."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise bad_input(flag, f"a file name ending in {suffix}", str(path))
    if path.is_dir():
        raise bad_input(flag, "a file to write", f"{str(path)!r}, an existing folder", described=True)
    _check_writable(flag, path.parent, path)
    return path


def write_output(flag: str, path: str | os.PathLike, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (bytes, or a function that writes to a binary handle) to ``path``
    atomically (avsdk._atomic.write_atomic): readers, and a write that fails midway, see the
    previous file whole. An OSError (a full disk, a quota, an I/O error) becomes an InputError
    naming ``flag``, a one-line error for the command-line tools; returns the path written."""
    write = data if callable(data) else (lambda handle: handle.write(data))
    try:
        return write_atomic(path, write)
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise bad_input(flag, "a file that can be written", f"{str(path)!r} ({why}; nothing was written)",
                        described=True) from None


def output_folder(flag: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked to be a folder (existing or to create) one can write in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise bad_input(flag, "a folder to write in", f"{str(path)!r}, an existing file", described=True)
    _check_writable(flag, path, path)
    return path


def _check_writable(flag: str, folder: Path, path: Path) -> None:
    """Files can be created in ``folder``: its nearest existing ancestor is a folder that takes a
    file. The probe is a real (anonymous) file, as permission bits lie to root."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise bad_input(flag, "a path under a folder", f"{str(path)!r} ({existing} is a file)", described=True)
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise bad_input(flag, "a writable location", f"{str(path)!r} ({existing}: {exc.strerror})",
                        described=True) from None


# ------------------------------------------------------------------ the avsdk command

# (label, distribution name, module to import when the distribution has no pip metadata)
PACKAGES = (
    ("avsdk", "avsdk", "avsdk"),
    ("torch", "torch", "torch"),
    ("numpy", "numpy", "numpy"),
    ("onnx", "onnx", None),
    ("onnxruntime", "onnxruntime", None),
    ("triton", "triton", None),
    ("tensorrt", "tensorrt", "tensorrt"),  # JetPack installs it from a .deb, without metadata
    ("av", "av", None),
)


def _version(distribution: str, module: str | None) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pass
    if module is None:
        return None
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # ImportError, or OSError from a half-installed native library
        return None


def environment() -> dict:
    """What avsdk runs with: package versions (None = not installed), frontend, CUDA."""
    info = {"versions": {label: _version(dist, module) for label, dist, module in PACKAGES}}
    try:
        from avsdk.frontend import compiled_status

        info["audio_frontend"] = compiled_status()
    except ImportError as exc:
        info["audio_frontend"] = f"unavailable ({exc})"
    import torch

    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _info(args) -> int:
    info = environment()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for label, version in info["versions"].items():
        print(f"{label:<13} {version or 'not installed'}")
    print(f"{'frontend':<13} {info['audio_frontend']}")
    cuda = f"yes ({info['cuda_device']}, CUDA {info['cuda_version']})" if info["cuda"] else "no"
    print(f"{'cuda':<13} {cuda}")
    return 0


def _report(result, out, image, as_json: bool = False) -> None:
    """Print the result (as JSON: LocalizationResult.to_dict and the overlay's path), after
    writing the overlay PNG to ``out`` when given."""
    written = None
    if out is not None:
        with flags({"path": "--out"}):  # written atomically; an OSError is one line naming --out
            written = result.save_overlay(out, image)
    if as_json:
        print(json.dumps({**result.to_dict(), "overlay": None if written is None else str(written)}, indent=2))
        return
    print(f"box   (x0, y0, x1, y1) = {result.box}")
    print(f"peak  (x, y)           = {result.peak}")
    print(f"score (max cosine)     = {result.score:.4f}")
    if result.on_screen is not None:
        print(f"on screen (calibrated) = {result.on_screen:.3f}"
              + ("" if result.on_screen >= 0.5 else "  (the source is most likely not in the picture)"))
    if result.window is not None:
        print(f"heard (s)              = {result.window[0]:.3f} to {result.window[1]:.3f}")
    if written is not None:
        print(f"overlay written to {written}")


def _load(args, suffixes: dict[str, str] | None = None):
    """The localizer of ``args.model``, after the checks that need no model (so that a bad
    ``--out`` is reported before inference, not after); ``suffixes``: what ``--out`` may end in
    ({suffix: what it holds}), a .png by default."""
    from avsdk.localizer import Localizer

    if args.out is not None:
        suffixes = suffixes or {".png": "the overlay"}
        if Path(args.out).suffix.lower() not in suffixes:
            kinds = " or ".join(f"{suffix} ({what})" for suffix, what in suffixes.items())
            raise bad_input("--out", f"a file name ending in {kinds}", str(args.out))
        output_file("--out", args.out)
    with flags({"path": "model", "device": "--device", "frontend": "--frontend", "max_pixels": "--max-pixels"}):
        return Localizer.load(args.model, device=args.device, frontend=args.frontend,
                              max_pixels=args.max_pixels or None)


@contextmanager
def _pixel_limit_flag():
    """A frame refused for its size names the flag that raises the limit, not the keyword."""
    try:
        yield
    except InputError as exc:
        if exc.argument != "frame" or "max_pixels" not in str(exc):
            raise
        raise InputError(str(exc).replace("max_pixels", "--max-pixels"), exc.argument) from None


def _localize(args) -> int:
    input_file("frame", args.frame)
    input_file("audio", args.audio)
    localizer = _load(args)
    with _pixel_limit_flag(), flags({"start": "--start"}):
        result = localizer(args.frame, args.audio, start=args.start)
    _report(result, args.out, args.frame, args.json)
    return 0


def _localize_video(args) -> int:
    from avsdk.video import VIDEO_FORMATS, read_clip

    input_file("video", args.video)
    if args.out is not None and Path(args.out).suffix.lower() in VIDEO_FORMATS:
        if args.time is not None:
            raise bad_input("--time", "no --time with a video --out (it holds every frame; a .png --out holds "
                            "the frame at --time)", args.time)
        from avsdk.cli_video import annotate_video

        return annotate_video(args)
    for flag, value, default in (("--every", args.every, None), ("--smoothing", args.smoothing, None),
                                 ("--batch-size", args.batch_size, 1)):
        if value != default:
            raise bad_input(flag, f"no {flag} without a video --out (.mp4, .mov, .mkv): one frame is localized",
                            value)
    localizer = _load(args, {".png": "the frame at --time", **{s: "the whole video" for s in VIDEO_FORMATS}})
    with flags({"time": "--time", "path": "video"}):
        clip = read_clip(args.video, time=args.time, clip_seconds=localizer.clip_seconds)
    with _pixel_limit_flag():
        result = localizer._localize_clip(clip)  # its window in seconds of the video
    print(f"frame at {clip.time:.3f} s")
    _report(result, args.out, clip.frame)
    return 0


def _max_pixels_flag(parser) -> None:
    from avsdk.frames import MAX_PIXELS

    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                        help=f"refuse frames of more than N pixels, width x height (default {MAX_PIXELS:,}; "
                             "0: no limit)")


def build_parser() -> argparse.ArgumentParser:
    from avsdk import __version__
    from avsdk.cli_video import add_stream_command, stream_options

    parser = argparse.ArgumentParser(prog="avsdk", description="Audio-visual sound source localization.")
    parser.add_argument("--version", action="version", version=f"avsdk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="versions, audio frontend implementation, CUDA")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info)

    localize = commands.add_parser("localize", help="where in FRAME does AUDIO come from?")
    localize.add_argument("model", help="model file: .pt, .onnx or .engine")
    localize.add_argument("frame", help="image file")
    localize.add_argument("audio", help="sound file (wav, flac, ogg)")
    localize.add_argument("--start", type=float, default=None, metavar="SECONDS",
                          help="where in AUDIO the model's clip begins (default: the centre clip)")
    localize.add_argument("--out", default=None, help="write the overlay PNG here")
    localize.add_argument("--json", action="store_true",
                          help="print box, peak, score, on_screen and the heard window as JSON")
    localize.add_argument("--device", default="cpu", help="torch device for a .pt model")
    localize.add_argument("--frontend", default="auto", choices=("auto", "compiled", "numpy"),
                        help="log-mel implementation (default: compiled when built)")
    _max_pixels_flag(localize)
    localize.set_defaults(run=_localize)

    video = commands.add_parser(
        "localize-video", help="localize in one frame of a video, or in all of them",
        description="Without --out or with a .png --out: localize in the frame at --time (default: the middle). "
                    "With a .mp4, .mov or .mkv --out: localize in every frame (or one per --every) and write "
                    "them, heatmap, box and peak drawn, with the video's sound re-encoded to AAC, in H.264.")
    video.add_argument("model", help="model file: .pt, .onnx or .engine")
    video.add_argument("video", help="video file with a sound track")
    video.add_argument("--time", type=float, default=None, help="seconds (default: the middle); one frame, .png")
    video.add_argument("--out", default=None,
                       help="overlay.png: the frame at --time; overlay.mp4 (.mov, .mkv): the whole video")
    stream_options(video, live=False)
    video.add_argument("--no-progress", action="store_true", help="no progress bar (whole video)")
    video.add_argument("--device", default="cpu", help="torch device for a .pt model")
    video.add_argument("--frontend", default="auto", choices=("auto", "compiled", "numpy"),
                        help="log-mel implementation (default: compiled when built)")
    _max_pixels_flag(video)
    video.set_defaults(run=_localize_video)

    add_stream_command(commands)

    for name, (module, text) in TOOLS.items():
        tool = commands.add_parser(name, help=f"{text} (python -m {module})", add_help=False,
                                   description=f"avsdk {name} ARGS... runs python -m {module} ARGS...")
        tool.add_argument("args", nargs=argparse.REMAINDER, help=f"its arguments (avsdk {name} --help)")
        tool.set_defaults(run=lambda args, name=name: _tool(name).main(args.args))
    return parser


# avsdk TOOL ARGS... is that tool's own command line: ARGS go to its main unchanged
TOOLS = {
    "train": ("avsdk.training.train", "train a model"),
    "evaluate": ("avsdk.training.evaluate", "score a model on a benchmark split"),
    "export": ("avsdk.export.build_engine", "ONNX, INT8 and the TensorRT engine"),
    "pipeline": ("avsdk.training.pipeline", "the main job: benchmark, train, calibrate, score, export"),
}


def _tool(name: str):
    module = TOOLS[name][0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if (exc.name or "avsdk").startswith("avsdk"):
            raise  # a bug, not a missing package
        from avsdk.errors import MissingDependencyError

        extra = "export" if module.startswith("avsdk.export") else "train"
        raise MissingDependencyError(f"avsdk {name} needs {exc.name}, which is not installed: "
                                     f"pip install 'avsdk[{extra}]'") from exc


@quiet_broken_pipe
@command
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TOOLS:  # before argparse, which would take the tool's flags for its own
        return _tool(argv[0]).main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
