"""Fused Triton kernels for the training hot path, each with a pure-PyTorch twin.

    av_similarity(visual, audio)                          cosine map, attention, pooled feature
    masked_infonce(visual_hat, mask, audio_hat, keep, tau)  SACL masked InfoNCE

``kernel="auto"`` runs Triton exactly when every tensor is on CUDA, Triton imports, the dtypes
are ones the kernels take, no ONNX export is tracing, and the kernel was measured faster than
the twin there (``masked_infonce``: half precision only, see ``infonce_triton_pays``);
otherwise the reference in ``reference.py`` runs (the CPU path and the export path).
``kernel="triton"`` forces the kernels (on CPU tensors too, under ``TRITON_INTERPRET=1``);
``kernel="torch"`` forces the twin.
Triton is imported only when a kernel is about to run: ``import avsdk.kernels`` never pulls it in.
The kernels' gradients are first-order: differentiating them again (``create_graph=True``, then
a gradient of the gradient) raises, and ``kernel="torch"`` serves that. NaN inputs give NaN
results as in the twins.
``kernel=`` was called ``backend=`` before; the old keyword still works for one release, with a
DeprecationWarning (and ``BACKENDS`` for ``KERNELS``).
"""
from __future__ import annotations

import functools
import importlib
import math
import os
import warnings
from numbers import Real

import torch

from ..errors import bad_input, renamed_keyword, require
from . import reference

__all__ = ["av_similarity", "masked_infonce", "infonce_triton_pays", "reference"]

KERNELS = ("auto", "triton", "torch")
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FLOAT32_MAX = torch.finfo(torch.float32).max
MAX_C = 16384  # av_similarity holds every channel of a block of positions in registers
HALF_DTYPES = (torch.float16, torch.bfloat16)
# eager masked_infonce's peak memory per element of its [B, B, HW] products, float32:
# 1960 MB at B = 1024, HW = 196 (benchmarks/results/kernels_h100.md)
EAGER_INFONCE_BYTES = 10
# the old name of the ``kernel`` keyword, kept for one release
_kernel_keyword = renamed_keyword("backend", "kernel")


def __getattr__(name: str):
    if name == "BACKENDS":  # KERNELS by its old name, kept for one release
        warnings.warn(f"{__name__}.BACKENDS is deprecated, use KERNELS", DeprecationWarning,
                      stacklevel=2)
        return KERNELS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def infonce_triton_pays(dtype: torch.dtype, B: int, HW: int, device_bytes: int) -> bool:
    """Whether ``kernel="auto"`` runs the fused masked_infonce on a CUDA device: never where a
    checked-in measurement shows it slower than the twin, unless memory demands it.

    From benchmarks/results/kernels_h100.md (H100, forward + backward, C = 512, HW = 196): in
    bfloat16 the kernel beat eager at B = 64, 256 and 1024 (0.59-0.74 vs 1.73 ms at B = 256);
    float16 takes the same tensor-core path. In float32 it was slower (1.80 vs 1.62 ms at
    B = 256, 26.8 vs 17.0 ms at B = 1024) and only needs less memory (435 vs 1960 MB at
    B = 1024), so float32 runs fused only where eager's products cannot fit on the device.

    Args:
        dtype: the dtype the kernel's dots run in: a half dtype only when visual_hat and
            audio_hat share it, else float32.
        B, HW: batch size and positions per map.
        device_bytes: the device's total memory.
    """
    return dtype in HALF_DTYPES or EAGER_INFONCE_BYTES * B * B * HW > device_bytes


@functools.lru_cache(maxsize=1)
def _triton_importable() -> bool:
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=None)
def _device_bytes(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).total_memory


def _use_triton(kernel: str, tensors, kernel_takes: bool, why_not: str,
                pays=lambda: True) -> bool:
    """The one dispatch predicate; with kernel="triton" it raises instead of answering False.

    ``pays()``, asked last and only on CUDA, is the op's rule from the measurements.
    """
    if kernel not in KERNELS:
        raise bad_input("kernel", " or ".join(repr(k) for k in KERNELS), kernel)
    if kernel == "torch":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if kernel == "auto":
        return (on_cuda and kernel_takes and _triton_importable()
                and not torch.onnx.is_in_onnx_export() and pays())
    if not kernel_takes:
        raise bad_input("kernel", f"'torch' or 'auto' for these inputs ({why_not})", "'triton'",
                        described=True)
    on_cpu = all(t.device.type == "cpu" for t in tensors)
    if not (on_cuda or (on_cpu and _interpreting())):
        raise bad_input("kernel", "'triton' only with CUDA tensors, or CPU tensors under "
                        "TRITON_INTERPRET=1 (set before avsdk.kernels runs a kernel)",
                        f"'triton' with tensors on {tensors[0].device}", described=True)
    require("triton", "train", "the fused kernels")
    return True


def _check_tensor(name: str, value, ndims, float_only: bool = True) -> None:
    if not isinstance(value, torch.Tensor):
        raise bad_input(name, "a torch.Tensor", value)
    if value.dim() not in ndims:
        shapes = " or ".join(f"{n}-D" for n in ndims)
        raise bad_input(name, f"a {shapes} tensor", value)
    if float_only and not value.is_floating_point():
        raise bad_input(name, "a floating-point tensor", value)
    if value.numel() == 0:
        raise bad_input(name, "a non-empty tensor", value)


