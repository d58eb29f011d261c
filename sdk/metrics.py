"""Localization metrics of docs/method.md, "Evaluation", in plain numpy.

The pipeline for one image is

    raw map S [h, w] --resize_bilinear--> [224, 224] --normalize_map--> [0, 1]
        --binarize(rule)--> B [224, 224] bool --ciou(B, G)--> one number

and a test set is summarised by ``ciou_at`` (fraction of images with cIoU >= 0.5) and ``auc``
(area under the success curve). ``pointing_hit`` and ``distractor_score`` judge the peak.

Decisions that the method leaves open (docs/method.md lists them too; each is also documented
where it is made):
- A constant map has no min-max normalisation; ``normalize_map`` turns it into all ones. It
  expresses no preference, so it predicts the whole image under both rules, which is what
  the all-ones baseline means. (The reference code divides by zero there, gets NaN, and so
  predicts nothing.)
- The peak of a map with ties is the tied pixel nearest to the centroid of all tied pixels:
  a constant map points at the image centre, not at its top-left corner.
- Distractor accuracy compares the map's maximum inside the sounding object's mask with its
  maximum inside the distractor's mask: 1 if higher, 0 if lower, 1/2 on a tie (a map that
  cannot tell the two apart scores chance).
- The centre-box baseline is the central 160x160 square (32-pixel margins): a little over
  half of the image, so both binarisation rules keep exactly that box.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from typing import Iterable, Sequence

import numpy as np

from avsdk.errors import bad_input

IMAGE_SIZE = 224
# The reference computes the thresholds as 0.05 * i (so 0.15 is 0.15000000000000002 and a
# cIoU of exactly 0.15 does not reach it); we use the same floats so numbers match exactly.
AUC_THRESHOLDS = tuple(0.05 * i for i in range(21))
RULES = ("value", "top50")
CENTRE_BOX = (32, 32, 192, 192)  # x0, y0, x1, y1 at 224x224, end-exclusive

Box = tuple[int, int, int, int]


# --------------------------------------------------------------------------- prediction


def _interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of 1-D linear interpolation with half-pixel centres.

    Output pixel o samples the input at ``(o + 0.5) * n_in / n_out - 0.5``, clamped at 0 from
    below (as PyTorch and OpenCV do) and at the last pixel from above.
    """
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    left = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    right = np.minimum(left + 1, n_in - 1)
    frac = src - left
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(weights, (rows, left), 1.0 - frac)
    np.add.at(weights, (rows, right), frac)
    return weights


