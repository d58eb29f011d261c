"""Compose one benchmark sample: a sounding cut-out and a silent distractor on a background.

Pure functions of a numpy Generator, so that the builder's per-sample seeding makes every
sample reproducible on its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MASK_THRESHOLD = 128  # alpha >= this is "object"; the paste itself blends with the full alpha


@dataclass(frozen=True)
class Placed:
    """A cut-out pasted into the frame: its exact mask and the mask's bounding box."""

    mask: np.ndarray  # bool [size, size]
    box: tuple[int, int, int, int]  # x0, y0, x1, y1, end-exclusive


def background_crop(photo: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """A random square crop (60-100 % of the short side) resized to ``size`` x ``size`` RGB."""
    side = int(min(photo.size) * rng.uniform(0.6, 1.0))
    x = int(rng.integers(0, photo.width - side + 1))
    y = int(rng.integers(0, photo.height - side + 1))
    return photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)


def scaled_cutout(cutout: Image.Image, longest: int, flip: bool) -> Image.Image:
    """Resize an RGBA cut-out so its longest side is ``longest`` pixels (aspect kept)."""
    scale = longest / max(cutout.size)
    size = (max(1, round(cutout.width * scale)), max(1, round(cutout.height * scale)))
    out = cutout.resize(size, Image.LANCZOS)
    return out.transpose(Image.FLIP_LEFT_RIGHT) if flip else out


def place_pair(sounding: tuple[int, int], distractor: tuple[int, int], size: int,
               rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Top-left corners for two rectangles (w, h) that are separated along x or y.

    A side (distractor left / right / above / below the sounding object) is drawn among
    those where both fit; the sounding position is then uniform among positions that leave
    room on that side. Returns None when the two cannot be separated at these sizes.
    """
    (sw, sh), (dw, dh) = sounding, distractor
    sides = [s for s, fits in (("left", sw + dw <= size), ("right", sw + dw <= size),
                               ("above", sh + dh <= size), ("below", sh + dh <= size)) if fits]
    if not sides or sw > size or sh > size or dw > size or dh > size:
        return None
    side = sides[int(rng.integers(len(sides)))]
    if side in ("left", "right"):
        sx = int(rng.integers(dw, size - sw + 1)) if side == "left" else int(rng.integers(0, size - sw - dw + 1))
        sy = int(rng.integers(0, size - sh + 1))
        dx = int(rng.integers(0, sx - dw + 1)) if side == "left" else int(rng.integers(sx + sw, size - dw + 1))
        dy = int(rng.integers(0, size - dh + 1))
    else:
        sy = int(rng.integers(dh, size - sh + 1)) if side == "above" else int(rng.integers(0, size - sh - dh + 1))
        sx = int(rng.integers(0, size - sw + 1))
        dy = int(rng.integers(0, sy - dh + 1)) if side == "above" else int(rng.integers(sy + sh, size - dh + 1))
        dx = int(rng.integers(0, size - dw + 1))
    return (sx, sy), (dx, dy)


def paste(frame: Image.Image, cutout: Image.Image, corner: tuple[int, int]) -> Placed:
    """Alpha-composite ``cutout`` onto ``frame`` (in place) and return its exact mask and box."""
    frame.paste(cutout, corner, cutout)
    alpha = np.asarray(cutout.getchannel("A"))
    mask = np.zeros((frame.height, frame.width), dtype=bool)
    x, y = corner
    mask[y : y + alpha.shape[0], x : x + alpha.shape[1]] = alpha >= MASK_THRESHOLD
    return Placed(mask=mask, box=mask_box(mask))


class EmptyCutout(ValueError):
    """A cut-out scaled so small that no pixel of it is opaque enough to mask."""


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight end-exclusive box (x0, y0, x1, y1) of a non-empty bool mask [H, W]."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise EmptyCutout("empty mask: the cut-out is fully transparent at this scale")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def audio_window(clip: np.ndarray, length: int, rate: int, rng: np.random.Generator,
                 gain_db: tuple[float, float] = (-6.0, 0.0)) -> np.ndarray:
    """``length`` samples from ``clip`` [T]: a random crop, or for a short clip repetitions
    separated by 50-300 ms of silence started at a random phase; then a random gain.

    Returns float32 [length].
    """
    if len(clip) >= length:
        start = int(rng.integers(0, len(clip) - length + 1))
        window = clip[start : start + length]
    else:
        gap = np.zeros(int(rng.uniform(0.05, 0.3) * rate), dtype=np.float32)
        period = np.concatenate([clip, gap])
        reps = -(-(length + len(period)) // len(period))
        tiled = np.tile(period, reps)
        start = int(rng.integers(0, len(period)))
        window = tiled[start : start + length]
    gain = 10.0 ** (rng.uniform(*gain_db) / 20.0)
    return (window * gain).astype(np.float32)


def place_one(cutout: tuple[int, int], size: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """A uniform top-left corner for one rectangle (w, h) inside the frame, None if it is larger."""
    w, h = cutout
    if w > size or h > size:
        return None
    return int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))


def coloured_noise(length: int, colour: str, rms_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic noise (white, pink: 1/f power, brown: 1/f^2 power) at an RMS level in dBFS,
    clipped to [-1, 1]. Used only for the labelled "silence" / "noise" off-screen clips.

    Returns float32 [length].
    """
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}.get(colour)
    if exponent is None:
        raise ValueError(f"unknown noise colour {colour!r} (white, pink or brown)")
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1] if length > 1 else 1.0  # no infinite gain at DC
    shaped = np.fft.irfft(spectrum / freqs ** exponent, n=length)
    shaped -= shaped.mean()
    shaped *= 10.0 ** (rms_dbfs / 20.0) / (np.sqrt(np.mean(shaped ** 2)) + 1e-12)
    return np.clip(shaped, -1.0, 1.0).astype(np.float32)
