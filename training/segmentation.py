"""SACL's positive region: Felzenszwalb pseudo-segments AND the binarised similarity map.

docs/method.md, "SACL loss", step 2; the reference is ``NetWrapper.pixel_contrast`` in
zjsong/SACL main.py, restated here vectorised over the batch, corner cases included:

* a view whose segment map is all id 0 (one segment only) -> the segment is the whole map;
* no segment id shared by both views -> each view's mask is its own binary map;
* otherwise the shared segment (ids in ascending order, first one on ties) with the largest
  intersection with view 1's binary map is chosen; view 2 uses the same id, and if its
  binary map misses that segment entirely, view 2's mask is the whole segment.

Binarisation: min-max normalise (no epsilon, as the reference), threshold at the sorted value
at position int(0.5 * HW), keep values above it; the maximum (normalised value exactly 1)
always stays, as the reference's two-step assignment keeps it. A constant map cannot be
min-max normalised (the reference divides 0 by 0 and gets NaN masks); here it gives an
empty binary map.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from avsdk.errors import bad_input, require

SEGMENT_SIZE = 256  # the reference segments its 256x256 stored frames
FELZENSZWALB = {"scale": 1000, "sigma": 0.5, "min_size": 1000}


def pseudo_segmentation(frame: np.ndarray | Image.Image, size: int = SEGMENT_SIZE) -> np.ndarray:
    """Felzenszwalb segments of a frame resized (bicubic) to size x size.

    At the reference's 256 the parameters are scale 1000, sigma 0.5, min_size 1000. A
    smaller ``size`` (fast mode: 4x fewer pixels, ~5x faster) scales them so the segments
    cover the same fractions of the image: scale and min_size with the pixel count (the
    merge threshold scale/|C| counts pixels), sigma with the side. That is an
    approximation of the reference segmentation, not the same segmentation.

    Args:
        frame: RGB uint8 array [H, W, 3] or PIL image.
        size: side of the square image that is segmented.

    Returns:
        int32 segment ids [size, size], 0-based.
    """
    if not isinstance(size, int) or size < 16:
        raise bad_input("size", "an int >= 16", size)
    segmentation = require("skimage.segmentation", "train", "SACL pseudo-segmentation")
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    area, side = (size / SEGMENT_SIZE) ** 2, size / SEGMENT_SIZE
    params = FELZENSZWALB if size == SEGMENT_SIZE else {
        "scale": FELZENSZWALB["scale"] * area,
        "sigma": FELZENSZWALB["sigma"] * side,
        "min_size": max(1, int(round(FELZENSZWALB["min_size"] * area))),
    }
    return segmentation.felzenszwalb(pixels, **params).astype(np.int32)


def nearest_resize(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of integer maps [..., H, W] -> [..., h, w], as F.interpolate('nearest').

    PyTorch's legacy nearest takes source index floor(dst * in / out); done with index
    arithmetic so integer ids are never routed through floats.
    """
    height, width = labels.shape[-2:]
    rows = torch.floor(torch.arange(size[0], dtype=torch.float64) * (height / size[0])).long()
    cols = torch.floor(torch.arange(size[1], dtype=torch.float64) * (width / size[1])).long()
    return labels[..., rows, :][..., cols]


def binarize(sim: torch.Tensor, retain: float = 0.5) -> torch.Tensor:
    """Binary map of the top of each similarity map, [B, H, W] -> float [B, H, W] in {0, 1}."""
    flat = sim.detach().flatten(1).float()
    shifted = flat - flat.min(dim=1, keepdim=True).values
    top = shifted.max(dim=1, keepdim=True).values
    norm = torch.where(top > 0, shifted / torch.where(top > 0, top, 1.0), torch.zeros_like(shifted))
    threshold = norm.sort(dim=1).values[:, int(flat.shape[1] * retain)].unsqueeze(1)
    keep = (norm > threshold) | ((norm >= 1) & (top > 0))
    return keep.float().view_as(sim)


