"""Score a Localizer on a published benchmark (Flickr-SoundNet test, VGG-SS) by its protocol.

    bench = load_published("flickr", "Datasets/SoundNet_Flickr")     # avsdk.datasets.published
    report = evaluate_published(Localizer.load("model.onnx"), bench)
    print(format_report(report))      # model, all-ones map, centre box, under both rules
    report.to_dict()                  # the summary, one row per image, every skipped pair

The protocol is docs/method.md, "Evaluation": the ground truth at 224x224 from the XML or JSON
boxes (avsdk.metrics), the raw map resized bilinearly to 224x224, min-max normalised and
binarised, one cIoU per image, then cIoU@0.5 and AUC. Both binarisation rules are computed.
PROTOCOL_RULE is the one the reference test code applies to both benchmarks (zjsong/SSPL and
zjsong/SACL ``test.py``: ``eval_cal_ciou(..., thres=0.5)``), under which the published SSPL and
SACL figures were measured; the top-50 % rule is LVS's and EZ-VSL's (EZ-VSL's VGG-SS figure).
Inputs are made by avsdk.preprocess with the model's own preprocessing: no torch needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from . import metrics
from .datasets.published import (SAMPLE_RATE, Benchmark, Skipped, Unusable, error_detail, format_skips,
                                 read_pair)
from .errors import InputError, bad_input
from .evaluation import BASELINES, RULE_TITLES, RuleScores, markdown_table

PROTOCOL_RULE = {"flickr": "value", "vggss": "value"}

# docs/method.md, "Published numbers": (method, cIoU@0.5, AUC)
PUBLISHED = {
    "flickr": (("SACL, released weights, trained on Flickr 10k", 0.815, 0.623),
               ("SACL, released weights, trained on Flickr 144k", 0.851, 0.623),
               ("SSPL, paper, trained on Flickr 144k", 0.759, 0.610)),
    "vggss": (("SACL, released weights, trained on VGG-Sound 10k", 0.360, 0.397),
              ("SACL, released weights, trained on VGG-Sound 144k", 0.380, 0.400),
              ("EZ-VSL, trained on VGG-Sound 144k (top 50 % rule)", 0.389, 0.395)),
}


@dataclass(frozen=True)
class PublishedReport:
    """Per-image cIoUs of the model and the baselines on the pairs that could be read."""

    benchmark: Benchmark
    ids: tuple[str, ...]  # the scored pairs, in test-list order
    cious: Mapping[str, Mapping[str, tuple[float, ...]]]  # method -> rule -> one cIoU per id
    skipped: tuple[Skipped, ...]  # the listing's skips and the pairs that could not be read, in list order

    @property
    def rule(self) -> str:
        return PROTOCOL_RULE[self.benchmark.name]

    def scores(self, method: str) -> dict[str, RuleScores]:
        return {rule: RuleScores(values, metrics.ciou_at(values), metrics.auc(values))
                for rule, values in self.cious[method].items()}

    def to_dict(self) -> dict:
        bench = self.benchmark
        return {
            "benchmark": bench.name, "root": str(bench.root), "layout": bench.layout,
            "test_list": str(bench.test_list), "listed": bench.listed, "scored": len(self.ids),
            "rule": self.rule,
            "summary": {method: {rule: {"ciou_at_0.5": s.ciou_at_05, "auc": s.auc}
                                 for rule, s in self.scores(method).items()} for method in self.cious},
            "images": [{"id": id_, **{method: {rule: values[i] for rule, values in by_rule.items()}
                                      for method, by_rule in self.cious.items()}}
                       for i, id_ in enumerate(self.ids)],
            "skipped": [{"id": s.id, "reason": s.reason, "detail": s.detail} for s in self.skipped],
            "published": [{"method": m, "ciou_at_0.5": c, "auc": a} for m, c, a in PUBLISHED[bench.name]],
        }


def evaluate_published(localizer, benchmark: Benchmark, batch_size: int = 16, limit: int | None = None,
                       progress: bool = False) -> PublishedReport:
    """Run ``localizer`` on the pairs of ``benchmark`` and score its maps and the baselines'.

    Args:
        localizer: an avsdk.Localizer (its ``predict``, ``preprocessing`` and ``frontend``).
        benchmark: from avsdk.datasets.published.load_published.
        batch_size: pairs per call of the model.
        limit: score only the first ``limit`` listed pairs that have their files (None: all).
    Raises:
        InputError: a bad batch size or limit; ``root`` when no pair could be read.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise bad_input("batch_size", "an int >= 1", batch_size)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise bad_input("limit", "an int >= 1 (None: all pairs)", limit)
    from .preprocess import model_inputs

    items = benchmark.items[:limit]
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=benchmark.name, unit="pair", leave=False)
    preprocessing = localizer.preprocessing
    skipped = list(benchmark.skipped)
    ids: list[str] = []
    cious: dict[str, dict[str, list[float]]] = {m: {r: [] for r in metrics.RULES} for m in ["model", *BASELINES]}
    baselines = {name: metrics.localization_map(make()) for name, make in BASELINES.items()}
    batch: list = []

    def score(item, heatmap, method):
        for rule in metrics.RULES:
            cious[method][rule].append(metrics.ciou(metrics.binarize(heatmap, rule), item.ground_truth))

    def flush():
        frames = np.stack([x.frame for _, x in batch])
        audio = np.stack([x.audio for _, x in batch])
        for (item, _), raw in zip(batch, localizer.predict(frames, audio)):
            ids.append(item.id)
            score(item, metrics.localization_map(raw), "model")
            for name, heatmap in baselines.items():
                score(item, heatmap, name)
        batch.clear()

    for item in items:
        try:
            pair = read_pair(benchmark, item)
            inputs = model_inputs(pair.frame, pair.audio, SAMPLE_RATE, preprocessing,
                                  frontend=localizer.frontend, max_pixels=None)
        except Unusable as exc:
            skipped.append(Skipped(item.id, exc.reason, exc.detail))
            continue
        except InputError as exc:  # what model_inputs refuses (read_pair checked the same files)
            reason = "unreadable frame" if exc.argument == "frame" else "unreadable audio"
            skipped.append(Skipped(item.id, reason, error_detail(exc)))
            continue
        batch.append((item, inputs))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not ids:
        raise bad_input("root", f"{benchmark.title} with at least one usable pair",
                        f"{benchmark.root}: " + format_skips(skipped, benchmark.listed).splitlines()[0],
                        described=True)
    frozen = {m: {r: tuple(v) for r, v in by_rule.items()} for m, by_rule in cious.items()}
    return PublishedReport(benchmark, tuple(ids), frozen, benchmark.in_list_order(skipped))


def format_report(report: PublishedReport, examples: int = 3) -> str:
    """The table (model and baselines under both rules), the published figures, the skips."""
    bench = report.benchmark
    header = ["method", "n"]
    for rule in metrics.RULES:
        mark = " *" if rule == report.rule else ""
        header += [f"cIoU@0.5 ({RULE_TITLES[rule]}){mark}", f"AUC ({RULE_TITLES[rule]}){mark}"]
    rows = []
    for method in report.cious:
        scores = report.scores(method)
        row = [method, str(len(report.ids))]
        for rule in metrics.RULES:
            row += [f"{scores[rule].ciou_at_05:.3f}", f"{scores[rule].auc:.3f}"]
        rows.append(row)
    return "\n".join([
        f"{bench.title}: {len(report.ids)} of {bench.listed} listed pairs scored",
        markdown_table(header, rows),
        f"* the protocol's rule ({RULE_TITLES[report.rule]}), under which the published SSPL/SACL figures "
        "were measured",
        "published figures, cIoU@0.5 / AUC (docs/method.md):",
        *(f"  {method}: {ciou:.3f} / {auc:.3f}" for method, ciou, auc in PUBLISHED[bench.name]),
        format_skips(report.skipped, bench.listed, examples),
    ])
