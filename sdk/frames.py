"""Visual input: any picture -> RGB uint8 [H, W, 3] -> the normalised [3, 224, 224] of docs/method.md, "Inputs".

    frame = load_frame("street.jpg")              # path, binary file object, PIL image or numpy array
    x = frame_tensor(frame, transform="stretch")  # torch.float32 [3, 224, 224]
    x, (height, width) = frame_input("street.jpg")  # the same values in numpy, a big JPEG decoded small

Pillow does all resizing (bicubic, as torchvision's PIL path does); no torchvision needed.

The frame transform turns a frame into the square S x S input (S = ``size``, 224):
"stretch" resizes the whole frame to S x S (the aspect ratio is not kept, nothing is cut
off); "centre_crop" resizes the shorter side to S and keeps the centre S x S square.
``canonical_transform`` checks a transform name; it still takes the old names, "sacl" (now
"stretch") and "sspl" (now "centre_crop"), named after the papers that test with them.

Pictures of more than ``max_pixels`` pixels (MAX_PIXELS, 120 million, by default) are refused
with an InputError naming the frame, from the file's header, before anything is decoded: a
389 KB PNG can declare 20000x20000 pixels (1.2 GB decoded). MAX_PIXELS passes a 108 MP phone
photo; Pillow itself warns above 89.5 million pixels and refuses above 179 million
(``PIL.Image.MAX_IMAGE_PIXELS``): avsdk's limit replaces that check for the files it opens.
``max_pixels=None`` (no limit), or a limit above twice Pillow's, opens what Pillow would refuse:
Pillow's limit is lifted, process-wide, for the moment of that one open (a lock serialises them).
"""
from __future__ import annotations

import numbers
import os
import re
import threading
import warnings

import numpy as np

from .errors import InputError, bad_input, renamed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the frame transforms: "stretch" (whole frame to S x S), "centre_crop" (centre square to S x S)
TRANSFORMS = ("stretch", "centre_crop")
#: the names the transforms had before, after the papers that test with them (SACL, SSPL)
_OLD_TRANSFORMS = {"sacl": "stretch", "sspl": "centre_crop"}

#: the default limit on a frame's pixels (width x height); see the module docstring
MAX_PIXELS = 120_000_000
#: frame_input decodes a JPEG file at 1/2, 1/4 or 1/8 scale while it keeps at least this many
#: times the network's input side on each side (the resize to it then still antialiases)
DRAFT_MARGIN = 2


def canonical_transform(value, argument: str = "transform", *, stored: bool = False,
                        stacklevel: int = 2) -> str:
    """The frame transform ``value`` by its name in TRANSFORMS.

    An old name ("sacl", "sspl") gives the new one ("stretch", "centre_crop"): silently when
    ``stored`` (a value read from a file written before the rename: a checkpoint's meta, a
    manifest), else with a DeprecationWarning naming the new value, attributed as
    ``warnings.warn(..., stacklevel=stacklevel)`` called by the caller would attribute it.

    Raises:
        InputError: naming ``argument``, for anything else.
    """
    if isinstance(value, str):
        if value in TRANSFORMS:
            return value
        new = _OLD_TRANSFORMS.get(value)
        if new is not None:
            if not stored:
                warnings.warn(f"{argument} {value!r} is deprecated: use {new!r}, the same transform by its new "
                              "name", DeprecationWarning, stacklevel=stacklevel + 1)
            return new
    raise bad_input(argument, "'stretch' or 'centre_crop'", value)


