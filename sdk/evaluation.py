"""Score a localizer on benchmark samples with the metrics of docs/method.md, "Evaluation".

    report = evaluate(predict, samples)                  # the model
    reports = {"model": report, **evaluate_baselines(samples)}
    print(format_table(reports))

``predict(frames [B, 3, 224, 224], log_mel [B, N, 1, 96, 64]) -> S [B, h, w]`` is any callable
returning the raw cosine map (a torch model's forward, an ONNX session wrapper, ...). The
ground truth of a sample is its object mask (cIoU), its box (pointing game) and its
distractor's mask (distractor accuracy); see ``avsdk.metrics`` for the definitions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from avsdk import metrics
from avsdk.errors import bad_input
from avsdk.frames import canonical_transform

Predict = Callable[[Any, Any], Any]

RULE_TITLES = {"value": ">= 0.5", "top50": "top 50%"}


@dataclass(frozen=True)
class RuleScores:
    """Scores under one binarisation rule."""

    cious: tuple[float, ...]  # per image, in sample order
    ciou_at_05: float  # fraction of images with cIoU >= 0.5
    auc: float  # area under the success curve, t = 0, 0.05, ..., 1


@dataclass(frozen=True)
class EvalReport:
    """Scores of one predictor on n images."""

    n: int
    ids: tuple[str, ...]
    rules: Mapping[str, RuleScores]  # "value" (>= 0.5) and "top50"
    pointing_game: float  # fraction of images whose heatmap peak is inside the box
    distractor_accuracy: float  # mean distractor score; NaN when no image has a distractor
    n_distractor: int  # images that have a distractor

    def to_dict(self, per_image: bool = True) -> dict:
        """Plain JSON-ready dict (per-image cIoUs included unless per_image=False)."""
        out = {
            "n": self.n,
            "pointing_game": self.pointing_game,
            "distractor_accuracy": None if math.isnan(self.distractor_accuracy) else self.distractor_accuracy,
            "n_distractor": self.n_distractor,
        }
        for rule, scores in self.rules.items():
            out[rule] = {"ciou_at_0.5": scores.ciou_at_05, "auc": scores.auc}
            if per_image:
                out[rule]["ciou"] = dict(zip(_unique(self.ids), scores.cious))
        return out


@dataclass(frozen=True)
class Target:
    """Ground truth of one image at 224x224."""

    id: str
    mask: np.ndarray  # float32 [224, 224], 1 on the sounding object
    box: tuple[int, int, int, int]  # x0, y0, x1, y1, end-exclusive
    distractor: np.ndarray | None  # float32 [224, 224] or None


def _load_mask(path, argument: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L"))
    except OSError as exc:
        raise bad_input(argument, "a readable mask PNG", f"{path!s} ({exc})", described=True) from exc
    if mask.shape != (metrics.IMAGE_SIZE, metrics.IMAGE_SIZE):
        raise bad_input(argument, "a 224x224 mask", f"{path!s} of shape {mask.shape}", described=True)
    return (mask > 127).astype(np.float32)


def load_target(sample) -> Target:
    """Ground truth of an ``avsdk.datasets.Sample`` (mask, box, distractor mask)."""
    distractor = getattr(sample, "distractor_mask", None)
    return Target(
        id=str(sample.id),
        mask=_load_mask(sample.mask, "sample.mask"),
        box=tuple(int(v) for v in sample.box),
        distractor=None if distractor is None else _load_mask(distractor, "sample.distractor_mask"),
    )


def sample_inputs(sample, transform: str = "stretch", audio=None, image_size: int = 224):
    """Model inputs of one sample as torch tensors, made by avsdk.preprocess as the Localizer
    makes them: (frame [3, image_size, image_size] float32, the graph's audio input float32:
    log_mel [N, 1, 96, 64], or the waveform [T] when ``audio`` (an avsdk.audio_input.AudioSpec)
    says so)."""
    import torch

    from avsdk.audio_input import AudioSpec
    from avsdk.preprocess import Preprocessing, model_inputs

    transform = canonical_transform(transform)  # a deprecated name's warning points at the caller
    audio = audio or AudioSpec()
    preprocessing = Preprocessing(sample_rate=audio.sample_rate, audio=audio.kind, image_size=image_size,
                                  transform=transform)
    x = model_inputs(sample.image, sample.audio, preprocessing=preprocessing, max_pixels=None)
    return torch.from_numpy(x.frame), torch.from_numpy(x.audio)


def _unique(ids) -> list[str]:
    """``ids`` with a repeated id numbered ("x", "x (2)", ...): samples pooled from several
    benchmarks share ids, and a dict keyed by them would drop rows."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i} ({seen[i]})")
    return out


def _as_numpy(maps) -> np.ndarray:
    if hasattr(maps, "detach"):
        maps = maps.detach().float().cpu().numpy()
    return np.asarray(maps, dtype=np.float32)


