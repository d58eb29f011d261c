"""Training views of a frame (docs/method.md, "Inputs"), with Pillow and torch only.

Both schemes draw two independent views of the same frame:

    SSPL: resize (shorter side 246, bicubic) -> random crop 224 -> random h-flip
    SACL: resize to (246, 246) bicubic -> random crop 224 -> random h-flip
          -> colour jitter (0.4, 0.4, 0.4, 0.1) with p 0.8 -> grayscale with p 0.2
          -> Gaussian blur (sigma in [0.1, 2]) with p 0.5

The geometric part (resize, crop, flip) is applied to the frame's pseudo-segmentation as
well, with nearest-neighbour resampling, so segment ids stay ids and follow the view.
The reference code resizes its label image with the bicubic filter too, which invents
in-between ids along segment borders; we use nearest on purpose (documented deviation).

Every random draw comes from a caller-owned ``numpy.random.Generator``, so a view is a
pure function of (frame, seed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from avsdk.errors import bad_input
from avsdk.frames import IMAGENET_MEAN, IMAGENET_STD

SCHEMES = ("sacl", "sspl")
CROP = 224
RESIZE = 246  # int(224 * 1.1), as both reference repositories
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue


@dataclass(frozen=True)
class ViewParams:
    """Everything random about one view; ``apply_view`` is deterministic given these."""

    top: int
    left: int
    flip: bool
    jitter: tuple | None = None  # (order[4], brightness, contrast, saturation, hue) or None
    grayscale: bool = False
    blur_sigma: float | None = None


def _resized_size(width: int, height: int, scheme: str, resize: int) -> tuple[int, int]:
    """(width, height) after the scheme's resize step."""
    if scheme == "sacl":
        return resize, resize
    # torchvision Resize(int): shorter side to `resize`, the other keeps the aspect ratio
    if width <= height:
        return resize, int(resize * height / width)
    return int(resize * width / height), resize


def sample_view(
    rng: np.random.Generator, size: tuple[int, int], scheme: str = "sacl", resize: int = RESIZE, crop: int = CROP
) -> ViewParams:
    """Draw the random parameters of one training view.

    Args:
        rng: numpy Generator owned by the caller (seeded for reproducibility).
        size: (width, height) of the source frame.
        scheme: "sacl" (geometry + photometric) or "sspl" (geometry only).
    """
    if scheme not in SCHEMES:
        raise bad_input("scheme", f"one of {SCHEMES}", scheme)
    width, height = _resized_size(size[0], size[1], scheme, resize)
    top = int(rng.integers(0, height - crop + 1))
    left = int(rng.integers(0, width - crop + 1))
    flip = bool(rng.random() < 0.5)
    if scheme == "sspl":
        return ViewParams(top, left, flip)
    jitter = None
    if rng.random() < 0.8:
        b, c, s, h = JITTER
        jitter = (
            tuple(int(i) for i in rng.permutation(4)),
            float(rng.uniform(1 - b, 1 + b)),
            float(rng.uniform(1 - c, 1 + c)),
            float(rng.uniform(1 - s, 1 + s)),
            float(rng.uniform(-h, h)),
        )
    grayscale = bool(rng.random() < 0.2)
    blur = float(rng.uniform(0.1, 2.0)) if rng.random() < 0.5 else None
    return ViewParams(top, left, flip, jitter, grayscale, blur)


def _shift_hue(image: Image.Image, hue: float) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    shifted = (np.asarray(h, dtype=np.int16) + int(round(hue * 255))) % 256  # hue wraps around
    h = Image.fromarray(shifted.astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def _colour_jitter(image: Image.Image, jitter: tuple) -> Image.Image:
    order, brightness, contrast, saturation, hue = jitter
    for op in order:
        if op == 0:
            image = ImageEnhance.Brightness(image).enhance(brightness)
        elif op == 1:
            image = ImageEnhance.Contrast(image).enhance(contrast)
        elif op == 2:
            image = ImageEnhance.Color(image).enhance(saturation)
        else:
            image = _shift_hue(image, hue)
    return image


def _geometry(image: Image.Image, resample, width: int, height: int, p: ViewParams, crop: int) -> Image.Image:
    image = image.resize((width, height), resample)
    image = image.crop((p.left, p.top, p.left + crop, p.top + crop))
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if p.flip else image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ImageNet-normalised float32 tensor [3, H, W]."""
    x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def apply_view(
    frame: Image.Image,
    labels: np.ndarray | None,
    params: ViewParams,
    scheme: str = "sacl",
    resize: int = RESIZE,
    crop: int = CROP,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Apply one view to a frame and (optionally) its label map.

    Args:
        frame: RGB PIL image of any size.
        labels: integer segment ids [h, w] of the same frame (any resolution), or None.

    Returns:
        (view [3, crop, crop] float32 normalised, labels [crop, crop] int32 or None).
    """
    width, height = _resized_size(frame.width, frame.height, scheme, resize)
    image = _geometry(frame.convert("RGB"), Image.Resampling.BICUBIC, width, height, params, crop)
    if params.jitter is not None:
        image = _colour_jitter(image, params.jitter)
    if params.grayscale:
        image = image.convert("L").convert("RGB")
    if params.blur_sigma is not None:
        image = image.filter(ImageFilter.GaussianBlur(radius=params.blur_sigma))
    view_labels = None
    if labels is not None:
        label_image = Image.fromarray(np.ascontiguousarray(labels, dtype=np.int32), "I")
        label_image = _geometry(label_image, Image.Resampling.NEAREST, width, height, params, crop)
        view_labels = np.array(label_image, dtype=np.int32)  # writable, for torch.from_numpy
    return to_tensor(image), view_labels


def train_views(
    frame: Image.Image,
    labels: np.ndarray | None,
    rng: np.random.Generator,
    scheme: str = "sacl",
    count: int = 2,
) -> list[tuple[torch.Tensor, np.ndarray | None]]:
    """``count`` independent views (frame tensor [3, 224, 224], labels [224, 224]) of one frame."""
    return [apply_view(frame, labels, sample_view(rng, frame.size, scheme), scheme) for _ in range(count)]


def eval_view(frame: Image.Image, labels: np.ndarray | None = None, size: int = CROP):
    """The "stretch" frame transform (the whole frame resized to size x size, bicubic; SACL's
    test transform), applied to labels with nearest."""
    image = frame.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    view_labels = None
    if labels is not None:
        label_image = Image.fromarray(np.ascontiguousarray(labels, dtype=np.int32), "I")
        view_labels = np.array(label_image.resize((size, size), Image.Resampling.NEAREST), dtype=np.int32)
    return to_tensor(image), view_labels
