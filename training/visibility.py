"""Calibrate and measure the visibility answer ("is the sound's source in the picture?").

Calibration uses the val split only: its samples as they are (on screen) against the same
val images paired with the sound of a val clip whose class is not pictured, with silence and
with noise (off screen). ``avsdk.visibility`` fits the logistic map from the model's
(score, contrast, level) to a probability; the test-time check is the offscreen split
against the on-screen test samples (AUROC).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from avsdk.visibility import Calibration, audio_level_db, auroc, fit_calibration, map_features

SYNTHETIC = ("silence", "noise")


def _features(localizer, samples: Sequence, progress: bool) -> np.ndarray:
    from avsdk.audio import load_audio
    from avsdk.evaluation import predicted_maps

    maps = predicted_maps(localizer.predict, samples, 32, localizer.transform, localizer.audio, progress,
                          localizer.image_size)
    levels = [audio_level_db(*load_audio(s.audio), localizer.clip_seconds) for s in samples]
    return np.stack([map_features(m, level) for m, level in zip(maps, levels)])


def synthetic_clips(folder: Path, count: int, seed: int, seconds: float = 3.0, rate: int = 16000) -> list[Path]:
    """``count`` wav files alternating near-silence (-70 to -50 dBFS white noise) and noise
    (white / pink / brown, -40 to -10 dBFS), seeded; written once into ``folder``."""
    import soundfile as sf

    from .audio_augment import coloured_noise

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng((seed, 11))
    paths = []
    for i in range(count):
        kind = SYNTHETIC[i % 2]
        level = rng.uniform(-70, -50) if kind == "silence" else rng.uniform(-40, -10)
        slope = 0.0 if kind == "silence" else float(rng.integers(3))
        wave = coloured_noise(int(seconds * rate), slope, rng) * 10.0 ** (level / 20.0)
        path = folder / f"{kind}-{i:03d}.wav"
        sf.write(path, wave.astype(np.float32), rate, subtype="FLOAT")
        paths.append(path)
    return paths


def offscreen_pairs(samples: Sequence, folder: Path, seed: int, synthetic_fraction: float = 0.2) -> list:
    """Each sample's picture with a sound whose source it does not show: another sample's
    clip of a class that is not pictured, or (``synthetic_fraction`` of them) silence / noise."""
    rng = np.random.default_rng((seed, 12))
    n_synthetic = int(round(synthetic_fraction * len(samples)))
    synthetic = synthetic_clips(folder, n_synthetic, seed)
    pairs = []
    for i, sample in enumerate(samples):
        pictured = set(getattr(sample, "objects", ()) or (sample.label, sample.distractor_label))
        if i < n_synthetic:
            audio, label = synthetic[i], synthetic[i].name.split("-")[0]
        else:
            options = [s for s in samples if s.label not in pictured]
            other = options[int(rng.integers(len(options)))]
            audio, label = other.audio, other.label
        pairs.append(dataclasses.replace(sample, audio=audio, label=label, box=None, mask=None))
    return pairs


def calibrate(localizer, val: Sequence, folder: Path, seed: int = 0, progress: bool = True) -> tuple[Calibration, dict]:
    """Fit the visibility calibration on val (module doc) -> (calibration, val AUROCs)."""
    on = _features(localizer, val, progress)
    off = _features(localizer, offscreen_pairs(val, folder, seed), progress)
    x = np.concatenate([on, off])
    y = np.concatenate([np.ones(len(on), bool), np.zeros(len(off), bool)])
    calibration = fit_calibration(x, y)
    return calibration, {"val_auroc": auroc(calibration.probability(x), y), "val_auroc_score": auroc(x[:, 0], y)}


def visibility_report(localizer, on_screen: Sequence, off_screen: Sequence, calibration: Calibration,
                      progress: bool = True) -> dict:
    """AUROC of the calibrated probability and of the raw score (max cosine), on-screen vs
    off-screen samples, with the AUROC per off-screen kind and the accuracy at p = 0.5."""
    on = _features(localizer, on_screen, progress)
    off = _features(localizer, off_screen, progress)
    p_on, p_off = calibration.probability(on), calibration.probability(off)
    labels = np.concatenate([np.ones(len(on), bool), np.zeros(len(off), bool)])
    report = {"auroc": auroc(np.concatenate([p_on, p_off]), labels),
              "auroc_score": auroc(np.concatenate([on[:, 0], off[:, 0]]), labels),
              "accuracy": float(np.mean(np.concatenate([p_on >= 0.5, p_off < 0.5]))),
              "n_on": len(on), "n_off": len(off), "by_kind": {}}
    kinds = np.array([getattr(s, "kind", "off_screen") for s in off_screen])
    for kind in sorted(set(kinds)):
        chosen = kinds == kind
        report["by_kind"][kind] = {
            "n": int(chosen.sum()),
            "auroc": auroc(np.concatenate([p_on, p_off[chosen]]),
                           np.concatenate([np.ones(len(p_on), bool), np.zeros(int(chosen.sum()), bool)])),
            "said_off_screen": float(np.mean(p_off[chosen] < 0.5))}
    return report