def load_frame(source, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Read a frame as RGB uint8.

    Args:
        source: a path (str or PathLike) or a binary file object (an open file, io.BytesIO),
            either with its EXIF orientation applied; a PIL image in any mode (RGB, RGBA, L, P,
            I;16, I, F, CMYK, ...; I and F on Pillow's 0..255 scale); or a numpy array [H, W],
            [H, W, 1], [H, W, 3] or [H, W, 4] that is uint8 or float in [0, 1] (alpha is
            dropped, grey is repeated to 3 channels).
        max_pixels: the most pixels (width x height) accepted; None for no limit.

    Returns:
        [H, W, 3] uint8 (a new array, never a view of the caller's).

    Raises:
        InputError: missing or unreadable file, zero-size image, more than ``max_pixels``
            pixels, wrong rank or channel count, floats outside [0, 1] or non-finite, an
            unsupported dtype or type.
    """
    from PIL import Image

    max_pixels = check_max_pixels(max_pixels)
    if _is_file(source):
        return _from_pil(_open(source, max_pixels)[0], "source")
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, max_pixels, f"a {source.width}x{source.height} PIL image")
        return _from_pil(source, "source")
    if isinstance(source, np.ndarray):
        if source.ndim in (2, 3):
            height, width = source.shape[:2]
            _check_pixels(width, height, max_pixels, f"an array of shape {source.shape}")
        return _from_array(source)
    raise bad_input("source", "a path, a PIL image or a numpy array [H, W, 3], or a binary file object", source)


def frame_tensor(frame, transform: str = "stretch", size: int = 224, max_pixels: int | None = MAX_PIXELS):
    """ImageNet-normalised test-time input of the visual encoder.

    Args:
        frame: anything :func:`load_frame` accepts.
        transform: "stretch": resize the whole frame to (size, size), bicubic, no crop (the
            aspect ratio is not kept); "centre_crop": resize the shorter side to ``size``
            (bicubic), then keep the centre size x size square.
        size: output side in pixels.
        max_pixels: see :func:`load_frame`.

    Returns:
        torch.float32 [3, size, size].
    """
    import torch

    transform = _check_transform(transform, size)
    with renamed({"source": "frame"}):  # the reader's argument is "source", ours "frame"
        pixels = load_frame(frame, max_pixels)
    return torch.from_numpy(_normalised(pixels, transform, size))


def frame_input(frame, transform: str = "stretch", size: int = 224, max_pixels: int | None = MAX_PIXELS):
    """The network's input of a frame, in numpy, and the frame's size, decoding no more than it needs.

    A JPEG file (its format allows it: libjpeg's DCT scaling, PIL's ``Image.draft``) is
    decoded at the smallest of 1/2, 1/4 and 1/8 of its size that keeps ``DRAFT_MARGIN`` times
    ``size`` pixels on each side: a 12 MP photo at 1000x750 instead of 4000x3000. Its tensor
    then differs from :func:`frame_tensor`'s of the full decode by a grey level or so on
    average (a few where the picture has pixel-level detail); other files, PIL images and
    arrays give exactly :func:`frame_tensor`'s.

    Args:
        frame, transform, size, max_pixels: as :func:`frame_tensor`.

    Returns:
        (numpy float32 [3, size, size], the values of :func:`frame_tensor`, and (height, width)
        of the frame as :func:`load_frame` reads it, EXIF orientation applied).
    """
    transform = _check_transform(transform, size)
    max_pixels = check_max_pixels(max_pixels)
    with renamed({"source": "frame"}):  # the readers' argument is "source", ours "frame"
        if _is_file(frame):
            margin = DRAFT_MARGIN * size
            image, frame_size = _open(frame, max_pixels, draft=(margin, margin))
            return _normalised(_from_pil(image, "source"), transform, size), frame_size
        pixels = load_frame(frame, max_pixels)
    return _normalised(pixels, transform, size), pixels.shape[:2]


def _is_file(source) -> bool:
    """A path or a binary file object (what Image.open takes), as opposed to pixels."""
    return isinstance(source, (str, os.PathLike)) or hasattr(source, "read")


def check_max_pixels(max_pixels) -> int | None:
    """``max_pixels`` as an int, or None; InputError naming ``max_pixels`` unless it is a
    positive int or None."""
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or max_pixels < 1:
        raise bad_input("max_pixels", "a positive int (pixels, width x height), or None for no limit", max_pixels)
    return int(max_pixels)


def _check_transform(transform, size) -> str:
    """The canonical transform (warnings attributed to the caller of frame_tensor /
    frame_input); InputError naming ``transform`` or ``size``."""
    transform = canonical_transform(transform, stacklevel=3)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise bad_input("size", "a positive int", size)
    return transform


def _normalised(pixels: np.ndarray, transform: str, size: int) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> the normalised float32 [3, size, size] (C-contiguous)."""
    from PIL import Image

    image = Image.fromarray(pixels)
    if transform == "stretch":
        image = image.resize((size, size), Image.BICUBIC)
    else:
        image = resize_shorter_side(image, size)
        image = crop_centre(image, size)
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # [size, size, 3]
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def resize_shorter_side(image, size: int):
    """torchvision's Resize(int): the shorter side becomes ``size``, the longer one keeps the
    aspect ratio, truncated (``int(size * long / short)``)."""
    from PIL import Image

    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    return image if new == (width, height) else image.resize(new, Image.BICUBIC)


def crop_centre(image, size: int):
    """torchvision's CenterCrop for an image at least ``size`` on each side."""
    width, height = image.size
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise _too_many_pixels(max_pixels, f"{what} ({width}x{height}, {width * height:,} pixels)")


def _too_many_pixels(max_pixels: int, received: str) -> InputError:
    return bad_input("source", f"an image of at most {max_pixels:,} pixels (the max_pixels limit)", received,
                     described=True)


_PILLOW_LIMIT = threading.Lock()  # serialises the opens that lift Pillow's own limit


def _open_header(path, max_pixels: int | None):
    """Image.open (the header only) of a path or binary file object with avsdk's pixel limit in
    place of Pillow's decompression-bomb check; the caller closes the image."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow's warning above 89.5 MP: max_pixels decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:  # above twice Pillow's limit; its message has the count
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
        if max_pixels is not None and (pixels is None or pixels > max_pixels):
            count = f"{pixels:,} pixels" if pixels else "more pixels than Pillow opens"
            raise _too_many_pixels(max_pixels, f"{path!r} ({count})") from None
        with _PILLOW_LIMIT:  # the caller allows more than Pillow does: lift its limit for this open
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    try:
        _check_pixels(image.width, image.height, max_pixels, repr(path))
    except InputError:
        image.close()
        raise
    return image


def _oriented_size(image) -> tuple[int, int]:
    """(height, width) of ``image`` once ImageOps.exif_transpose has applied its orientation."""
    orientation = image.getexif().get(0x0112)  # ExifTags.Base.Orientation
    width, height = image.size
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _open(path, max_pixels: int | None, draft: tuple[int, int] | None = None):
    """(the image at ``path``, or in a binary file object (read from its start, as Pillow
    does), loaded, its EXIF orientation applied; its (height, width)).

    ``draft``: decode a JPEG at the smallest of 1/2, 1/4, 1/8 scale that keeps at least
    these (width, height); the size returned is the full one all the same."""
    from PIL import ImageOps, UnidentifiedImageError

    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise bad_input("source", "an existing image file", f"{path!r} (no such file)", described=True)
    try:
        with _open_header(path, max_pixels) as image:
            size = _oriented_size(image)
            if draft is not None:
                image.draft(image.mode, draft)  # no-op for formats other than JPEG
            image.load()
            # as viewers show it: a camera's EXIF orientation (a portrait stored sideways) applied
            return ImageOps.exif_transpose(image), size
    except InputError:
        raise
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
    array = np.asarray(array)  # a subclass (np.matrix) as a plain array
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