def resize_bilinear(maps: np.ndarray, size: int | tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """Bilinear resize with half-pixel centres (``F.interpolate(..., align_corners=False)``).

    Args:
        maps: [h, w] or [B, h, w] real array.
        size: output side, or (height, width).
    Returns:
        float32 [H, W] or [B, H, W].
    """
    maps = np.asarray(maps)
    if maps.ndim not in (2, 3) or min(maps.shape[-2:], default=0) < 1:
        raise bad_input("maps", "a non-empty array of shape [h, w] or [B, h, w]", maps)
    height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if height < 1 or width < 1:
        raise bad_input("size", "positive output height and width", size)
    if maps.shape[-2:] == (height, width):  # scale 1 samples every pixel at its own centre
        return maps.astype(np.float32)
    rows = _interpolation_matrix(maps.shape[-2], int(height))
    cols = _interpolation_matrix(maps.shape[-1], int(width))
    out = rows @ maps.astype(np.float64) @ cols.T
    return out.astype(np.float32)


def normalize_map(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1]: ``(x - min) / (max - min)``, in float32 as the reference
    evaluation does (its maps are OpenCV's float32 resizes): a value exactly halfway comes out
    0.5, which the value rule keeps, where float64 arithmetic on the same float32 values can
    give 0.49999997 and drop the pixel (docs/method.md, "Evaluation").

    A constant map becomes all ones (no preference = the whole image; see the module notes).

    Args:
        heatmap: [H, W] finite real array, representable in float32.
    Returns:
        float32 [H, W].
    Raises:
        InputError: the map holds NaN or Inf, or values beyond float32's range.
    """
    heatmap = np.asarray(heatmap)
    with np.errstate(over="ignore"):
        values = heatmap.astype(np.float32)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise bad_input("heatmap", "a non-empty map of finite float32 values", heatmap)
    low, high = values.min(), values.max()
    if high == low:
        return np.ones(values.shape, dtype=np.float32)
    return (values - low) / (high - low)


def localization_map(raw: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Raw similarity map [h, w] -> normalised heatmap float32 [size, size] in [0, 1]."""
    return normalize_map(resize_bilinear(raw, size))


def binarize(heatmap: np.ndarray, rule: str = "value") -> np.ndarray:
    """Binarise a normalised heatmap [H, W] -> bool [H, W].

    rule "value" (SSPL/SACL): keep pixels >= 0.5.
    rule "top50" (LVS/EZ-VSL/FNAC): keep pixels >= the sorted value at index int(H*W*0.5).
    """
    heatmap = np.asarray(heatmap)
    if rule == "value":
        return heatmap >= 0.5
    if rule == "top50":
        threshold = np.sort(heatmap, axis=None)[int(heatmap.size * 0.5)]
        return heatmap >= threshold
    raise bad_input("rule", f"one of {RULES}", rule)


def ciou(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """cIoU of one image: ``sum(B*G) / (sum(G) + sum(B*(G==0)))``.

    Args:
        prediction: binary map B [H, W] (bool or 0/1).
        ground_truth: map G [H, W] with values in [0, 1] (Flickr consensus maps hold 0.5).
    Raises:
        InputError: shapes differ, or G is empty (the cIoU is then undefined).
    """
    pred = np.asarray(prediction, dtype=np.float64)
    gt = np.asarray(ground_truth, dtype=np.float64)
    if pred.shape != gt.shape:
        raise bad_input("prediction", f"the ground truth's shape {gt.shape}", pred.shape, described=True)
    gt_area = gt.sum()
    if gt_area <= 0:
        raise bad_input("ground_truth", "a map with at least one positive pixel", gt)
    return float((pred * gt).sum() / (gt_area + (pred * (gt == 0)).sum()))


# --------------------------------------------------------------------------- summaries


def success_curve(cious: Iterable[float]) -> np.ndarray:
    """y(t) = fraction of images with cIoU >= t, for t in AUC_THRESHOLDS -> float64 [21]."""
    values = np.asarray(list(cious), dtype=np.float64)
    if values.size == 0:
        raise bad_input("cious", "at least one per-image cIoU", values)
    return np.array([(values >= t).mean() for t in AUC_THRESHOLDS])


def ciou_at(cious: Iterable[float], threshold: float = 0.5) -> float:
    """Fraction of images whose cIoU >= threshold (``cIoU@0.5`` by default)."""
    values = np.asarray(list(cious), dtype=np.float64)
    if values.size == 0:
        raise bad_input("cious", "at least one per-image cIoU", values)
    return float((values >= threshold).mean())


def auc(cious: Iterable[float]) -> float:
    """Trapezoidal area under the success curve over t = 0, 0.05, ..., 1.0."""
    y = success_curve(cious)
    x = np.asarray(AUC_THRESHOLDS)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


# --------------------------------------------------------------------------- peak-based


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    """(x, y) of the map's maximum; ties go to the tied pixel nearest their centroid."""
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise bad_input("heatmap", "a non-empty array of shape [H, W]", heatmap)
    if not np.isfinite(heatmap).all():  # NaN has no maximum (numpy's own error was cryptic)
        raise bad_input("heatmap", "finite values", f"{int((~np.isfinite(heatmap)).sum())} "
                        f"non-finite of {heatmap.size}", described=True)
    ys, xs = np.nonzero(heatmap == heatmap.max())
    if ys.size == 1:
        return int(xs[0]), int(ys[0])
    distance = (ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2
    best = int(np.argmin(distance))
    return int(xs[best]), int(ys[best])


def pointing_hit(heatmap: np.ndarray, box: Box) -> bool:
    """Pointing game: is the peak inside ``box`` (x0, y0, x1, y1, end-exclusive)?"""
    x, y = peak(heatmap)
    x0, y0, x1, y1 = box
    return bool(x0 <= x < x1 and y0 <= y < y1)


def distractor_score(heatmap: np.ndarray, sounding: np.ndarray, distractor: np.ndarray) -> float:
    """1.0 if the map peaks higher on the sounding object than on the distractor, 0.0 if lower,
    0.5 on a tie.

    Args:
        heatmap: [H, W]; sounding, distractor: masks [H, W] (non-zero = the object).
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    inside = []
    for name, mask in (("sounding", sounding), ("distractor", distractor)):
        mask = np.asarray(mask) > 0
        if mask.shape != heatmap.shape or not mask.any():
            raise bad_input(name, f"a non-empty mask of shape {heatmap.shape}", mask)
        inside.append(heatmap[mask].max())
    if inside[0] == inside[1]:
        return 0.5
    return 1.0 if inside[0] > inside[1] else 0.0


# --------------------------------------------------------------------------- ground truth


def box_mask(box: Sequence[int], size: int = IMAGE_SIZE) -> np.ndarray:
    """float32 [size, size] with ones at ``[y0:y1, x0:x1]`` (coordinates must be >= 0)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if min(x0, y0, x1, y1) < 0:
        raise bad_input("box", "non-negative pixel coordinates (x0, y0, x1, y1)", box)
    mask = np.zeros((size, size), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def flickr_ground_truth(source: str | os.PathLike, size: int = IMAGE_SIZE) -> np.ndarray:
    """Flickr-SoundNet annotation XML -> consensus map float32 [size, size] in {0, 0.5, 1}.

    Each ``bbox`` element holds a first child that is skipped, then xmin, ymin, xmax, ymax in
    256x256 pixels, each scaled by ``int(size * v / 256)``. The box masks are summed, halved and
    clipped to 1: one annotator's box gives 0.5, two or more agree on 1.0. A negative
    coordinate (none in the released files) is clamped to 0 rather than wrapping around.

    Args:
        source: path of the XML file, or the XML text itself.
    """
    try:
        text = str(source)
        root = ET.fromstring(text) if text.lstrip().startswith("<") else ET.parse(source).getroot()
    except (OSError, ET.ParseError) as exc:
        raise bad_input("source", "a readable Flickr-SoundNet annotation XML", f"{source!s} ({exc})",
                        described=True) from exc
    total = np.zeros((size, size), dtype=np.float32)
    for element in root.iter("bbox"):
        children = list(element)[1:5]
        try:
            coords = [max(int(size * float(child.text) / 256), 0) for child in children]
        except (TypeError, ValueError):
            coords = []
        if len(coords) != 4:
            raise bad_input("source", "bbox elements with a skipped first child, then xmin, ymin, "
                            "xmax, ymax", ET.tostring(element, encoding="unicode"), described=True)
        total += box_mask(coords, size)
    if not total.any():
        raise bad_input("source", "an annotation with at least one non-empty bbox", str(source)[:120],
                        described=True)
    return np.minimum(total / 2.0, 1.0)


def vggss_ground_truth(boxes: Sequence[Sequence[float]], size: int = IMAGE_SIZE) -> np.ndarray:
    """VGG-SS normalised boxes [[x0, y0, x1, y1], ...] -> binary union float32 [size, size].

    Coordinates are scaled by ``int(size * max(v, 0))``: vggss.json holds a few corrupt
    negative coordinates.
    """
    if len(boxes) == 0:
        raise bad_input("boxes", "at least one [x0, y0, x1, y1] box", boxes)
    union = np.zeros((size, size), dtype=np.float32)
    for box in boxes:
        if len(box) != 4:
            raise bad_input("boxes", "boxes of four normalised coordinates", box)
        union = np.maximum(union, box_mask([int(size * max(float(v), 0.0)) for v in box], size))
    return union


def load_vggss_annotations(path: str | os.PathLike) -> dict[str, list[list[float]]]:
    """vggss.json (a list of {"file": ..., "bbox": [[x0, y0, x1, y1], ...], ...}) -> file -> boxes."""
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
        return {str(entry["file"]): list(entry["bbox"]) for entry in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise bad_input("path", "a readable VGG-SS annotation JSON (list of {file, bbox})",
                        f"{path!s} ({exc})", described=True) from exc


# --------------------------------------------------------------------------- baselines


def all_ones_map(size: int = IMAGE_SIZE) -> np.ndarray:
    """Baseline map float32 [size, size]: every pixel equally likely."""
    return np.ones((size, size), dtype=np.float32)


def centre_box_map(size: int = IMAGE_SIZE) -> np.ndarray:
    """Baseline map float32 [size, size]: ones on the central square CENTRE_BOX (scaled to size)."""
    scale = size / IMAGE_SIZE
    return box_mask([round(v * scale) for v in CENTRE_BOX], size)
