"""Draw a localization heatmap over its picture and write a PNG (Pillow only).

    save_overlay("overlay.png", "frame.jpg", result.heatmap, box=result.box, peak=result.peak)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avsdk.errors import bad_input, renamed


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Jet-like colour map: 0 -> dark blue, 0.5 -> green, 1 -> dark red.

    Each channel is a tent of width 1.5 centred at 0.75 (red), 0.5 (green), 0.25 (blue),
    clipped to [0, 1]: the classic piecewise-linear approximation of MATLAB's jet.

    Args:
        heatmap: [H, W] values in [0, 1] (others are clipped).
    Returns:
        uint8 [H, W, 3].
    """
    x = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)
    rgb = np.clip(1.5 - np.abs(4.0 * (x - centres)), 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def blend(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colorize(heatmap)``.

    Args:
        image: uint8 [H, W, 3]; heatmap: [H, W] in [0, 1]; alpha in [0, 1].
    Returns:
        uint8 [H, W, 3].
    """
    image = np.asarray(image)
    heatmap = np.asarray(heatmap)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise bad_input("image", "a uint8 array [H, W, 3]", image)
    if heatmap.shape != image.shape[:2]:
        raise bad_input("heatmap", f"a map of the image's size {image.shape[:2]}", heatmap)
    if not 0.0 <= alpha <= 1.0:
        raise bad_input("alpha", "a number in [0, 1]", alpha)
    out = np.empty_like(image)
    step = max(1, _BAND // max(1, image.shape[1]))  # a band of rows at a time: float32 [H, W, 3]
    for start in range(0, image.shape[0], step):  # temporaries of a 12 MP frame would be 144 MB each
        rows = slice(start, start + step)
        mixed = (1.0 - alpha) * image[rows].astype(np.float32) + alpha * colorize(heatmap[rows]).astype(np.float32)
        out[rows] = np.round(mixed)
    return out


_BAND = 1 << 18  # pixels per band of rows that blend computes at once


def save_overlay(path: str | os.PathLike, image, heatmap: np.ndarray, box=None, peak=None,
                 alpha: float = 0.5) -> Path:
    """Write the heatmap blended over ``image`` as a PNG, with the box and peak if given.

    Args:
        path: output file (a .png).
        image: anything ``avsdk.frames.load_frame`` reads, of the heatmap's size.
        heatmap: [H, W] in [0, 1].
        box: (x0, y0, x1, y1) end-exclusive, drawn in white.
        peak: (x, y), drawn as a small white cross.
    Returns:
        the path written.
    Raises:
        InputError: a bad argument, or ``path`` that cannot be written (an OSError such as a full
            disk; the file is written atomically, so a previous one is then left as it was).
    """
    from PIL import Image

    from avsdk.frames import MAX_PIXELS, load_frame

    from avsdk.cli import output_file, write_output

    if not isinstance(path, (str, os.PathLike)):
        raise bad_input("path", "a .png file path", path)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise bad_input("alpha", "a number in [0, 1]", alpha)
    path = output_file("path", path, suffix=".png")  # before any work: a folder, a file as parent
    shape = np.shape(heatmap)
    size = int(shape[0]) * int(shape[1]) if len(shape) == 2 else 0
    with renamed({"source": "image"}):  # the localized frame may be larger than MAX_PIXELS allows
        frame = load_frame(image, max_pixels=max(MAX_PIXELS, size))
    if frame.shape[:2] != np.shape(heatmap):
        raise bad_input("image", f"the localized frame, of the heatmap's size {np.shape(heatmap)[:2]}",
                        f"an image of size {frame.shape[:2]}", described=True)
    picture = Image.fromarray(draw_overlay(frame, heatmap, box, peak, alpha))
    # atomically: a failure midway (a full disk) leaves the previous file whole; InputError naming path
    return write_output("path", path, lambda handle: picture.save(handle, format="PNG"))


def draw_overlay(image: np.ndarray, heatmap: np.ndarray, box=None, peak=None, alpha: float = 0.5) -> np.ndarray:
    """The heatmap blended over ``image``, with the box and peak in white (what save_overlay
    writes; a video's frames are drawn with it too).

    Args:
        image: uint8 [H, W, 3]; heatmap: [H, W] in [0, 1]; box, peak, alpha: as save_overlay.
    Returns:
        uint8 [H, W, 3].
    """
    from PIL import Image, ImageDraw

    picture = Image.fromarray(blend(image, heatmap, alpha))
    draw = ImageDraw.Draw(picture)
    width = max(1, round(min(picture.size) / 150))
    if box is not None:
        x0, y0, x1, y1 = box
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(255, 255, 255), width=width)
    if peak is not None:
        x, y = peak
        arm = 3 * width + 2
        draw.line([x - arm, y, x + arm, y], fill=(255, 255, 255), width=width)
        draw.line([x, y - arm, x, y + arm], fill=(255, 255, 255), width=width)
    return np.asarray(picture)
