"""Linear probe: which frozen audio features carry a class to a recording they were not fit on?

    python benchmarks/probe_audio.py [--assets sdk/datasets/assets] [--out benchmarks/results/audio_probe.md]

Every clip of the asset pack becomes the product's 3 s, 16 kHz clip (``prepare_waveform``:
centred or tiled, min-max rescaled). Features per clip:

    vggish-logmel  mean and std over time of the VGGish log-mel (avsdk.melspec)       [128]
    soundnet/L/P   SoundNet-8 layer L in {pool5, conv6, conv7}, pooled P over time  [256..2048]
    aisfx/P        aiSFX 512-d embedding (44.1 kHz log-mel of the resampled clip)   [512, 1024]
    .../random     the same nets with seeded random weights: what the architecture alone gives

Evaluation is recording-disjoint: every recording of a class that has >= 2 recordings is held
out in turn; a multinomial logistic regression (z-scored features, L2, L-BFGS) is fit on every
clip of every other recording of all 60 classes and scores the held-out clips. Reported:
top-1 / top-5 over held-out clips, the mean over held-out recordings of their top-1, and top-1
over clips of the classes with >= 3 recordings.
"""
from __future__ import annotations

import os

# ~3000 tiny fits: one BLAS thread each is many times faster than two threads fighting over 2 cores
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.optimize
import torch

from avsdk.audio import load_audio, prepare_waveform
from avsdk.melspec import log_mel
from avsdk.models.aisfx import AisfxNet, aisfx_input, load_aisfx
from avsdk.models.soundnet import SoundNet8, load_soundnet, to_soundnet_input

LAMBDAS = (1e-4, 1e-3, 1e-2)  # L2 weight on the mean cross-entropy; 1e-3 is the headline
HEADLINE = 1e-3


def load_clips(assets: Path):
    manifest = json.loads((assets / "manifest.json").read_text())
    clips = []
    for label, entry in sorted(manifest["classes"].items()):
        for clip in entry["clips"]:
            audio, rate = load_audio(assets / clip)
            clips.append((label, manifest["files"][clip]["recording"], prepare_waveform(audio, rate)))
    return clips


def pooled(x: torch.Tensor, how: str) -> np.ndarray:
    """[C, T] -> [C] or [2C] by mean / max / both over time."""
    parts = {"mean": [x.mean(1)], "max": [x.amax(1)], "meanmax": [x.mean(1), x.amax(1)]}[how]
    return torch.cat(parts).numpy()


@torch.no_grad()
def extract(clips) -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    nets = {"": (load_soundnet(), load_aisfx()), "/random": (SoundNet8().eval(), AisfxNet().eval())}
    feats = defaultdict(list)
    for _, _, clip in clips:
        mel = log_mel(clip)
        feats["vggish-logmel"].append(np.concatenate([mel.mean(0), mel.std(0)]))
        wave = torch.from_numpy(to_soundnet_input(clip, 16_000))[None]
        spec = torch.from_numpy(aisfx_input(clip, 16_000))[None, None]
        for suffix, (sound, sfx) in nets.items():
            for layer in ("pool5", "conv6", "conv7"):
                fmap = sound.feature_map(wave, layer)[0]
                for how in ("mean", "max", "meanmax") if not suffix else ("meanmax",):
                    feats[f"soundnet/{layer}/{how}{suffix}"].append(pooled(fmap, how))
            fmap = sfx.feature_map(spec)[0]
            for how in ("max", "mean", "meanmax") if not suffix else ("max",):
                feats[f"aisfx/{how}{suffix}"].append(pooled(fmap, how))
    return {name: np.stack(rows).astype(np.float64) for name, rows in feats.items()}


