"""One frame of a video and the sound around it, with PyAV (pip install 'avsdk[video]').

    clip = read_clip("street.mp4", time=12.5)     # frame at 12.5 s, 3 s of sound centred on it
    clip.frame [H, W, 3] uint8, clip.audio [T] float32 mono, clip.sample_rate

Times are seconds from the start of the video, which is the earliest first timestamp of its
picture and sound streams (ffprobe's "start" for the usual file holding just those two). Streams
need not begin at timestamp 0 (MPEG-TS, MKV or MP4 with an offset or an edit list): ``time`` t
is looked up at timestamp start + t, and the video lasts from there to the later end of the two
streams, so ``time`` runs over [0, that length].
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsdk.errors import bad_input, require

# Seconds: timestamps become float seconds (and a container's start time is rounded to
# microseconds), so a frame that starts within this of the target counts as starting at it
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class VideoClip:
    frame: np.ndarray  # uint8 [H, W, 3], the frame shown at ``time``
    audio: np.ndarray  # float32 [T] mono, the sound from time - clip/2 to time + clip/2
    sample_rate: int
    time: float  # seconds from the start of the video (see the module docstring)


def read_clip(path: str | os.PathLike, time: float | None = None, clip_seconds: float = 3.0,
              sample_rate: int = 16000) -> VideoClip:
    """Grab the frame at ``time`` and ``clip_seconds`` of sound centred on it.

    Args:
        path: a video file with a picture stream and a sound track.
        time: seconds from the start of the video (its earliest stream, whatever timestamp
            that has); None for the middle of the video.
        clip_seconds: length of the sound window (clipped to the video's ends; where the
            sound track starts later than the window, the window begins with silence).
        sample_rate: rate of the returned mono audio, in Hz.
    Raises:
        InputError: missing or undecodable file, no picture or no sound stream, a time
            outside the video, ``time`` or ``clip_seconds`` not a finite real number (or
            ``clip_seconds`` not positive), ``sample_rate`` not a positive integer.
        MissingDependencyError: PyAV is not installed.
    """
    av = require("av", "video", "reading video files")
    path = Path(path)
    if not path.is_file():
        raise bad_input("path", "an existing video file", str(path), described=True)
    if time is not None and not _is_finite_real(time):
        raise bad_input("time", "None or a finite number of seconds", time)
    if not (_is_finite_real(clip_seconds) and clip_seconds > 0):
        raise bad_input("clip_seconds", "a positive finite number of seconds", clip_seconds)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise bad_input("sample_rate", "a positive integer number of Hz", sample_rate)
    try:
        with av.open(str(path)) as container:
            video = next((s for s in container.streams if s.type == "video"), None)
            sound = next((s for s in container.streams if s.type == "audio"), None)
            if video is None or sound is None:
                missing = "picture" if video is None else "sound"
                raise bad_input("path", "a video with both a picture stream and a sound track",
                                f"{path} (no {missing} stream)", described=True)
            start, end = _span(container, (video, sound), av)
            duration = end - start
            if time is None:
                time = duration / 2.0
            if not 0.0 <= time <= duration:
                raise bad_input("time", f"seconds within the video [0, {duration:.3f}]", time)
            time = float(time)
            frame = _frame_at(container, video, start + time, start)
            if frame is None:
                raise bad_input("time", "a moment at which the video has a frame", time)
            first = max(0.0, time - clip_seconds / 2.0)
            last = min(duration, time + clip_seconds / 2.0)
            audio = _sound_between(container, sound, start + first, start + last, start, int(sample_rate), av)
    except av.FFmpegError as exc:
        raise bad_input("path", "a video file FFmpeg can decode", f"{path} ({exc})", described=True) from exc
    if audio.size == 0:
        raise bad_input("path", f"sound around {time:.3f} s", f"{path} (no audio samples there)",
                        described=True)
    return VideoClip(frame=frame, audio=audio, sample_rate=int(sample_rate), time=time)


def _is_finite_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def _span(container, streams, av) -> tuple[float, float]:
    """(start, end): the earliest first timestamp and the latest end of ``streams``, in seconds."""
    starts = [float(s.start_time * s.time_base) for s in streams if s.start_time is not None]
    if starts:
        start = min(starts)
    else:
        start = container.start_time / av.time_base if container.start_time is not None else 0.0
    if all(s.start_time is not None and s.duration for s in streams):
        return start, max(float((s.start_time + s.duration) * s.time_base) for s in streams)
    # Matroska and WebM give no stream durations, and their container duration is the last
    # timestamp rather than a length: read the end off the last packets instead
    end = _last_packet_end(container, streams, start, av)
    if end is None:
        raise bad_input("path", "a video whose duration is known", container.name, described=True)
    return start, end


def _last_packet_end(container, streams, start: float, av) -> float | None:
    """The latest pts + duration of the packets after the first stream's last keyframe."""
    # start + the container duration is at or past the end whether that duration is a length
    # or an end timestamp; without one, or if nothing follows that seek, read the whole file
    tries = ([start + container.duration / av.time_base] if container.duration else []) + [start]
    for at in tries:
        container.seek(math.floor(at / streams[0].time_base), stream=streams[0], backward=True)
        ends = [float((p.pts + (p.duration or 0)) * p.time_base)
                for p in container.demux(*streams) if p.pts is not None]
        if ends:
            return max(ends)
    return None


