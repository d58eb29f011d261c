"""avsdk: where in the picture does the sound come from?

    from avsdk import Localizer
    loc = Localizer.load("model.onnx")           # or a .pt checkpoint, or a .engine
    result = loc("frame.jpg", "clip.wav")       # heatmap, box, peak, score
    result.save_overlay("overlay.png", "frame.jpg")  # drawn over the frame

Importing avsdk loads neither Triton nor any training dependency; heavy modules are
imported on first use.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it; resolved lazily (PEP 562) so that
# `import avsdk` stays cheap and works on a device without optional packages.
_LAZY = {
    "Localizer": "avsdk.localizer",
    "LocalizationResult": "avsdk.localizer",
    "load_audio": "avsdk.audio",
    "prepare_waveform": "avsdk.audio",
    "log_mel_examples": "avsdk.frontend",
    "load_frame": "avsdk.frames",
    "frame_tensor": "avsdk.frames",
    "model_inputs": "avsdk.preprocess",
    "Preprocessing": "avsdk.preprocess",
    "AvsdkError": "avsdk.errors",
    "InputError": "avsdk.errors",
    "CheckpointError": "avsdk.errors",
    "MissingDependencyError": "avsdk.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'avsdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