def positive_masks(
    sim1: torch.Tensor, sim2: torch.Tensor, seg1: torch.Tensor, seg2: torch.Tensor, retain: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive-region masks of two views (docs/method.md, "SACL loss", step 2).

    Args:
        sim1, sim2: raw cosine similarity maps of view 1 and view 2, [B, H, W].
        seg1, seg2: integer segment ids of the views, [B, h, w] (nearest-resized to H x W
            here when h x w differs), non-negative; both None: the binarised maps alone.
        retain: fraction of positions below the binarisation threshold (0.5).

    Returns:
        (M1, M2): float32 [B, H, W] in {0, 1}; no gradient flows through them.
    """
    if sim1.dim() != 3 or sim1.shape != sim2.shape:
        raise bad_input("sim1, sim2", "two maps of the same shape [B, H, W]", (tuple(sim1.shape), tuple(sim2.shape)))
    if seg1 is None and seg2 is None:
        # no pseudo-segmentation (TrainConfig.positive_region == "map"): the reference's
        # one-segment case, where the positive region is the binarised map itself
        return binarize(sim1, retain), binarize(sim2, retain)
    if seg1 is None or seg2 is None:
        raise bad_input("seg1, seg2", "both segment maps or neither", (seg1 is None, seg2 is None))
    if seg1.dim() != 3 or seg2.dim() != 3 or seg1.shape[0] != sim1.shape[0] or seg2.shape[0] != sim1.shape[0]:
        raise bad_input("seg1, seg2", f"integer maps [{sim1.shape[0]}, h, w]", (tuple(seg1.shape), tuple(seg2.shape)))
    size = tuple(sim1.shape[-2:])
    seg1 = nearest_resize(seg1.long(), size).flatten(1)  # [B, HW]
    seg2 = nearest_resize(seg2.long(), size).flatten(1)
    if (seg1 < 0).any() or (seg2 < 0).any():
        raise bad_input("seg1, seg2", "non-negative segment ids", "negative ids", described=True)
    bin1 = binarize(sim1, retain).flatten(1)  # [B, HW]
    bin2 = binarize(sim2, retain).flatten(1)

    # the reference treats a view that is all id 0 as one segment covering everything
    single = (seg1.amax(dim=1) == 0) | (seg2.amax(dim=1) == 0)  # [B]
    # dense ids in the same order, so the one-hot width is the number of distinct ids
    _, dense = torch.unique(torch.stack([seg1, seg2]), return_inverse=True)
    seg1, seg2 = dense[0], dense[1]
    ids = int(dense.max()) + 1
    onehot1 = torch.nn.functional.one_hot(seg1, ids).transpose(1, 2).float()  # [B, L, HW]
    onehot2 = torch.nn.functional.one_hot(seg2, ids).transpose(1, 2).float()
    onehot1[single] = 0
    onehot2[single] = 0
    onehot1[single, 0] = 1
    onehot2[single, 0] = 1
    shared = (onehot1.amax(dim=2) > 0) & (onehot2.amax(dim=2) > 0)  # [B, L]

    overlap = (onehot1 * bin1.unsqueeze(1)).sum(dim=2)  # [B, L] pixel counts, exact in float32
    overlap = torch.where(shared, overlap, torch.full_like(overlap, -1.0))
    chosen = overlap.argmax(dim=1)  # first maximal id among the shared ones
    segment1 = onehot1[torch.arange(len(chosen)), chosen]  # [B, HW]
    segment2 = onehot2[torch.arange(len(chosen)), chosen]

    mask1 = bin1 * segment1
    mask2 = bin2 * segment2
    mask2 = torch.where(mask2.sum(dim=1, keepdim=True) == 0, segment2, mask2)
    none_shared = ~shared.any(dim=1, keepdim=True)  # [B, 1]
    mask1 = torch.where(none_shared, bin1, mask1)
    mask2 = torch.where(none_shared, bin2, mask2)
    return mask1.view_as(sim1), mask2.view_as(sim2)