def _decode_from(container, stream, target: float, start: float, keyframe: bool):
    """Decoded frames of ``stream`` from one that starts at or before ``target`` seconds, or
    from its very first frame when none does (``start`` is at or before that frame).

    A backward seek should land on a keyframe at or before ``target``, but MPEG-TS seeks by
    bisecting the file and can land past it; the decoder then drops frames up to the next
    keyframe (or, for some codecs, decodes garbage from the missing reference). Such a landing
    is retried from twice as far back, then from ``start``, and finally from the first byte of
    the file's data: MPEG-TS bisects on decoding timestamps, so even a seek to ``start`` can
    land past the first keyframe (a picture whose first frame comes after the sound's, 44.1 kHz
    AAC starting at 0.057 s and H.264 at 0.08 s, its keyframe decoded at 0 s). That last try is
    kept only when it decodes an earlier frame than the seek to ``start``: formats with an index
    seek by bytes to wherever they resynchronise (Matroska: a later cluster), or not at all (MP4).
    """
    back = 0.0
    while True:
        at = max(start, target - back)
        container.seek(math.floor(at / stream.time_base), stream=stream, backward=True)
        frames = container.decode(stream)
        head = next(frames, None)
        landed = head is not None and (head.time is None or (
            head.time <= target + _TOLERANCE and (not keyframe or head.key_frame)))
        if not landed and at <= start:
            rewound = _decode_from_first_byte(container, stream)
            if rewound is not None and (head is None or _before(rewound[0], head)):
                head, frames = rewound
            else:  # back to where the seek to start went
                container.seek(math.floor(at / stream.time_base), stream=stream, backward=True)
                frames = container.decode(stream)
                head = next(frames, None)
            landed = True
        if landed:
            if head is not None:
                yield head
                yield from frames
            return
        back = max(1.0, 2.0 * back)


def _before(frame, other) -> bool:
    return frame.time is not None and other.time is not None and frame.time < other.time - _TOLERANCE


def _decode_from_first_byte(container, stream):
    """(first frame, the frames after it) decoded from the start of the file's data, or None
    where the format cannot seek by bytes (MP4, MOV) or nothing decodes from there."""
    import av

    try:
        container.seek(0, stream=stream, unsupported_byte_offset=True)
    except av.FFmpegError:  # EPERM from AVFMT_NO_BYTE_SEEK: the caller seeks by time instead
        return None
    frames = container.decode(stream)
    head = next(frames, None)
    return None if head is None else (head, frames)


def _frame_at(container, video, target: float, start: float) -> np.ndarray | None:
    """The frame on screen at ``target`` seconds: the last one that starts at or before it, or
    the first frame if the picture starts later; None if the stream decodes to no frame."""
    shown = None
    for frame in _decode_from(container, video, target, start, keyframe=True):
        if shown is not None and frame.time is not None and frame.time > target + _TOLERANCE:
            break
        shown = frame
    return None if shown is None else shown.to_ndarray(format="rgb24")


def _sound_between(container, sound, first: float, last: float, start: float, sample_rate: int,
                   av) -> np.ndarray:
    """Mono float32 samples from ``first`` to ``last`` seconds, resampled to ``sample_rate``;
    silence stands in for any part of the window before the sound track starts."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    pieces, first_time = [], None
    for frame in _decode_from(container, sound, first, start, keyframe=False):
        if frame.time is not None and frame.time >= last:
            break
        if first_time is None:
            first_time = frame.time if frame.time is not None else first
        pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(pieces).astype(np.float32)
    skip = int(round((first - first_time) * sample_rate))
    if skip < 0:
        samples, skip = np.concatenate([np.zeros(-skip, np.float32), samples]), 0
    return samples[skip : skip + int(round((last - first) * sample_rate))]