def _check_same_device(**tensors) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    first_name, first = next(iter(devices.items()))
    for name, dev in devices.items():
        if dev != first:
            raise bad_input(name, f"a tensor on {first} (the device of {first_name})",
                            f"a tensor on {dev}", described=True)


@_kernel_keyword
def av_similarity(visual: torch.Tensor, audio: torch.Tensor, kernel: str = "auto"):
    """Cosine similarity map, min-max attention and attention-pooled feature.

    docs/method.md, "Similarity map".

    Args:
        visual: visual feature map, [B, C, H, W] or [B, C, HW] (not normalised).
        audio: audio vectors, [B, C] (not normalised).
        kernel: "auto", "triton" or "torch" (see the module docstring; ``backend=``, its old
            name, still works with a DeprecationWarning).

    Returns:
        (S, A, f): S and A [B, H, W] or [B, HW], f [B, C]; see ``reference.av_similarity``.

    Raises:
        InputError: wrong types, ranks, shapes, devices, or a kernel that cannot run them.
    """
    _check_tensor("visual", visual, (3, 4))
    _check_tensor("audio", audio, (2,))
    B, C = visual.shape[:2]
    if tuple(audio.shape) != (B, C):
        raise bad_input("audio", f"shape ({B}, {C}) to match visual's [B, C]", audio)
    _check_same_device(visual=visual, audio=audio)
    takes = visual.dtype in KERNEL_DTYPES and audio.dtype in KERNEL_DTYPES and C <= MAX_C
    why = f"dtypes in {KERNEL_DTYPES} and C <= {MAX_C}"
    if not _use_triton(kernel, (visual, audio), takes, why):
        return reference.av_similarity(visual, audio)
    from .fused_similarity import AVSimilarity

    sim, att, pooled = AVSimilarity.apply(visual.flatten(2), audio)
    spatial = visual.shape[2:]
    return sim.reshape(B, *spatial), att.reshape(B, *spatial), pooled


@_kernel_keyword
def masked_infonce(visual_hat: torch.Tensor, mask: torch.Tensor, audio_hat: torch.Tensor,
                   keep: torch.Tensor, tau: float = 0.005, kernel: str = "auto") -> torch.Tensor:
    """SACL masked InfoNCE for one view (docs/method.md, "SACL loss", step 3), a float32 scalar.

    Args:
        visual_hat: L2-normalised visual maps, [B, C, HW].
        mask: positive-region masks, [B, HW] (bool or float; masked positions score 0).
        audio_hat: L2-normalised audio vectors, [B, C].
        keep: [B, B] bool, True where pair (i, j) keeps its own logit (see the reference).
        tau: temperature, > 0 (0.005 in SACL).
        kernel: "auto", "triton" or "torch" (see the module docstring); on CUDA "auto" runs
            the kernel for float16 / bfloat16 inputs and the twin for float32, where the
            kernel was measured slower, unless eager's products could not fit on the device
            (``infonce_triton_pays``). ``backend=``, its old name, still works with a
            DeprecationWarning.

    Returns:
        The loss, a float32 scalar; gradients flow to visual_hat and audio_hat only.

    Raises:
        InputError: wrong types, ranks, shapes, devices, tau, or a kernel that cannot run them.
    """
    _check_tensor("visual_hat", visual_hat, (3,))
    B, C, HW = visual_hat.shape
    _check_tensor("mask", mask, (2,), float_only=False)
    _check_tensor("audio_hat", audio_hat, (2,))
    _check_tensor("keep", keep, (2,), float_only=False)
    for name, value, shape in (("mask", mask, (B, HW)), ("audio_hat", audio_hat, (B, C)),
                               ("keep", keep, (B, B))):
        if tuple(value.shape) != shape:
            raise bad_input(name, f"shape {shape} to match visual_hat [B, C, HW] = {(B, C, HW)}",
                            value)
    for name, value in (("mask", mask), ("keep", keep)):
        if value.is_complex():
            raise bad_input(name, "a real (bool or float) tensor", value)
    if isinstance(tau, bool) or not isinstance(tau, Real) or not (0 < float(tau) < math.inf):
        raise bad_input("tau", "a finite number > 0", tau)
    if 1.0 / float(tau) > FLOAT32_MAX:  # the logits are float32: s / tau must stay finite
        raise bad_input("tau", f"a number >= 1 / {FLOAT32_MAX:.4g} (1 / tau finite in float32)",
                        tau)
    _check_same_device(visual_hat=visual_hat, mask=mask, audio_hat=audio_hat, keep=keep)
    takes = visual_hat.dtype in KERNEL_DTYPES and audio_hat.dtype in KERNEL_DTYPES
    why = f"dtypes in {KERNEL_DTYPES}"
    dots = torch.promote_types(visual_hat.dtype, audio_hat.dtype)  # mixed dtypes: float32

    def pays():
        return infonce_triton_pays(dots, B, HW, _device_bytes(visual_hat.device))

    if not _use_triton(kernel, (visual_hat, mask, audio_hat, keep), takes, why, pays):
        return reference.masked_infonce(visual_hat, mask, audio_hat, keep, float(tau))
    from .fused_infonce import MaskedInfoNCE

    return MaskedInfoNCE.apply(visual_hat, mask, audio_hat, keep, float(tau), None)
