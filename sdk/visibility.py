"""Is the source of this sound in the picture? A calibrated probability from the model's map.

A localization network draws a heatmap for every input, silence included. Whether the
sound's source is visible at all is a separate question, answered here from three numbers
that every backend gives (no extra graph output, so ONNX, INT8 and TensorRT models answer
it the same way):

    score     the largest raw cosine of the map (how well the best position matches the sound)
    contrast  score minus the map's mean (a peak on one object, not a uniform response)
    level_db  the RMS level of the audio window the model heard, in dB full scale (the
              model itself never sees the level: its input is min-max rescaled, so digital
              silence would look like loud noise to it)

A logistic regression on these, fitted on validation pairs (on-screen: an image with its
own sound; off-screen: an image with the sound of a class absent from it, silence, noise),
turns them into a probability. The fit lives in the checkpoint's meta and in the export
manifest (``Calibration.to_json``).

    cal = fit_calibration(features, on_screen)          # features [n, 3], on_screen [n] bool
    p = cal.probability(map_features(similarity, level_db))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avsdk.errors import bad_input

FEATURES = ("score", "contrast", "level_db")
SILENCE_DB = -100.0  # floor of level_db (an all-zero window)
FORMAT = "avsdk.visibility"


def level_db(window: np.ndarray) -> float:
    """RMS level of a waveform window [T] (samples in [-1, 1]) in dB full scale, >= -100."""
    window = np.asarray(window, dtype=np.float64)
    rms = math.sqrt(float(np.mean(window * window))) if window.size else 0.0
    return max(SILENCE_DB, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_DB


def audio_level_db(audio, sample_rate, clip_seconds: float = 3.0) -> float:
    """level_db of the window the model hears: mono, 16 kHz, the centre ``clip_seconds`` (a
    shorter sound tiled), before the min-max rescale. Same inputs as avsdk.audio.prepare_waveform."""
    from avsdk.audio import centre_or_tile, clip_samples, to_mono_16k

    return level_db(centre_or_tile(to_mono_16k(audio, sample_rate), clip_samples(clip_seconds)))


def map_features(similarity: np.ndarray, level: float) -> np.ndarray:
    """One raw map [h, w] and its audio level -> the features [3] (FEATURES order)."""
    similarity = np.asarray(similarity, dtype=np.float64)
    score = float(similarity.max())
    return np.array([score, score - float(similarity.mean()), float(level)])


@dataclass(frozen=True)
class Calibration:
    """p(on screen) = sigmoid(w . (x - mean) / scale + b), x = map_features(...)."""

    weights: tuple
    bias: float
    mean: tuple
    scale: tuple
    features: tuple = FEATURES

    def probability(self, features: np.ndarray) -> np.ndarray | float:
        """features [3] or [n, 3] -> probability (float, or [n])."""
        x = np.asarray(features, dtype=np.float64)
        if x.shape[-1] != len(self.features):
            raise bad_input("features", f"[..., {len(self.features)}] ({', '.join(self.features)})", x)
        z = ((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.weights) + self.bias
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
        return float(p) if np.ndim(p) == 0 else p

    def to_json(self) -> dict:
        return {"format": FORMAT, "features": list(self.features), "weights": list(self.weights),
                "bias": self.bias, "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_json(cls, data, where: str = "visibility") -> "Calibration":
        """Raises InputError naming ``where`` for anything but a calibration this avsdk wrote."""
        try:
            if data.get("format") != FORMAT or tuple(data["features"]) != FEATURES:
                raise ValueError
            values = [tuple(float(v) for v in data[k]) for k in ("weights", "mean", "scale")]
            if any(len(v) != len(FEATURES) for v in values) or min(values[2]) <= 0:
                raise ValueError
            return cls(weights=values[0], bias=float(data["bias"]), mean=values[1], scale=values[2])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise bad_input(where, f"a visibility calibration ({FORMAT}, features {list(FEATURES)})",
                            data) from None


def fit_calibration(features: np.ndarray, on_screen: np.ndarray, l2: float = 1e-2,
                    iterations: int = 50) -> Calibration:
    """Logistic regression by Newton's method on standardised features.

    Args:
        features: [n, 3] map_features rows.
        on_screen: [n] bool, True where the sound's source is in the picture.
        l2: ridge penalty on the weights (not the bias), per sample; keeps separable data
            finite.
    Raises:
        InputError: shapes, or a label set without both classes.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(on_screen, dtype=bool)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or not np.isfinite(x).all():
        raise bad_input("features", f"a finite array [n, {len(FEATURES)}]", x)
    if y.shape != (x.shape[0],) or y.all() or not y.any():
        raise bad_input("on_screen", f"[{x.shape[0]}] booleans holding both True and False", y)
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-12] = 1.0  # a constant feature: weight stays ~0
    design = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    target = y.astype(np.float64)
    theta = np.zeros(design.shape[1])
    ridge = np.diag([l2 * len(x)] * len(FEATURES) + [0.0])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -60, 60)))
        gradient = design.T @ (p - target) + ridge @ theta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge + 1e-9 * np.eye(len(theta))
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return Calibration(weights=tuple(theta[:-1].tolist()), bias=float(theta[-1]),
                       mean=tuple(mean.tolist()), scale=tuple(scale.tolist()))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties 1/2."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise bad_input("positive", "labels holding both True and False", positive)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
