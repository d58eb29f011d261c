"""The commands of ``avsdk`` that read a whole video or a live source (avsdk.stream):

    avsdk localize-video MODEL VIDEO --out overlay.mp4    every frame drawn over, with the sound
    avsdk stream MODEL SOURCE [--out overlay.mp4]         one JSON line per result as it comes

avsdk.cli builds the parser and runs them; this module holds what they share: reading the
results, drawing and writing them, and their flags.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from avsdk.cli import EXIT_INTERRUPTED, _load, _max_pixels_flag, _pixel_limit_flag, flags, write_output
from avsdk.errors import bad_input


def annotate_video(args) -> int:
    """localize-video with a video --out: every frame (or one per --every), drawn, with the sound."""
    from avsdk.video import VIDEO_FORMATS

    localizer = _load(args, {".png": "the frame at --time", **{s: "the whole video" for s in VIDEO_FORMATS}})
    with _stream_flags("video"):
        results = localizer.stream(args.video, every=args.every, batch_size=args.batch_size,
                                   smoothing=args.smoothing)
    total, rate = _video_frames(args.video, args.every)
    count, span, interrupted = _consume(results, args.out, sound_from=args.video, rate=rate, total=total,
                                        progress=not args.no_progress, source="video")
    stopped = "interrupted: " if interrupted else ""
    print(f"{stopped}wrote {args.out}: {count} frames, {span[0]:.3f} to {span[1]:.3f} s, with the sound",
          file=sys.stderr if interrupted else sys.stdout)
    return EXIT_INTERRUPTED if interrupted else 0


def stream_command(args) -> int:
    """avsdk stream: one JSON line per result on stdout, and the annotated video with --out."""
    from avsdk.video import VIDEO_FORMATS

    localizer = _load(args, {s: "the annotated video" for s in VIDEO_FORMATS})
    if args.seconds is not None and not args.seconds > 0:
        raise bad_input("--seconds", "a number of seconds > 0", args.seconds)
    options = dict(_option(text) for text in args.option) if args.option else None
    with _stream_flags("source"):
        results = localizer.stream(args.source, audio=args.audio, format=args.format, options=options,
                                   every=args.every, fps=args.fps, batch_size=args.batch_size,
                                   smoothing=args.smoothing)
    is_file = args.format is None and options is None and Path(args.source).is_file()
    rate = _video_frames(args.source, args.every)[1] if is_file else (args.fps or 30)
    count, span, interrupted = _consume(results, args.out, sound_from=(args.audio or args.source) if is_file else None,
                                        rate=rate, lines=True, seconds=args.seconds, source="source")
    if args.out is not None:
        print(f"wrote {args.out}: {count} frames, {span[0]:.3f} to {span[1]:.3f} s", file=sys.stderr)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _option(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not (name and equals):
        raise bad_input("--option", "NAME=VALUE (an FFmpeg option of the source)", text)
    return name, value


def _stream_flags(source: str):
    return flags({"every": "--every", "fps": "--fps", "batch_size": "--batch-size", "smoothing": "--smoothing",
                  "source": source, "audio": "--audio", "format": "--format", "options": "--option"})


def _consume(results, out, sound_from, rate, total=None, progress=False, lines=False, seconds=None,
             source="source"):
    """Read the StreamResults; print each as a JSON line (``lines``); write them drawn over their
    frames to the video ``out`` with ``sound_from``'s sound, atomically (an error, or a stream of
    no frame, named ``source``, leaves nothing). Ctrl-C ends the stream and keeps what was read
    (a live stream's usual end). Returns (results read, (first, last) time, whether Ctrl-C ended
    it)."""
    from tqdm import tqdm

    from avsdk.overlay import draw_overlay
    from avsdk.video import VIDEO_FORMATS, VideoWriter

    state = {"count": 0, "span": (0.0, 0.0), "interrupted": False}

    def read(writer) -> None:
        with tqdm(total=total, unit="frame", disable=not progress, file=sys.stderr, leave=False) as bar:
            try:
                for r in results:
                    if writer is not None:
                        picture = draw_overlay(r.frame, r.result.heatmap, r.result.box, r.result.peak)
                        writer.write(picture, r.time)
                    if lines:
                        print(json.dumps(r.to_dict()), flush=True)
                    first = r.time if state["count"] == 0 else state["span"][0]
                    state["count"] += 1
                    state["span"] = (first, r.time)
                    bar.update()
                    if seconds is not None and r.time - first >= seconds:
                        break
            except KeyboardInterrupt:
                state["interrupted"] = True
            finally:
                results.close()
        if writer is not None and not state["count"]:
            raise bad_input(source, "a stream with at least one frame to write", "none", described=True)

    with _pixel_limit_flag():
        if out is None:
            read(None)
        else:
            def write(handle) -> None:
                with VideoWriter(handle, VIDEO_FORMATS[Path(out).suffix.lower()], sound_from=sound_from,
                                 rate=rate) as writer:
                    read(writer)

            with flags({"target": "--out"}):
                write_output("--out", out, write)
    return state["count"], state["span"], state["interrupted"]


def _video_frames(path, every) -> tuple[int | None, float]:
    """(about how many results a stream of the video file gives, or None; its frame rate)."""
    import av

    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            rate = float(video.average_rate or 30)
            seconds = (float(video.duration * video.time_base) if video.duration
                       else container.duration / av.time_base if container.duration else None)
    except (av.FFmpegError, IndexError):  # the stream itself reports what is wrong
        return None, 30.0
    if every is not None:
        return (None if seconds is None else math.ceil(seconds / every)), min(rate, 1.0 / every)
    return (video.frames or (None if seconds is None else round(seconds * rate))), rate


def stream_options(parser, live: bool) -> None:
    rate = parser.add_mutually_exclusive_group() if live else parser
    rate.add_argument("--every", type=float, default=None, metavar="SECONDS",
                      help="localize one frame per SECONDS (default: every frame)")
    if live:
        rate.add_argument("--fps", type=float, default=None, help="localize FPS frames per second")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="frames per model call (default 1)")
    parser.add_argument("--smoothing", type=float, default=None, metavar="SECONDS",
                        help="average the maps over time, a map's weight halving every SECONDS (default: off)")


def add_stream_command(commands) -> None:
    """Add ``avsdk stream`` to the subparsers ``commands``."""
    live = commands.add_parser(
        "stream", help="localize as the frames of a file or a live source come; JSON lines",
        description="Print one JSON line per localized frame (time, dropped, box, peak, score, on_screen, "
                    "window) as it comes; with --out, also write the frames drawn over (the sound too for a "
                    "file SOURCE). A live source drops the frames the model has no time for and counts them "
                    "(docs/streams.md). Stop it with Ctrl-C (--out is then finished) or --seconds.")
    live.add_argument("model", help="model file: .pt, .onnx or .engine")
    live.add_argument("source", help="a video file, or what FFmpeg opens: rtsp://..., /dev/video0, a lavfi graph")
    live.add_argument("--audio", default=None, help="a separate sound: a sound file for a video file, a URL "
                      "or device for a live source")
    live.add_argument("--format", default=None, help="FFmpeg input format of a live SOURCE (v4l2, lavfi, ...)")
    live.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                      help="an FFmpeg option of a live SOURCE, e.g. video_size=640x480 (repeatable)")
    stream_options(live, live=True)
    live.add_argument("--seconds", type=float, default=None, help="stop after SECONDS of the stream")
    live.add_argument("--out", default=None, help="also write the annotated video here (.mp4, .mov, .mkv)")
    live.add_argument("--device", default="cpu", help="torch device for a .pt model")
    live.add_argument("--frontend", default="auto", choices=("auto", "compiled", "numpy"),
                      help="log-mel implementation (default: compiled when built)")
    _max_pixels_flag(live)
    live.set_defaults(run=stream_command)
