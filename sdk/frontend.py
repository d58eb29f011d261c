"""The audio frontend avsdk runs: compiled C++ (avsdk._frontend) when built, numpy otherwise.

    examples = audio_to_examples(audio, sample_rate)        # [3, 1, 96, 64] for a 3 s clip
    examples = log_mel_examples(waveform16k, implementation="numpy")
    active_implementation()                                 # "compiled" or "numpy"

Both implementations compute the log-mel of docs/method.md, "Inputs", and agree within 1e-6
(tests/test_frontend_compiled.py); the numpy one (avsdk.melspec) is the reference. The choice
is made in one place, _resolve().

``implementation=`` was called ``backend=`` and ``active_implementation`` ``active_backend``
before; the old names still work for one release, with a DeprecationWarning (``BACKENDS`` too).
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from . import melspec
from .audio import centre_or_tile, clip_samples, min_max_rescale, to_mono_16k
from .errors import InputError, MissingDependencyError, bad_input, renamed_keyword

IMPLEMENTATIONS = ("auto", "compiled", "numpy")
# the old names, kept for one release: of the functions' keyword and of this module's names
_implementation_keyword = renamed_keyword("backend", "implementation")
_OLD_NAMES = {"active_backend": "active_implementation", "BACKENDS": "IMPLEMENTATIONS"}


def __getattr__(name: str):
    new = _OLD_NAMES.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{__name__}.{name} is deprecated, use {new}", DeprecationWarning, stacklevel=2)
    return globals()[new]


@lru_cache(maxsize=1)
def _import_compiled():
    """(avsdk._frontend, None), or (None, why it is not in use): not built, or built but not
    loading (built for another Python, a missing symbol)."""
    try:
        from . import _frontend
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}._frontend":
            return None, "avsdk._frontend is not built"
        return None, f"avsdk._frontend does not load: {exc}"
    except ImportError as exc:
        return None, f"avsdk._frontend does not load: {exc}"
    return _frontend, None


def _compiled_module():
    return _import_compiled()[0]


def compiled_status() -> str:
    """Which frontend ``implementation="auto"`` uses and why: "compiled (<FFT and instruction
    set>)", or "numpy (<why the compiled one is not in use>)"."""
    module, why = _import_compiled()
    return f"numpy ({why})" if module is None else f"compiled ({module.implementation()})"


def active_implementation() -> str:
    """What ``implementation="auto"`` runs here: "compiled" if avsdk._frontend is built, else
    "numpy"."""
    return "compiled" if _compiled_module() is not None else "numpy"


def compiled_implementation() -> str | None:
    """FFT and instruction set of the compiled frontend on this CPU, or None when not built."""
    module = _compiled_module()
    return None if module is None else module.implementation()


def _resolve(implementation: str):
    """The compiled module for this call, or None for numpy. The only place that decides."""
    if implementation not in IMPLEMENTATIONS:
        raise bad_input("implementation", f"one of {IMPLEMENTATIONS}", implementation)
    if implementation == "numpy":
        return None
    module = _compiled_module()
    if module is None and implementation == "compiled":
        raise MissingDependencyError(
            "implementation='compiled': avsdk._frontend is not built in this install; rebuild with a "
            "C++17 compiler and pybind11 (`pip install -e . --no-build-isolation`), or use "
            "implementation='numpy'"
        )
    return module


@_implementation_keyword
def log_mel_examples(waveform16k: np.ndarray, implementation: str = "auto") -> np.ndarray:
    """VGGish examples of a 16 kHz mono waveform.

    Args:
        waveform16k: [T] float32 or float64, T >= 15600 (one 0.96 s example), finite.
        implementation: "auto" (compiled when built), "compiled" or "numpy" (``backend=``,
            its old name, still works with a DeprecationWarning).

    Returns:
        [N, 1, 96, 64] float32, N = (1 + (T - 400) // 160) // 96 (3 for 3 s).

    Raises:
        InputError: wrong type, dtype or rank, too short, NaN or Inf.
        MissingDependencyError: implementation="compiled" without the extension.
    """
    module = _resolve(implementation)
    if module is None:
        return melspec.log_mel_examples(waveform16k)
    x = melspec.check_waveform(waveform16k, min_samples=melspec.MIN_SAMPLES_EXAMPLE, check_finite=False)
    return _call(module.log_mel_examples, "waveform16k", x)


@_implementation_keyword
def audio_to_examples(audio, sample_rate, clip_seconds=3.0, implementation: str = "auto") -> np.ndarray:
    """Any audio -> the network's log-mel input: mono, 16 kHz, 3 s clip, [-1, 1], VGGish frontend.

    Args:
        audio: [T] or [T, channels] samples (float or integer PCM), as avsdk.load_audio returns.
        sample_rate: rate of ``audio`` in Hz.
        clip_seconds: clip length (>= 0.975 s, one example).
        implementation: "auto", "compiled" or "numpy" (``backend=``, its old name, still works
            with a DeprecationWarning).

    Returns:
        [N, 1, 96, 64] float32 (N = 3 for 3 s).

    Raises:
        InputError: see avsdk.audio.prepare_waveform; an unknown implementation.
        MissingDependencyError: implementation="compiled" without the extension.
    """
    module = _resolve(implementation)
    length = clip_samples(clip_seconds)
    if length < melspec.MIN_SAMPLES_EXAMPLE:
        raise bad_input(
            "clip_seconds",
            f">= {melspec.MIN_SAMPLES_EXAMPLE / melspec.SAMPLE_RATE} s (one 96-frame example)",
            clip_seconds,
        )
    mono = to_mono_16k(audio, sample_rate, check_finite=module is None)
    if module is None:
        return melspec.log_mel_examples(min_max_rescale(centre_or_tile(mono, length)))
    return _call(module.clip_log_mel_examples, "audio", mono, length)


def _call(function, argument: str, *args):
    try:
        return function(*args)
    except ValueError as exc:  # the extension's InputError: re-raise as avsdk's, naming the argument
        message = str(exc).split(": ", 1)[-1]
        raise InputError(f"{argument}: {message}", argument) from None
