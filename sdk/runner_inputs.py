"""Input checks shared by the ONNX Runtime and TensorRT runners (one contract, two backends)."""
from __future__ import annotations

import numpy as np

from avsdk.errors import bad_input


def as_batch(value, name: str, item_shape: tuple) -> np.ndarray:
    """``value`` ([B, *item_shape] or [*item_shape], tensor or array) as C-contiguous float32.

    ``item_shape`` may hold None for an axis of any size (the number of log-mel examples).

    Raises:
        InputError: wrong rank or shape, or values that are not finite.
    """
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().cpu().float().numpy()
    array = np.asarray(value)
    if array.ndim == len(item_shape):
        array = array[None]
    expected = "[B, " + ", ".join("N" if d is None else str(d) for d in item_shape) + "]"
    if array.ndim != len(item_shape) + 1 or array.shape[0] < 1 or any(
        want is not None and got != want for got, want in zip(array.shape[1:], item_shape)
    ):
        raise bad_input(name, f"an array of shape {expected}", array)
    if not np.issubdtype(array.dtype, np.floating):
        raise bad_input(name, "a floating-point array (normalised, not uint8 pixels)", array)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise bad_input(name, "finite values", "an array holding NaN or Inf", described=True)
    return array


def graph_inputs(frame, log_mel, image_size: int = 224, examples: int | None = None,
                 audio_name: str = "log_mel", audio_shape: tuple | None = None):
    """Check and convert (frame, audio) for a graph: ([B,3,S,S], [B,N,1,96,64]) float32, or
    for a waveform graph (``audio_name`` "waveform") [B, *audio_shape] as the second."""
    frame = as_batch(frame, "frame", (3, image_size, image_size))
    item = (examples, 1, 96, 64) if audio_name == "log_mel" else tuple(audio_shape or (None,))
    log_mel = as_batch(log_mel, audio_name, item)
    if frame.shape[0] != log_mel.shape[0]:
        raise bad_input(
            audio_name, f"the batch size of frame ({frame.shape[0]})", f"batch {log_mel.shape[0]}",
            described=True,
        )
    return frame, log_mel
