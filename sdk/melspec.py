"""The VGGish log-mel frontend in numpy: the reference every other frontend is checked against.

docs/method.md, "Inputs", matching Google's VGGish ``mel_features.py`` / ``vggish_input.py``
(computed in float64 as the reference does, returned as float32):

    periodic Hann window of 400 samples, hop 160, FFT size 512, magnitude spectrum
    -> 64 HTK mel bands from 125 to 7500 Hz (triangles in the mel domain, DC bin weight 0)
    -> log(mel + 0.01) -> non-overlapping examples of 96 frames -> [N, 1, 96, 64]

A frame exists only where a whole 400-sample window fits, and an example only where 96 whole
frames fit: trailing samples that do not fill one are dropped, as in the reference.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import bad_input

SAMPLE_RATE = 16_000
WINDOW_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
FFT_LENGTH = 512
NUM_BINS = FFT_LENGTH // 2 + 1
NUM_MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s per example

#: fewest samples that give one frame, and one whole example
MIN_SAMPLES_FRAME = WINDOW_LENGTH
MIN_SAMPLES_EXAMPLE = WINDOW_LENGTH + (EXAMPLE_FRAMES - 1) * HOP_LENGTH  # 15 600


def num_frames(num_samples: int) -> int:
    """Number of whole 400-sample windows at hop 160 (0 when the signal is shorter than one)."""
    if num_samples < WINDOW_LENGTH:
        return 0
    return 1 + (num_samples - WINDOW_LENGTH) // HOP_LENGTH


def num_examples(num_samples: int) -> int:
    """Number of whole 96-frame examples in a signal of ``num_samples`` samples at 16 kHz."""
    return num_frames(num_samples) // EXAMPLE_FRAMES


def periodic_hann(length: int) -> np.ndarray:
    """Hann window of period ``length`` (ends one sample before the closing zero) [length] f64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi / length * np.arange(length))


def hertz_to_mel(hertz):
    """HTK mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log(1.0 + np.asarray(hertz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """Weights that map magnitude bins to mel bands, [257, 64] float64 (read-only).

    Band ``i`` is a triangle over band edges ``i, i+1, i+2`` of 66 edges spaced evenly in mel
    between 125 and 7500 Hz; the slopes are linear in mel, not in hertz. The DC bin gets
    weight 0 in every band (HTK excludes it).
    """
    bins_mel = hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2.0, NUM_BINS))
    edges = np.linspace(hertz_to_mel(MEL_MIN_HZ), hertz_to_mel(MEL_MAX_HZ), NUM_MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    window = periodic_hann(WINDOW_LENGTH)
    window.setflags(write=False)
    return window


def check_waveform(
    waveform, argument: str = "waveform16k", min_samples: int = MIN_SAMPLES_FRAME, check_finite: bool = True
):
    """Validate a 16 kHz mono waveform and return it as a 1-D float32/float64 array.

    ``check_finite=False`` leaves the NaN/Inf scan to a caller that does it anyway (the compiled
    frontend checks while it reads).

    Raises:
        InputError: not a 1-D float32/float64 array, fewer than ``min_samples`` samples, or a
            NaN / Inf sample anywhere (a frontend cannot give a meaningful answer for those).
    """
    if not isinstance(waveform, np.ndarray):
        raise bad_input(argument, "a numpy array [T] of float32 or float64", waveform)
    if waveform.dtype.kind == "f" and not waveform.dtype.isnative:  # big-endian: same samples
        waveform = waveform.astype(waveform.dtype.newbyteorder("="))
    if waveform.dtype not in (np.float32, np.float64):
        raise bad_input(argument, "float32 or float64 samples (convert integer PCM first)", waveform)
    if waveform.ndim != 1:
        raise bad_input(argument, "a 1-D mono waveform [T]", waveform)
    if waveform.size < min_samples:
        raise bad_input(
            argument,
            f"at least {min_samples} samples at 16 kHz ({min_samples / SAMPLE_RATE:.4g} s)",
            f"{waveform.size} samples",
            described=True,
        )
    if not check_finite:
        return waveform
    finite = np.isfinite(waveform)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise bad_input(
            argument,
            "finite samples",
            f"{bad.size} NaN/Inf samples, the first at index {bad[0]}",
            described=True,
        )
    return waveform


def log_mel(waveform16k: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram of a 16 kHz mono waveform.

    Args:
        waveform16k: [T] float32 or float64, T >= 400.

    Returns:
        [frames, 64] float32, frames = 1 + (T - 400) // 160.

    Raises:
        InputError: see :func:`check_waveform`.
    """
    return _log_mel(check_waveform(waveform16k))


def _log_mel(waveform: np.ndarray) -> np.ndarray:
    x = waveform.astype(np.float64, copy=False)
    count = num_frames(x.size)
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(count, WINDOW_LENGTH), strides=(x.strides[0] * HOP_LENGTH, x.strides[0]), writeable=False
    )
    magnitude = np.abs(np.fft.rfft(frames * _window(), FFT_LENGTH))  # [frames, 257]
    return np.log(magnitude @ mel_filterbank() + LOG_OFFSET).astype(np.float32)


def frame_examples(log_mel_frames: np.ndarray) -> np.ndarray:
    """Cut [frames, 64] into non-overlapping 96-frame examples [N, 1, 96, 64] (tail dropped)."""
    count = log_mel_frames.shape[0] // EXAMPLE_FRAMES
    used = log_mel_frames[: count * EXAMPLE_FRAMES]
    return np.ascontiguousarray(used.reshape(count, 1, EXAMPLE_FRAMES, NUM_MEL_BANDS))


def log_mel_examples(waveform16k: np.ndarray) -> np.ndarray:
    """VGGish input examples of a 16 kHz mono waveform, numpy reference.

    Args:
        waveform16k: [T] float32 or float64, T >= 15600 (one 0.96 s example).

    Returns:
        [N, 1, 96, 64] float32, N = num_examples(T) (3 for a 3 s clip).
    """
    x = check_waveform(waveform16k, min_samples=MIN_SAMPLES_EXAMPLE)
    return frame_examples(_log_mel(x))
