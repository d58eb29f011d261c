"""The calibration set of INT8 quantization (avsdk.export.quantize): samples drawn from the
benchmark's train and val splits (never test or unheard, which judge the quantized model), fed
to the graph exactly as the evaluation prepares them, in batches and in passes."""
from __future__ import annotations

import os
import random
from typing import Iterable, Iterator, Sequence

import numpy as np

from avsdk.errors import bad_input
from avsdk.frames import canonical_transform

CALIBRATION_SPLITS = ("train", "val")
# --calib-size. Measured on the trained edge model, 96 samples: one pass 8.1 GB peak RSS,
# passes of 32 4.1 GB (and 12 s instead of 18); percentile scales within 0.05% of one pass.
CALIBRATION_PASS_SAMPLES = 32


def calibration_samples(root: str | os.PathLike, size: int, seed: int = 0,
                        splits: Sequence[str] = CALIBRATION_SPLITS) -> list:
    """``size`` samples drawn (seeded) from the benchmark's train and val splits.

    Raises:
        InputError: a split other than train/val is asked for (the test and unheard splits
            judge the quantized model and must not shape it), or there are too few samples.
    """
    bad = [s for s in splits if s not in CALIBRATION_SPLITS]
    if bad or not splits:
        raise bad_input("splits", f"a subset of {CALIBRATION_SPLITS} (never the test split)", list(splits))
    if not isinstance(size, int) or size < 1:
        raise bad_input("size", "an int >= 1", size)
    from avsdk.datasets import load_split

    pool = [sample for split in splits for sample in load_split(root, split)]
    if len(pool) < size:
        raise bad_input("size", f"at most {len(pool)} (the samples in {list(splits)})", size)
    random.Random(seed).shuffle(pool)
    return pool[:size]


def sample_feed(sample, transform: str = "stretch", audio=None, image_size: int = 224) -> dict:
    """One benchmark sample as an ONNX Runtime feed (graph input name -> array): frame
    [1, 3, S, S] (S = ``image_size``) and log_mel [1, N, 1, 96, 64] (or "waveform" [1, T] for a
    waveform ``audio`` spec), float32, prepared exactly as the evaluation prepares them
    (``avsdk.evaluation.sample_inputs``)."""
    from avsdk.audio_input import AudioSpec
    from avsdk.evaluation import sample_inputs

    transform = canonical_transform(transform)
    frame, heard = sample_inputs(sample, transform, audio, image_size)
    return {
        "frame": np.ascontiguousarray(np.asarray(frame, dtype=np.float32)[None]),
        (audio or AudioSpec()).kind: np.ascontiguousarray(np.asarray(heard, dtype=np.float32)[None]),  # graph input name
    }


def calibration_inputs(root: str | os.PathLike, size: int, seed: int = 0,
                       transform: str = "stretch", progress: bool = True, audio=None, image_size: int = 224) -> list:
    """Graph inputs of ``calibration_samples(root, size, seed)``, loaded with a progress bar;
    ``audio`` is the model's avsdk.audio_input.AudioSpec (None: log-mel), ``image_size`` its
    frame side (the manifest's preprocessing.image_size), ``transform`` its frame transform
    ("stretch" or "centre_crop", the manifest's preprocessing.transform)."""
    transform = canonical_transform(transform)
    samples = calibration_samples(root, size, seed)
    if progress:
        from tqdm import tqdm

        samples = tqdm(samples, desc="calibration samples", unit="sample", leave=False)
    return [sample_feed(s, transform, audio, image_size) for s in samples]


def batched(items: Iterable[dict], batch_size: int) -> Iterator[dict]:
    """Concatenate input dicts along the batch axis, ``batch_size`` at a time."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == batch_size:
            yield {k: np.concatenate([c[k] for c in chunk]) for k in chunk[0]}
            chunk = []
    if chunk:
        yield {k: np.concatenate([c[k] for c in chunk]) for k in chunk[0]}


def batches_per_pass(n_batches: int, batch_size: int, pass_samples: int) -> int:
    """The largest divisor of ``n_batches`` holding at most ``pass_samples`` samples (>= 1):
    ONNX Runtime runs the calibration in passes of that many batches (all the same size)."""
    most = max(1, pass_samples // batch_size)
    return max(d for d in range(1, min(most, n_batches) + 1) if n_batches % d == 0)
