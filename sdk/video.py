"""One frame of a video and the sound around it, with PyAV (pip install 'avsdk[video]').

    clip = read_clip("street.mp4", time=12.5)     # frame at 12.5 s, 3 s of sound centred on it
    clip.frame [H, W, 3] uint8, clip.audio [T] float32 mono, clip.sample_rate
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsdk.errors import bad_input, require


@dataclass(frozen=True)
class VideoClip:
    frame: np.ndarray  # uint8 [H, W, 3], the frame shown at ``time``
    audio: np.ndarray  # float32 [T] mono, the sound from time - clip/2 to time + clip/2
    sample_rate: int
    time: float  # seconds from the start of the video


def read_clip(path: str | os.PathLike, time: float | None = None, clip_seconds: float = 3.0,
              sample_rate: int = 16000) -> VideoClip:
    """Grab the frame at ``time`` and ``clip_seconds`` of sound centred on it.

    Args:
        path: a video file with a picture stream and a sound track.
        time: seconds from the start; None for the middle of the video.
        clip_seconds: length of the sound window (clipped to the video's ends).
        sample_rate: rate of the returned mono audio.
    Raises:
        InputError: missing or undecodable file, no picture or no sound stream, a time
            outside the video. MissingDependencyError: PyAV is not installed.
    """
    av = require("av", "video", "reading video files")
    path = Path(path)
    if not path.is_file():
        raise bad_input("path", "an existing video file", str(path), described=True)
    if clip_seconds <= 0:
        raise bad_input("clip_seconds", "a positive number of seconds", clip_seconds)
    try:
        with av.open(str(path)) as container:
            video = next((s for s in container.streams if s.type == "video"), None)
            sound = next((s for s in container.streams if s.type == "audio"), None)
            if video is None or sound is None:
                missing = "picture" if video is None else "sound"
                raise bad_input("path", "a video with both a picture stream and a sound track",
                                f"{path} (no {missing} stream)", described=True)
            duration = _duration(container, video, av)
            if time is None:
                time = duration / 2.0
            if not 0.0 <= float(time) <= duration:
                raise bad_input("time", f"seconds within the video [0, {duration:.3f}]", time)
            time = float(time)
            frame = _frame_at(container, video, time)
            start = max(0.0, time - clip_seconds / 2.0)
            end = min(duration, time + clip_seconds / 2.0)
            audio = _sound_between(container, sound, start, end, sample_rate, av)
    except av.FFmpegError as exc:
        raise bad_input("path", "a video file FFmpeg can decode", f"{path} ({exc})", described=True) from exc
    if audio.size == 0:
        raise bad_input("path", f"sound around {time:.3f} s", f"{path} (no audio samples there)",
                        described=True)
    return VideoClip(frame=frame, audio=audio, sample_rate=int(sample_rate), time=time)


def _duration(container, video, av) -> float:
    if container.duration is not None:
        return container.duration / av.time_base
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    raise bad_input("path", "a video whose duration is known", container.name, described=True)


def _frame_at(container, video, time: float) -> np.ndarray:
    """The frame on screen at ``time``: the last frame that starts at or before it."""
    container.seek(int(time / video.time_base), stream=video, backward=True)
    shown = None
    for frame in container.decode(video):
        if frame.time is not None and frame.time > time + 1e-6 and shown is not None:
            break
        shown = frame
    if shown is None:
        raise bad_input("time", "a moment at which the video has a frame", time)
    return shown.to_ndarray(format="rgb24")


def _sound_between(container, sound, start: float, end: float, sample_rate: int, av) -> np.ndarray:
    """Mono float32 samples from ``start`` to ``end`` seconds, resampled to ``sample_rate``."""
    container.seek(int(start / sound.time_base), stream=sound, backward=True)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    pieces, first_time = [], None
    for frame in container.decode(sound):
        if frame.time is not None and frame.time >= end:
            break
        if first_time is None:
            first_time = frame.time or 0.0
        pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(pieces).astype(np.float32)
    first = max(0, int(round((start - first_time) * sample_rate)))
    return samples[first : first + int(round((end - start) * sample_rate))]
