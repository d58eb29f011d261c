"""The sound a stream's frames hear: a buffer of it on the stream's clock, and the items a
source hands the stream (avsdk.stream_sources cuts each frame's window from the buffer).
"""
from __future__ import annotations

import math
import numbers
from collections import deque
from dataclasses import dataclass

import numpy as np

from avsdk.errors import bad_input

SAMPLE_RATE = 16000  # the rate sound is decoded at (the model's, avsdk.audio.SAMPLE_RATE)
_JITTER = 0.010  # seconds: sound timestamps this close to the end of the sound before are contiguous


@dataclass(frozen=True)
class Item:
    """One frame and the sound heard with it."""

    time: float  # seconds of the frame on the stream's clock
    frame: np.ndarray  # RGB uint8 [H, W, 3]
    sound: np.ndarray  # float32 [T] mono
    sample_rate: int
    start: float  # seconds of sound[0] on the stream's clock


class SoundBuffer:
    """Mono float32 sound on a stream's clock, kept in chunks: ``cut`` reads any window of it
    (silence where none was received), ``forget`` drops what no later window needs."""

    def __init__(self):
        self.rate: int | None = None
        self.start: float | None = None  # seconds of the first sample received
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (index of the first sample, samples)
        self._end = 0  # index past the last sample received

    @property
    def end(self) -> float | None:
        """Seconds past the last sample received (None before any)."""
        return None if self.start is None else self.start + self._end / self.rate

    def append(self, samples: np.ndarray, rate: int, time: float | None = None) -> None:
        """Add mono ``samples`` at ``rate`` Hz beginning at ``time`` seconds; None continues the
        sound before (0.0 for the first). A later start leaves silence in between; samples at
        times already received are dropped."""
        if self.rate is None:
            self.rate, self.start = rate, 0.0 if time is None else float(time)
        elif rate != self.rate:
            raise bad_input("sample_rate", f"{self.rate} Hz, the rate of the sound before", rate)
        first = self._end
        if time is not None:
            first = round((time - self.start) * rate)
            if abs(first - self._end) <= _JITTER * rate:
                first = self._end
        if first < self._end:
            samples, first = samples[self._end - first :], self._end
        if samples.size:
            self._chunks.append((first, samples))
            self._end = first + samples.size

    def cut(self, first: float, last: float, rate: int = SAMPLE_RATE) -> np.ndarray:
        """The samples from ``first`` to ``last`` seconds, zero where none were received."""
        rate = self.rate or rate
        begin = round((first - (self.start or 0.0)) * rate)
        out = np.zeros(max(0, round((last - first) * rate)), np.float32)
        for index, chunk in self._chunks:
            low, high = max(begin, index), min(begin + out.size, index + chunk.size)
            if low < high:
                out[low - begin : high - begin] = chunk[low - index : high - index]
        return out

    def forget(self, before: float) -> None:
        """Drop the chunks that end before ``before`` seconds."""
        if self.start is None:
            return
        index = math.floor((before - self.start) * self.rate)
        while self._chunks and self._chunks[0][0] + self._chunks[0][1].size <= index:
            self._chunks.popleft()


def is_finite_number(value) -> bool:
    """A real number (not a bool), finite."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def resampled_samples(resampler, frame) -> np.ndarray:
    """The samples that a PyAV AudioResampler (mono, "flt") gives for ``frame`` (None: flush)."""
    pieces = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)