def report_from_maps(maps: Iterable[np.ndarray], targets: Sequence[Target]) -> EvalReport:
    """Score raw maps [h, w] (one per target, in order) against their targets."""
    cious: dict[str, list[float]] = {rule: [] for rule in metrics.RULES}
    hits, distractor_scores = [], []
    count = 0
    maps = iter(maps)
    for target, raw in zip(targets, maps):  # targets first: zip must not swallow an extra map
        count += 1
        heatmap = metrics.localization_map(_as_numpy(raw))  # torch maps too, as evaluate takes
        for rule in metrics.RULES:
            cious[rule].append(metrics.ciou(metrics.binarize(heatmap, rule), target.mask))
        hits.append(metrics.pointing_hit(heatmap, target.box))
        if target.distractor is not None:
            distractor_scores.append(metrics.distractor_score(heatmap, target.mask, target.distractor))
    if count == len(targets) and next(maps, None) is not None:
        count += 1  # more maps than targets
    if count != len(targets) or count == 0:
        raise bad_input("maps", f"one map for each of the {len(targets)} targets", f"{count} maps",
                        described=True)
    rules = {
        rule: RuleScores(tuple(values), metrics.ciou_at(values), metrics.auc(values))
        for rule, values in cious.items()
    }
    return EvalReport(
        n=count,
        ids=tuple(t.id for t in targets),
        rules=rules,
        pointing_game=float(np.mean(hits)),
        distractor_accuracy=float(np.mean(distractor_scores)) if distractor_scores else float("nan"),
        n_distractor=len(distractor_scores),
    )


def _predicted_maps(predict: Predict, samples: Sequence, batch_size: int, transform: str,
                    progress: bool, audio=None, image_size: int = 224):
    import torch

    batches = range(0, len(samples), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="evaluate", unit="batch", leave=False)
    for start in batches:
        chunk = samples[start : start + batch_size]
        frames, log_mels = zip(*(sample_inputs(s, transform, audio, image_size) for s in chunk))
        with torch.no_grad():
            out = predict(torch.stack(frames), torch.stack(log_mels))
        try:
            maps = _as_numpy(out)
        except (TypeError, ValueError) as exc:
            raise bad_input("predict", f"a callable returning maps of shape [{len(chunk)}, h, w]", out) from exc
        if maps.ndim != 3 or maps.shape[0] != len(chunk):
            raise bad_input("predict", f"a callable returning maps of shape [{len(chunk)}, h, w]", maps)
        yield from maps


def evaluate(predict: Predict, samples: Sequence, batch_size: int = 16, progress: bool = True,
             transform: str = "stretch", audio=None, image_size: int = 224) -> EvalReport:
    """Run ``predict`` over ``samples`` and score its maps.

    Args:
        predict: (frames [B, 3, 224, 224], log_mel [B, N, 1, 96, 64]) -> S [B, h, w], a torch
            tensor or numpy array of raw similarities.
        samples: ``avsdk.datasets.Sample`` objects.
        batch_size: samples per call of ``predict``.
        progress: show a tqdm bar.
        transform: the frame transform, "stretch" (the whole frame resized to S x S) or
            "centre_crop" (the centre square of the frame, resized to S x S).
        audio: the model's audio input (avsdk.audio_input.AudioSpec; None: log-mel), as a
            Localizer's ``audio``.
        image_size: side of the frames ``predict`` takes (a Localizer's ``image_size``); the
            maps are scored at the benchmark's 224x224 masks whatever their grid.
    Raises:
        InputError: no samples, a bad batch size, or predict returns the wrong shape.
    """
    if not callable(predict):
        raise bad_input("predict", "a callable (frames, log_mel) -> maps [B, h, w]", predict)
    if isinstance(samples, (str, bytes)) or not hasattr(samples, "__iter__"):
        raise bad_input("samples", "a sequence of avsdk.datasets.Sample", samples)
    samples = list(samples)
    if not samples:
        raise bad_input("samples", "at least one sample", samples)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise bad_input("batch_size", "a positive int", batch_size)
    transform = canonical_transform(transform)
    targets = [load_target(s) for s in samples]
    return report_from_maps(_predicted_maps(predict, samples, batch_size, transform, progress, audio, image_size),
                            targets)


def predicted_maps(predict: Predict, samples: Sequence, batch_size: int = 16, transform: str = "stretch",
                   audio=None, progress: bool = False, image_size: int = 224) -> np.ndarray:
    """The raw maps [n, h, w] of ``predict`` on ``samples`` (inputs as ``evaluate`` makes them);
    unlike ``evaluate`` the samples need no ground truth (e.g. off-screen pairs)."""
    transform = canonical_transform(transform)
    return np.stack(list(_predicted_maps(predict, list(samples), batch_size, transform, progress, audio,
                                         image_size)))


BASELINES = {"all-ones": metrics.all_ones_map, "centre box": metrics.centre_box_map}


def evaluate_baselines(samples: Sequence) -> dict[str, EvalReport]:
    """Reports of the trivial maps (all ones; centre box, see metrics.CENTRE_BOX) on ``samples``."""
    samples = list(samples)
    if not samples:
        raise bad_input("samples", "at least one sample", samples)
    targets = [load_target(s) for s in samples]
    return {name: report_from_maps((make() for _ in targets), targets) for name, make in BASELINES.items()}


def format_table(reports: Mapping[str, EvalReport]) -> str:
    """A Markdown table, one row per named report."""
    header = ["method", "n"]
    for rule in metrics.RULES:
        header += [f"cIoU@0.5 ({RULE_TITLES[rule]})", f"AUC ({RULE_TITLES[rule]})"]
    header += ["pointing game", "distractor acc."]
    rows = []
    for name, report in reports.items():
        row = [name, str(report.n)]
        for rule in metrics.RULES:
            row += [f"{report.rules[rule].ciou_at_05:.3f}", f"{report.rules[rule].auc:.3f}"]
        distractor = "-" if math.isnan(report.distractor_accuracy) else f"{report.distractor_accuracy:.3f}"
        row += [f"{report.pointing_game:.3f}", distractor]
        rows.append(row)
    return markdown_table(header, rows)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of strings: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule_line = "|" + "|".join(":" + "-" * (w + 1) if i == 0 else "-" * (w + 1) + ":"
                               for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule_line] + [line(r) for r in rows])
