"""Audio steps of the asset pack: decode to 16 kHz mono, trim, cut into distinct segments.

Used by make.py and sources.py; the benchmark builder reads the finished clips.
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

RATE = 16000
MIN_SEGMENT_S = 1.2  # shorter pieces of one sound would no longer be a recognisable call
MAX_CLIP_S = 4.0
MAX_SEGMENTS = 4
DUPLICATE_CORRELATION = 0.8


def decode_16k_mono(blob: bytes) -> np.ndarray:
    import soxr

    audio, rate = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), rate, RATE).astype(np.float32)


def _frame_db(x: np.ndarray, hop: int = 160) -> np.ndarray:
    frames = max(-(-len(x) // hop), 1)
    padded = np.pad(x, (0, frames * hop - len(x)))
    energy = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(energy / energy.max())


def trim_silence(x: np.ndarray, floor_db: float = -40.0, hop: int = 160) -> np.ndarray:
    loud = np.flatnonzero(_frame_db(x, hop) > floor_db)
    start, stop = max(loud[0] - 5, 0) * hop, min((loud[-1] + 6) * hop, len(x))
    return x[start:stop]


def segment_bounds(x: np.ndarray) -> list[tuple[int, int]]:
    """Cut a recording into 1..4 pieces of >= MIN_SEGMENT_S, <= MAX_CLIP_S where it can.

    Cuts are snapped to the quietest 10 ms frame within 0.25 s of the even split, so a
    piece rarely starts mid-call. A piece longer than MAX_CLIP_S keeps only its start.
    """
    duration = len(x) / RATE
    count = int(np.clip(duration // MIN_SEGMENT_S, 1, MAX_SEGMENTS))
    db, hop = _frame_db(x), 160
    cuts = [0]
    for i in range(1, count):
        centre = int(i * len(x) / count) // hop
        lo, hi = max(centre - 25, 1), min(centre + 25, len(db) - 1)
        cuts.append((lo + int(np.argmin(db[lo:hi]))) * hop)
    cuts.append(len(x))
    return [(a, min(b, a + int(MAX_CLIP_S * RATE))) for a, b in zip(cuts[:-1], cuts[1:])]


def is_duplicate(x: np.ndarray, seen: list[np.ndarray]) -> bool:
    for y in seen:
        n = min(len(x), len(y))
        corr = float(np.dot(x[:n], y[:n]) / (np.linalg.norm(x[:n]) * np.linalg.norm(y[:n]) + 1e-9))
        if corr > DUPLICATE_CORRELATION:
            return True
    return False
