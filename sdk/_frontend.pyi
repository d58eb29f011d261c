"""Type stub of avsdk._frontend, the compiled VGGish frontend (C++ in bindings/).

Use it through avsdk.frontend, which picks it when built. Every function takes a 1-D float32 or
float64 numpy array of 16 kHz mono samples (anything else raises ValueError; no silent casts)
and releases the GIL while it runs.
"""
import numpy as np
import numpy.typing as npt

SAMPLE_RATE: int
WINDOW_LENGTH: int
HOP_LENGTH: int
FFT_LENGTH: int
NUM_MEL_BANDS: int
EXAMPLE_FRAMES: int

class InputError(ValueError):
    """Too short, NaN or Inf input (raised by the C++ core)."""

Waveform = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def log_mel(waveform: Waveform) -> npt.NDArray[np.float32]:
    """[frames, 64] log-mel of [T >= 400] samples."""

def log_mel_examples(waveform: Waveform) -> npt.NDArray[np.float32]:
    """[N, 1, 96, 64] VGGish examples of [T >= 15600] samples."""

def prepare_clip(waveform: Waveform, clip_samples: int) -> npt.NDArray[np.float32]:
    """[clip_samples]: centre/tile to clip_samples, min-max rescale to [-1, 1]."""

def clip_log_mel_examples(waveform: Waveform, clip_samples: int) -> npt.NDArray[np.float32]:
    """prepare_clip then log_mel_examples: [N, 1, 96, 64]."""

def num_frames(num_samples: int) -> int: ...
def num_examples(num_samples: int) -> int: ...
def implementation() -> str:
    """Which FFT and instruction set run on this CPU, e.g. 'own 16x16 FFT (double), float32 mel/log, AVX-512'."""

def _available_kernels() -> list[str]: ...
def _log_mel_with_kernel(kernel: str, waveform: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
