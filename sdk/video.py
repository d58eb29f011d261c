"""One frame of a video and the sound around it, and videos written frame by frame, with PyAV
(pip install 'avsdk[video]').

    clip = read_clip("street.mp4", time=12.5)     # frame at 12.5 s, 3 s of sound centred on it
    clip.frame [H, W, 3] uint8, clip.audio [T] float32 mono, clip.sample_rate

    with VideoWriter("out.mp4", sound_from="street.mp4") as out:   # an annotated copy
        out.write(rgb, time)                                      # frames at their own times

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
from fractions import Fraction
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
            start, end = stream_span(container, (video, sound), av)
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


def start_of(container, streams) -> float:
    """The earliest first timestamp of ``streams`` (of the container when none has one), in
    seconds: the 0 of the module's times."""
    starts = [float(s.start_time * s.time_base) for s in streams if s.start_time is not None]
    if starts:
        return min(starts)
    import av

    return container.start_time / av.time_base if container.start_time is not None else 0.0


def stream_span(container, streams, av) -> tuple[float, float]:
    """(start, end): the earliest first timestamp and the latest end of ``streams``, in seconds."""
    start = start_of(container, streams)
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


# ------------------------------------------------------------------------- writing

#: the containers VideoWriter writes, by the output's suffix (FFmpeg's format names)
VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_MILLISECOND = Fraction(1, 1000)  # the picture's time base: frames keep their times to the millisecond


class VideoWriter:
    """Encode RGB frames, each at its own time, into a video, with the sound track of a media
    file re-encoded to AAC beside them.

    The picture is H.264 (libx264; MPEG-4 Part 2 where the PyAV build has no libx264) at the
    first frame's size, rounded up to even sides by repeating its last row or column (4:2:0
    needs them even); a frame of another size is scaled to it. Frames keep their times, so a
    variable frame rate survives. The sound is the whole first sound track of ``sound_from``,
    on the clock of this module (seconds from that file's start), written as the frames
    advance; a file without one gives a silent video.

    Args:
        target: a path ending in one of VIDEO_FORMATS, or a binary file object (with ``format``).
        format: FFmpeg's container name; None: from the path's suffix.
        sound_from: a media file whose sound to copy; None for a silent video.
        rate: the nominal frame rate the file states (players show each frame at its own time).
    Raises:
        InputError: naming ``target`` (suffix, not writable), ``sound_from`` (unreadable), ``frame``
            or ``time`` (in ``write``).
        MissingDependencyError: PyAV is not installed.
    """

    def __init__(self, target, format: str | None = None, sound_from: str | os.PathLike | None = None,
                 rate: float = 30):
        av = require("av", "video", "writing video files")
        if format is None:
            suffix = Path(target).suffix.lower() if isinstance(target, (str, os.PathLike)) else None
            if suffix not in VIDEO_FORMATS:
                raise bad_input("target", f"a path ending in {', '.join(VIDEO_FORMATS)} (or a format)", target)
            format = VIDEO_FORMATS[suffix]
        self._av = av
        self._rate = Fraction(rate).limit_denominator(1001)
        self._video = None  # made at the first frame, which gives the size
        self._last_pts = -1
        try:
            self._container = av.open(str(target) if isinstance(target, (str, os.PathLike)) else target, "w",
                                      format=format)
        except av.FFmpegError as exc:
            raise bad_input("target", "a video file that can be written", f"{target} ({exc})", described=True) from exc
        try:
            self._sound = None if sound_from is None else _SoundCopy(self._container, sound_from, av)
        except BaseException:
            self._container.close()
            raise

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, frame: np.ndarray, time: float) -> None:
        """Add ``frame`` (uint8 [H, W, 3], RGB), shown from ``time`` seconds (increasing)."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or 0 in frame.shape:
            raise bad_input("frame", "an RGB uint8 array [H, W, 3]", frame)
        if not (_is_finite_real(time) and time >= 0):
            raise bad_input("time", "a finite number of seconds >= 0", time)
        if self._video is None:
            self._open_video(frame.shape[0], frame.shape[1])
        if self._sound is not None:
            self._sound.until(float(time))
        video = self._video
        if frame.shape[:2] == self._size:  # pad to even sides
            height, width = frame.shape[:2]
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        picture = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if (picture.height, picture.width) != (video.height, video.width):
            picture = picture.reformat(width=video.width, height=video.height)
        self._last_pts = max(self._last_pts + 1, round(time / _MILLISECOND))
        picture.pts, picture.time_base = self._last_pts, _MILLISECOND
        self._container.mux(video.encode(picture))

    def _open_video(self, height: int, width: int) -> None:
        codec = "libx264" if "libx264" in self._av.codecs_available else "mpeg4"
        options = {"preset": "veryfast"} if codec == "libx264" else {}
        video = self._container.add_stream(codec, rate=self._rate, options=options)
        video.width, video.height, video.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        video.codec_context.time_base = _MILLISECOND
        self._size, self._video = (height, width), video

    def close(self) -> None:
        """Write the rest of the sound, flush the encoders and finish the file."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            if self._sound is not None:
                self._sound.until(None)
            if self._video is not None:
                container.mux(self._video.encode())
            if self._sound is not None:
                self._sound.flush()
        finally:
            if self._sound is not None:
                self._sound.close()
            container.close()


class _SoundCopy:
    """The first sound track of a media file, decoded and encoded into another container as AAC."""

    def __init__(self, container, path, av):
        self._container, self._av, self._path = container, av, path
        try:
            self._source = av.open(str(path))
        except av.FFmpegError as exc:
            raise bad_input("sound_from", "a media file FFmpeg can read", f"{path} ({exc})", described=True) from exc
        sound = next((s for s in self._source.streams if s.type == "audio"), None)
        self._frames, self.stream, self._pending = iter(()), None, None
        if sound is None:
            return
        # the 0 of the frames' times: the start of the picture and the sound (read_clip's clock)
        self._origin = start_of(self._source, [s for s in self._source.streams if s.type in ("video", "audio")])
        self._rate = sound.codec_context.sample_rate
        self.stream = container.add_stream("aac", rate=self._rate)
        self.stream.layout = "mono" if sound.codec_context.layout.nb_channels == 1 else "stereo"
        self._frames = self._source.decode(sound)

    def until(self, time: float | None) -> None:
        """Encode the sound that begins before ``time`` seconds (all of it for None)."""
        while True:
            frame, self._pending = self._pending, None
            try:
                frame = frame or next(self._frames, None)
            except self._av.FFmpegError as exc:
                raise bad_input("sound_from", "a sound track FFmpeg can decode", f"{self._path} ({exc})",
                                described=True) from exc
            if frame is None:
                return
            begins = None if frame.time is None else frame.time - self._origin
            if time is not None and begins is not None and begins > time:
                self._pending = frame
                return
            if begins is not None:
                frame.pts, frame.time_base = max(0, round(begins * self._rate)), Fraction(1, self._rate)
            self._container.mux(self.stream.encode(frame))

    def flush(self) -> None:
        if self.stream is not None:
            self._container.mux(self.stream.encode())

    def close(self) -> None:
        self._source.close()
