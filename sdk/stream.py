"""Localize as the frames come: a video file, a live source FFmpeg opens, or frames and sound the
application pushes (docs/streams.md).

    for r in loc.stream("street.mp4", every=0.5, batch_size=8, smoothing=1.0):
        r.time, r.result.box, r.result.on_screen, r.result.window    # seconds, box, P(on screen)

    source = PushSource()                   # the application's camera and microphone
    results = loc.stream(source)            # read it in one thread, push from others:
    source.push_audio(samples, 48000); source.push_frame(rgb, time); source.close()

Sound: a file's frame hears the clip_seconds centred on it, as Localizer.localize_video; a live
frame the clip_seconds just before it (avsdk.stream_sources). Live sources drop the frames the
model has no time for, newest first served, and count them in ``StreamResult.dropped``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from avsdk.errors import bad_input
from avsdk.localizer import LocalizationResult, result_from_similarity
from avsdk.stream_sound import is_finite_number
from avsdk.stream_sources import SOUND_WAIT, FileSource, LiveSource, PushSource

__all__ = ["StreamResult", "PushSource", "LiveSource", "FileSource", "SOUND_WAIT", "stream", "open_source"]

_TOLERANCE = 1e-6  # seconds: a frame this close to its due time is on time (timestamps are rounded)


@dataclass(frozen=True)
class StreamResult:
    """The localization of one frame of a stream.

    time: seconds of the frame on the stream's clock (a file's: from its start, avsdk.video).
    result: the LocalizationResult, its ``window`` the heard seconds on the same clock; with
        smoothing, its maps, box, peak and score are those of the smoothed map, its
        ``on_screen`` the frame's own (the calibration is of single maps).
    dropped: frames the stream has dropped so far because the model was busy (live sources;
        always 0 for a file).
    frame: RGB uint8 [H, W, 3], the frame localized (to draw on, e.g. avsdk.overlay.draw_overlay).
    """

    time: float
    result: LocalizationResult
    dropped: int
    frame: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        """time, dropped and the result's to_dict, JSON-ready."""
        return {"time": float(self.time), "dropped": int(self.dropped), **self.result.to_dict()}


def stream(localizer, source, *, audio=None, format: str | None = None, options: dict | None = None,
           every: float | None = None, fps: float | None = None, batch_size: int = 1,
           smoothing: float | None = None) -> Iterator[StreamResult]:
    """Localize in the frames of ``source`` as they come (Localizer.stream).

    Args:
        localizer: an avsdk Localizer.
        source: a video file path (every frame, none dropped); a URL, device or lavfi graph
            that FFmpeg opens (anything given with ``format`` or ``options`` too: a LiveSource);
            a LiveSource or a PushSource.
        audio: a separate sound for a path or URL source: a sound file for a video file (its
            time 0 at the video's), a URL or device for a live source.
        format, options: ``av.open``'s, for a live source (e.g. "v4l2", {"video_size": "640x480"}).
        every, fps: localize one frame per ``every`` seconds (or ``fps`` per second): the first
            frame at or after each multiple of ``every``. Default: every frame.
        batch_size: frames per model call. A file fills every batch but the last; a live
            source sends what is ready, at most this many (the newest).
        smoothing: None, or the half-life in seconds of an exponential moving average of the
            model's raw maps: each frame's map is mixed with the average so far, which keeps
            the weight ``0.5 ** (seconds since the frame before / smoothing)``.
    Returns:
        an iterator of StreamResult, in the frames' order. It closes the source when it ends
        or is closed; a source that fails midway raises an InputError naming it after the
        results of the frames before.
    Raises:
        InputError: a bad argument, or a source that cannot be opened or has no picture or
            sound (now, not at the first result).
        MissingDependencyError: PyAV is not installed (files and live sources).
    """
    select = _selector(every, fps)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise bad_input("batch_size", "an int >= 1", batch_size)
    if smoothing is not None and not (is_finite_number(smoothing) and smoothing > 0):
        raise bad_input("smoothing", "None or a half-life > 0 in seconds", smoothing)
    source = open_source(source, audio, format, options)
    source.start(select, batch_size, localizer.clip_seconds)
    return _results(localizer, source, _Smoother(smoothing))


def open_source(source, audio=None, format: str | None = None, options: dict | None = None):
    """The FileSource, LiveSource or PushSource that ``stream`` reads ``source`` with."""
    if isinstance(source, PushSource):
        for name, value in (("audio", audio), ("format", format), ("options", options)):
            if value is not None:
                raise bad_input(name, f"None for a {type(source).__name__} (give it to the source itself)", value)
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise bad_input("source", "a video file, a URL or device (str), a LiveSource or a PushSource", source)
    if format is None and options is None and Path(source).is_file():
        return FileSource(source, audio)
    return LiveSource(os.fspath(source), format, options, audio)


def _results(localizer, source, smooth: "_Smoother") -> Iterator[StreamResult]:
    try:
        for items, dropped in source.batches():
            inputs = [localizer.inputs(item.frame, item.sound, item.sample_rate) for item in items]
            maps = localizer.predict(np.stack([x.frame for x in inputs]), np.stack([x.audio for x in inputs]))
            for item, x, similarity in zip(items, inputs, maps):
                on_screen = None
                if localizer.visibility is not None:
                    from avsdk.visibility import map_features

                    on_screen = localizer.visibility.probability(map_features(similarity, x.level_db()))
                window = (item.start + x.window[0], item.start + x.window[1])
                result = result_from_similarity(smooth(similarity, item.time), x.size[0], x.size[1],
                                                localizer.transform, on_screen, window)
                yield StreamResult(item.time, result, dropped, item.frame)
    finally:
        source.close()


def _selector(every, fps) -> Callable[[float], bool]:
    """``select(time)``: whether the frame at ``time`` is localized."""
    if every is not None and fps is not None:
        raise bad_input("fps", "None when every= is given (one rate)", fps)
    if fps is not None:
        if not (is_finite_number(fps) and fps > 0):
            raise bad_input("fps", "None or a number of frames per second > 0", fps)
        every = 1.0 / fps
    elif every is None:
        return lambda time: True
    elif not (is_finite_number(every) and every > 0):
        raise bad_input("every", "None or a number of seconds > 0", every)
    due = None

    def select(time: float) -> bool:
        nonlocal due
        if due is not None and time < due - _TOLERANCE:
            return False
        due = (math.floor((time + _TOLERANCE) / every) + 1) * every
        return True

    return select


class _Smoother:
    """Exponential moving average of raw maps [h, w], its half-life in seconds of the stream."""

    def __init__(self, half_life: float | None):
        self.half_life = half_life
        self._map: np.ndarray | None = None
        self._time = 0.0

    def __call__(self, similarity: np.ndarray, time: float) -> np.ndarray:
        if self.half_life is None:
            return similarity
        if self._map is not None and self._map.shape == similarity.shape:
            keep = 0.5 ** (max(0.0, time - self._time) / self.half_life)
            similarity = (keep * self._map + (1.0 - keep) * similarity).astype(np.float32)
        self._map, self._time = similarity, time
        return similarity