def fit_predict(x_train, y_train, x_test, classes: int, lam: float) -> np.ndarray:
    """Multinomial logistic regression with an L2 penalty; class scores [N_test, classes].

    Solved in the dual (W = X^T A, by the representer theorem): with ~170 clips and up to 2048
    dims the [N, N] kernel makes every fit cost the same whatever the feature size.
    """
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xs, xq = (x_train - mean) / std, (x_test - mean) / std
    kernel = xs @ xs.T / xs.shape[1]  # divided by D so that lam means the same per dim
    cross = xq @ xs.T / xs.shape[1]
    onehot = np.eye(classes)[y_train]
    n = len(xs)

    def loss_and_grad(params):
        alpha, bias = params[:-classes].reshape(n, classes), params[-classes:]
        k_alpha = kernel @ alpha
        logits = k_alpha + bias
        logits -= logits.max(1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(1, keepdims=True)
        loss = -np.log(prob[np.arange(n), y_train] + 1e-300).mean() + lam * (alpha * k_alpha).sum()
        dlogits = (prob - onehot) / n
        grad_alpha = kernel @ (dlogits + 2.0 * lam * alpha)  # kernel is symmetric
        return loss, np.concatenate([grad_alpha.ravel(), dlogits.sum(0)])

    start = np.zeros(n * classes + classes)
    params = scipy.optimize.minimize(loss_and_grad, start, jac=True, method="L-BFGS-B",
                                     options={"maxiter": 500, "gtol": 1e-8}).x
    return cross @ params[:-classes].reshape(n, classes) + params[-classes:]


def evaluate(features: np.ndarray, labels, recordings, lam: float) -> dict[str, float]:
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    recs = np.array(recordings)
    per_class = defaultdict(set)
    for label, rec in zip(labels, recordings):
        per_class[label].add(rec)
    held = sorted({rec for label, rec in zip(labels, recordings) if len(per_class[label]) >= 2})
    top1, top5, per_rec, many = [], [], [], []
    for rec in held:
        test = recs == rec
        scores = fit_predict(features[~test], y[~test], features[test], len(names), lam)
        rank = (scores > scores[np.arange(len(scores)), y[test]][:, None]).sum(1)
        top1 += list(rank == 0)
        top5 += list(rank < 5)
        per_rec.append(np.mean(rank == 0))
        if len(per_class[labels[int(np.flatnonzero(test)[0])]]) >= 3:
            many += list(rank == 0)
    return {"top1": np.mean(top1), "top5": np.mean(top5), "rec_top1": np.mean(per_rec),
            "many_top1": np.mean(many), "clips": len(top1), "recordings": len(held), "many_clips": len(many)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path("sdk/datasets/assets"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/audio_probe.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    clips = load_clips(args.assets)
    labels, recordings = [c[0] for c in clips], [c[1] for c in clips]
    features = extract(clips)
    rows = []
    for name, values in features.items():
        results = {lam: evaluate(values, labels, recordings, lam) for lam in LAMBDAS}
        rows.append((name, values.shape[1], results))
        head = results[HEADLINE]
        print(f"{name:32s} d={values.shape[1]:5d} top1={head['top1']:.3f} top5={head['top5']:.3f}", flush=True)
    head = rows[0][2][HEADLINE]
    lines = [
        "# Audio linear probe: recording-disjoint transfer of frozen features",
        "",
        f"Command: `python benchmarks/probe_audio.py --assets {args.assets} --out {args.out}`"
        f" ({time.time() - start:.0f} s on 2 CPU cores)",
        "",
        f"{len(clips)} clips, {len(set(labels))} classes; {head['recordings']} held-out recordings "
        f"({head['clips']} clips) of the classes with >= 2 recordings, each held out in turn; the "
        "probe is fit on every clip of every other recording of all classes (chance top-1 = 1/60). "
        f"`>=3 rec top-1`: the {head['many_clips']} held-out clips of the 7 classes with >= 3 "
        f"recordings. `rec top-1`: mean over held-out recordings. L2 weight {HEADLINE} on the "
        f"mean cross-entropy (headline); top-1 at {LAMBDAS[0]} / {LAMBDAS[2]} in the last column. "
        "Clips are the product's 3 s 16 kHz clips (centred or tiled, min-max rescaled); "
        "`/random` rows are the same nets with seeded random weights.",
        "",
        "| features | dim | top-1 | top-5 | rec top-1 | >=3 rec top-1 | top-1 at other L2 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, dim, results in rows:
        r = results[HEADLINE]
        others = " / ".join(f"{results[lam]['top1']:.3f}" for lam in LAMBDAS if lam != HEADLINE)
        lines.append(f"| {name} | {dim} | {r['top1']:.3f} | {r['top5']:.3f} | {r['rec_top1']:.3f} "
                     f"| {r['many_top1']:.3f} | {others} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
