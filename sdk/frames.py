"""Visual input: any picture -> RGB uint8 [H, W, 3] -> the normalised [3, 224, 224] of SPEC 1.

    frame = load_frame("street.jpg")              # path, PIL image or numpy array
    x = frame_tensor(frame, transform="sacl")     # torch.float32 [3, 224, 224]

Pillow does all resizing (bicubic, as torchvision's PIL path does); no torchvision needed.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import bad_input

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TRANSFORMS = ("sacl", "sspl")


def load_frame(source) -> np.ndarray:
    """Read a frame as RGB uint8.

    Args:
        source: a path (str or PathLike; its EXIF orientation is applied), a PIL image in any
            mode (RGB, RGBA, L, P, I;16, I, F, CMYK, ...; I and F on Pillow's 0..255 scale), or
            a numpy array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] that is uint8 or float in
            [0, 1] (alpha is dropped, grey is repeated to 3 channels).

    Returns:
        [H, W, 3] uint8 (a new array, never a view of the caller's).

    Raises:
        InputError: missing or unreadable file, zero-size image, wrong rank or channel count,
            floats outside [0, 1] or non-finite, an unsupported dtype or type.
    """
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):
        return _from_pil(_open(os.fspath(source)), "source")
    if isinstance(source, Image.Image):
        return _from_pil(source, "source")
    if isinstance(source, np.ndarray):
        return _from_array(source)
    raise bad_input("source", "a path, a PIL image or a numpy array [H, W, 3]", source)


def frame_tensor(frame, transform: str = "sacl", size: int = 224):
    """ImageNet-normalised test-time input of the visual encoder.

    Args:
        frame: anything :func:`load_frame` accepts.
        transform: "sacl": resize to (size, size), bicubic, no crop; "sspl": resize the shorter
            side to ``size`` (bicubic), then centre crop size x size.
        size: output side in pixels.

    Returns:
        torch.float32 [3, size, size].
    """
    import torch
    from PIL import Image

    if transform not in TRANSFORMS:
        raise bad_input("transform", f"one of {TRANSFORMS}", transform)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise bad_input("size", "a positive int", size)
    image = Image.fromarray(load_frame(frame))
    if transform == "sacl":
        image = image.resize((size, size), Image.BICUBIC)
    else:
        image = _resize_shorter_side(image, size)
        image = _centre_crop(image, size)
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # [size, size, 3]
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1)))


def _resize_shorter_side(image, size: int):
    """torchvision's Resize(int): the shorter side becomes ``size``, the longer one keeps the
    aspect ratio, truncated (``int(size * long / short)``)."""
    from PIL import Image

    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    return image if new == (width, height) else image.resize(new, Image.BICUBIC)


def _centre_crop(image, size: int):
    """torchvision's CenterCrop for an image at least ``size`` on each side."""
    width, height = image.size
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def _open(path: str):
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not os.path.exists(path):
        raise bad_input("source", "an existing image file", f"{path!r} (no such file)", described=True)
    try:
        with Image.open(path) as image:
            image.load()
            # as viewers show it: a camera's EXIF orientation (a portrait stored sideways) applied
            return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise bad_input("source", "an image file Pillow can read", f"{path!r} ({exc})", described=True) from exc


def _from_pil(image, argument: str) -> np.ndarray:
    width, height = image.size
    if width == 0 or height == 0:
        raise bad_input(argument, "an image of at least 1x1 pixels", f"a {width}x{height} image", described=True)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _from_array(_high_depth_to_unit(image))
    if image.mode in ("P", "PA"):  # via RGBA so a palette with transparency converts cleanly
        image = image.convert("RGBA")
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _high_depth_to_unit(image) -> np.ndarray:
    """High-depth grey images to [0, 1], by a fixed scale (no per-image stretching, so a dark
    frame stays dark). "I;16*": 0..65535. "I" and "F": 0..255, as Pillow reads them itself
    (``convert("L")``; ``convert("I")`` of an 8-bit image gives "I"), except an "I" image with
    values above 255, which is a 16-bit one (older Pillow opens 16-bit PNGs as "I"), or
    beyond, a 32-bit one."""
    pixels = np.asarray(image).astype(np.float64)
    top = 255.0
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "I" and pixels.size and pixels.max() > 255:
        top = 65535.0 if pixels.max() <= 65535 else float(np.iinfo(np.int32).max)
    return np.clip(pixels / top, 0.0, 1.0)


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        pass
    elif array.ndim != 2:
        raise bad_input("source", "an image array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]", array)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise bad_input("source", "an image of at least 1x1 pixels", array)
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise bad_input("source", "finite float pixels in [0, 1]", "an array holding NaN or Inf", described=True)
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise bad_input(
                "source", "float pixels in [0, 1] (or uint8 in [0, 255])", f"floats in [{low:g}, {high:g}]", described=True
            )
        pixels = np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise bad_input("source", "uint8 pixels or floats in [0, 1]", array)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.array(pixels, dtype=np.uint8, copy=True, order="C")
