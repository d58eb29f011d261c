"""Audio views for training: what real recordings of one class differ by.

A recording of a dog at another time, place and distance differs from the training clip in
timing, pitch and speed, background noise and other sounds mixed in. The frozen SoundNet
features are cached per clip and per view (fast mode), so each clip gets a fixed pool of
views: view 0 is the clip as it is, the others draw, independently,

    a circular time shift              (where in the window the events fall)
    speed and pitch by 0.85 - 1.15x    (resampled, then cut or tiled back to the window)
    a mix-in of another training clip  (p 0.5, 6 - 16 dB below: another source nearby)
    white, pink or brown noise         (p 0.7, SNR 5 - 30 dB: room and microphone noise)

Level needs no augmentation: the model's input is min-max rescaled (avsdk.audio.prepare_waveform).
"""
from __future__ import annotations

import numpy as np

NOISE_COLOURS = (0.0, 1.0, 2.0)  # spectral slope of the noise power: white, pink, brown


def coloured_noise(length: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise [length] whose power falls as 1 / f**slope."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / f ** (slope / 2.0), n=length)
    return noise / (np.sqrt(np.mean(noise * noise)) + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) + 1e-12


def _fit(x: np.ndarray, length: int) -> np.ndarray:
    return x[:length] if len(x) >= length else np.tile(x, length // len(x) + 1)[:length]


def audio_view(clip: np.ndarray, others: list[np.ndarray], rng: np.random.Generator,
               rate: int = 16000) -> np.ndarray:
    """One augmented view of ``clip`` [T] (16 kHz mono); ``others`` are clips it may be mixed
    with (other training clips). Returns float64 [T]."""
    length = len(clip)
    x = np.roll(np.asarray(clip, dtype=np.float64), int(rng.integers(length)))
    speed = float(rng.uniform(0.85, 1.15))
    if abs(speed - 1.0) > 1e-3:
        import soxr

        x = _fit(soxr.resample(x, rate, rate / speed), length)  # played faster: higher and shorter
    if others and rng.random() < 0.5:
        other = _fit(np.asarray(others[int(rng.integers(len(others)))], dtype=np.float64), length)
        x = x + other * (_rms(x) / _rms(other)) * 10.0 ** (-rng.uniform(6.0, 16.0) / 20.0)
    if rng.random() < 0.7:
        noise = coloured_noise(length, NOISE_COLOURS[int(rng.integers(3))], rng)
        x = x + noise * _rms(x) * 10.0 ** (-rng.uniform(5.0, 30.0) / 20.0)
    return x
