"""Errors raised at avsdk's public boundary.

Every error names the argument, what was expected and what was received, so that a user
never has to read a traceback from deep inside numpy or torch to learn what went wrong.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Mapping


class AvsdkError(Exception):
    """Base class of avsdk's own errors."""


class InputError(AvsdkError, ValueError):
    """A user-supplied value is not what the function accepts.

    ``argument`` names it when the error came from bad_input (command-line tools rename it
    to their flag, see avsdk.cli).
    """

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class CheckpointError(AvsdkError, ValueError):
    """A model file avsdk cannot use: weights that do not match the network they are loaded
    into or that hold NaN/Inf, settings saved with the model (a checkpoint's meta, a manifest)
    that are not valid, an ONNX graph whose inputs or outputs are not an avsdk model's, or
    maps that a loaded model returns and no model should (NaN, the wrong shape)."""


class MissingDependencyError(AvsdkError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def bad_input(argument: str, expected: str, received: Any, *, described: bool = False) -> InputError:
    """Build (not raise) an InputError: ``argument``: expected ..., received ...

    ``received`` is described (shape and dtype for arrays) unless ``described`` says it is
    already a description.
    """
    got = received if described else _describe(received)
    return InputError(f"{argument}: expected {expected}, received {got}", argument)


def renamed_keyword(old: str, new: str) -> Callable[[Callable], Callable]:
    """Decorator: the keyword ``old`` of the decorated function is its argument ``new``, by the
    name it had before (kept for one release).

    ``old=...`` is passed on as ``new=...`` with a DeprecationWarning naming ``new``, attributed
    to the caller; ``old`` given together with ``new`` (by keyword or position) is an InputError
    naming ``new``. The function's signature, seen by ``help`` and ``inspect``, is its own.
    """
    def decorate(function: Callable) -> Callable:
        position = list(inspect.signature(function).parameters).index(new)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                value = kwargs.pop(old)
                if new in kwargs or len(args) > position:
                    given = kwargs[new] if new in kwargs else args[position]
                    raise bad_input(new, f"{new}= alone ({old}= is its deprecated old name)",
                                    f"{new}={_describe(given)} and {old}={_describe(value)}",
                                    described=True)
                warnings.warn(f"{function.__name__}: {old}= is deprecated, use {new}=, its new "
                              f"name ({new}={value!r})", DeprecationWarning, stacklevel=2)
                kwargs[new] = value
            return function(*args, **kwargs)

        return wrapper

    return decorate


# How to get a dependency that no avsdk extra installs
INSTALL_HINTS = {
    "tensorrt": "TensorRT is not on PyPI for Jetson: it comes with JetPack (the apt package "
                "python3-libnvinfer); on an x86-64 GPU machine install NVIDIA's TensorRT for its "
                "CUDA version",
    "cuda.cudart": "pip install cuda-python, the release of this device's CUDA major version (JetPack 5, "
                   "CUDA 11.4: 'cuda-python==11.8.*'; JetPack 6: '==12.*'; JetPack 7: '==13.*')",
}


@contextmanager
def renamed(names: Mapping[str, str]):
    """Re-raise an InputError about an argument in ``names`` as one about the name the caller
    knows: a function's ``source`` becomes the ``frame`` or ``audio`` of the API that called
    it, a dataclass field the flag a user typed."""
    try:
        yield
    except InputError as exc:
        new = names.get(exc.argument)
        if new is None:
            raise
        raise InputError(new + str(exc)[len(exc.argument):], new) from None


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional dependency or raise MissingDependencyError saying how to install it:
    the pip extra, or for packages no extra can install (TensorRT), where they come from."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f" for {purpose}" if purpose else ""
        how = INSTALL_HINTS.get(module, f"pip install 'avsdk[{extra}]'")
        raise MissingDependencyError(f"{module} is needed{why} but is not installed: {how}") from exc
