"""One preprocessing for every caller: (frame, audio, sample rate) -> the model's inputs, in numpy.

    prep = Preprocessing(transform="stretch", image_size=384, audio="waveform", sample_rate=22050)
    x = model_inputs("frame.jpg", "clip.wav", preprocessing=prep)
    x.frame          # float32 [3, 384, 384], ImageNet-normalised (docs/method.md, "Inputs")
    x.audio          # float32 [66150] (waveform) or [N, 1, 96, 64] (VGGish log-mel examples)
    x.feed()         # {"frame": [1, 3, S, S], "waveform": [1, T]}: an ONNX Runtime / TensorRT feed

``Preprocessing`` is the description every model file carries (an exported graph's manifest,
avsdk.manifest; a Localizer's ``preprocessing``). The Localizer, the evaluation, the training
data's audio and the INT8 calibration all go through this module, so a model sees the same
numbers in training, in evaluation, in calibration and on a device. It needs numpy, Pillow and
soxr, never torch: a device that runs an ONNX or TensorRT model does not install PyTorch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .audio_input import audio_input
from .errors import bad_input, renamed
from .frames import MAX_PIXELS, frame_input
from .manifest import Preprocessing

__all__ = ["ModelInputs", "Preprocessing", "audio_array", "model_inputs"]


@dataclass
class ModelInputs:
    """One (frame, sound) pair as the model takes it.

    Attributes:
        frame: float32 [3, S, S].
        audio: float32, the graph's audio input for one clip (AudioSpec.item_shape).
        size: (height, width) of the frame as read (EXIF orientation applied).
        window: (start, end), the seconds of the sound that were heard.
        clip: the heard window, mono 16 kHz, not rescaled (its level is the visibility cue).
        audio_kind: the graph's audio input name, "log_mel" or "waveform".
    """

    frame: np.ndarray
    audio: np.ndarray
    size: tuple[int, int]
    window: tuple[float, float]
    clip: np.ndarray
    audio_kind: str = "log_mel"

    def level_db(self) -> float:
        """The heard window's level in dBFS (avsdk.visibility.level_db), the visibility cue."""
        from .visibility import level_db

        return level_db(self.clip)

    def feed(self) -> dict:
        """{graph input name: array with a batch axis of 1}, C-contiguous float32."""
        return {"frame": np.ascontiguousarray(self.frame[None]),
                self.audio_kind: np.ascontiguousarray(self.audio[None])}


def model_inputs(frame, audio, sample_rate: int | None = None, preprocessing: Preprocessing = Preprocessing(),
                 start: float | None = None, frontend: str = "auto",
                 max_pixels: int | None = MAX_PIXELS) -> ModelInputs:
    """The model's inputs of one frame and the sound around it.

    Args:
        frame: image path or binary file object, PIL image, or array [H, W, 3] (uint8, or
            float in [0, 1]); a big JPEG is decoded at a reduced size (avsdk.frames.frame_input).
        audio: sound file path or binary file object, or a waveform array [T] / [T, channels].
        sample_rate: Hz; required for an array, not allowed with a file.
        preprocessing: the model's (transform, image size, audio input, clip length).
        start: seconds into the sound where the heard window begins (None: the centre).
        frontend: the log-mel implementation ("auto", "compiled", "numpy").
        max_pixels: frames of more pixels are refused (None: no limit).

    Raises:
        InputError: naming ``frame``, ``audio``, ``sample_rate`` or ``start``.
    """
    with renamed({"source": "frame"}):  # the frame readers' own argument is "source"
        pixels, size = frame_input(frame, preprocessing.transform, preprocessing.image_size, max_pixels)
    heard, clip, window = audio_array(audio, sample_rate, preprocessing, start, frontend)
    return ModelInputs(pixels, heard, size, window, clip, preprocessing.audio)


def audio_array(audio, sample_rate: int | None = None, preprocessing: Preprocessing = Preprocessing(),
                start: float | None = None, frontend: str = "auto"
                ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(the graph's audio input for one clip, the heard 16 kHz window, its (start, end) in
    seconds) of a sound file or array; arguments as :func:`model_inputs`."""
    from .audio import SAMPLE_RATE, heard_window, load_audio

    if isinstance(audio, (str, os.PathLike)) or hasattr(audio, "read"):  # a file, or file object
        if sample_rate is not None:
            raise bad_input("sample_rate", "None when audio is a file (the file gives its rate)", sample_rate)
        with renamed({"source": "audio"}):
            audio, sample_rate = load_audio(audio)
    else:
        expected = "a sound file path or binary file object, or a waveform array [T] / [T, channels]"
        if isinstance(audio, (bytes, bytearray, memoryview)):
            raise bad_input("audio", expected, f"{type(audio).__name__} of length {len(audio)} (an encoded "
                            "file in memory? pass io.BytesIO(data))", described=True)
        if not (isinstance(audio, (np.ndarray, list, tuple)) or hasattr(audio, "__array__")
                or hasattr(audio, "__array_interface__")):
            raise bad_input("audio", expected, audio)
        if sample_rate is None:
            raise bad_input("sample_rate", "the rate in Hz of the audio array (required for arrays)", None)
        audio = _as_array(audio, "audio")
    # cut once, at 16 kHz: a clip of exactly clip_seconds is its own centre for audio_input and the level
    clip_seconds = preprocessing.clip_seconds
    clip, window = heard_window(audio, sample_rate, clip_seconds, start)
    heard = audio_input(clip, SAMPLE_RATE, preprocessing.audio_spec(), clip_seconds, frontend)
    return heard, clip, window


def _as_array(value, argument: str) -> np.ndarray:
    """np.asarray of an array-like (a torch tensor on any device too, without importing torch);
    InputError naming ``argument`` for what numpy cannot read as one array (a ragged list)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise bad_input(argument, "an array of numbers", f"{type(value).__name__} that is not one array "
                        f"({str(exc).splitlines()[0][:100]})", described=True) from None
