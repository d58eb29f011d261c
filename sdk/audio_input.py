"""The audio a model's graph takes, from any sound: one function for every caller.

Two kinds of audio input exist, set by the model's audio encoder:

    "log_mel"   [N, 1, 96, 64]  VGGish log-mel examples (small CNN, VGGish; avsdk.frontend)
    "waveform"  [T]             the waveform itself at the encoder's rate (SoundNet: 22050 Hz)

Both start the same way (avsdk.audio.prepare_waveform): mono, 16 kHz, the centre ``clip_seconds``
(a shorter sound tiled), min-max rescaled to [-1, 1]. To hear another window, cut it first
(avsdk.audio.heard_window, as the Localizer does for its ``start``) and pass the 16 kHz clip.
A waveform input is then resampled to
its rate, so that what a model hears is band-limited the same way in training (the benchmark's
clips are 16 kHz) and on a device fed 44.1 kHz audio.

    x = audio_input(waveform, 44100, AudioSpec("waveform", 22050))   # [66150] float32
    AudioSpec("log_mel").item_shape(3.0)                              # (3, 1, 96, 64)

The Localizer, the evaluation, the training data and the INT8 calibration all call
``audio_input``; the graph input's name is the kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import bad_input

AUDIO_KINDS = ("log_mel", "waveform")
LOG_MEL_RATE = 16000


@dataclass(frozen=True)
class AudioSpec:
    """What the graph's audio input is: its kind and, for a waveform, its sample rate."""

    kind: str = "log_mel"
    sample_rate: int = LOG_MEL_RATE

    def __post_init__(self):
        if self.kind not in AUDIO_KINDS:
            raise bad_input("audio kind", f"one of {AUDIO_KINDS}", self.kind)
        if self.kind == "log_mel" and self.sample_rate != LOG_MEL_RATE:
            raise bad_input("sample_rate", f"{LOG_MEL_RATE} for log-mel input (VGGish)", self.sample_rate)
        if not isinstance(self.sample_rate, int) or self.sample_rate < 8000:
            raise bad_input("sample_rate", "an int >= 8000 (Hz)", self.sample_rate)

    def item_shape(self, clip_seconds: float = 3.0) -> tuple:
        """Shape of one clip's input (no batch axis)."""
        from .audio import clip_samples

        samples16k = clip_samples(clip_seconds)
        if self.kind == "log_mel":
            return (max(1, (1 + (samples16k - 400) // 160) // 96), 1, 96, 64)
        return (_resampled_length(samples16k, self.sample_rate),)


def _resampled_length(samples16k: int, rate: int) -> int:
    return int(round(samples16k * rate / LOG_MEL_RATE))


def audio_input(audio, sample_rate, spec: AudioSpec = AudioSpec(), clip_seconds: float = 3.0,
                frontend: str = "auto") -> np.ndarray:
    """Any audio -> one clip's graph input, float32 ``spec.item_shape(clip_seconds)``.

    Args:
        audio: [T] or [T, channels] samples (float, or integer PCM), as avsdk.load_audio returns.
        sample_rate: rate of ``audio`` in Hz.
        spec: the model's AudioSpec.
        clip_seconds: clip length.
        frontend: the log-mel implementation ("auto", "compiled", "numpy"; log_mel only), see
            avsdk.frontend.
    Raises:
        InputError: see avsdk.audio.prepare_waveform.
    """
    if spec.kind == "log_mel":
        from .frontend import audio_to_examples

        return np.asarray(audio_to_examples(audio, sample_rate, clip_seconds=clip_seconds,
                                            implementation=frontend),
                          dtype=np.float32)
    from .audio import prepare_waveform

    x = prepare_waveform(audio, sample_rate, clip_seconds)
    if spec.sample_rate != LOG_MEL_RATE:
        import soxr

        x = soxr.resample(x, LOG_MEL_RATE, spec.sample_rate, quality="HQ")
        length = spec.item_shape(clip_seconds)[0]  # soxr may give one sample more or less
        x = x[:length] if len(x) >= length else np.pad(x, (0, length - len(x)))
    return np.ascontiguousarray(x, dtype=np.float32)
