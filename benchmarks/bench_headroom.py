"""What limits a trained model: what it hears, or where it looks?

    python benchmarks/bench_headroom.py --checkpoint runs/main/train/best.pt --bench runs/main/benchmark

Scores the model's own maps on a split, then the same visual maps with the audio vector
replaced by its class prototype: the mean of the model's audio vectors over the train clips
of the sample's class (a perfect audio classifier inside the model's own embedding space).
The gap between the two rows is what better hearing could still give; the prototype row
itself is the ceiling of the visual side as trained. It also prints how often the
nearest prototype (cosine) names the right class: audio classification of recordings the
model never heard. With --offscreen, the same two audio vectors are compared on the
visibility question: the AUROC of the raw score (the map's largest value) between the test
split's on-screen pairs and the off-screen pairs that play a heard class's recording. Writes
Markdown to --out (default: print only).
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch


def _encode(model, samples, spec, batch: int = 32):
    from avsdk.evaluation import sample_inputs

    visual, audio = [], []
    for start in range(0, len(samples), batch):
        frames, heard = zip(*(sample_inputs(s, "stretch", spec, model.config.image_size) for s in samples[start : start + batch]))
        with torch.no_grad():
            v, _, a = model.forward_features(torch.stack(frames), torch.stack(heard))
        visual.append(v)
        audio.append(a)
    return torch.cat(visual), torch.cat(audio)


def _prototypes(model, bench, train_clips: int):
    """(class names, their train prototypes [classes, C]): the mean audio vector per class."""
    from avsdk.datasets import load_split

    train = load_split(bench, "train")[:train_clips]
    _, train_audio = _encode(model, train, model.audio_spec)
    labels = np.array([s.label for s in train])
    names = sorted(set(labels))
    return names, torch.stack([train_audio[torch.from_numpy(labels == n)].mean(0) for n in names])


@functools.lru_cache(maxsize=2)
def _model_and_prototypes(checkpoint, bench, train_clips: int):
    """(model, class names, prototypes), made once per command for all its splits."""
    from avsdk.models import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    return (model, *_prototypes(model, bench, train_clips))


def headroom(checkpoint, bench, split: str = "val", train_clips: int = 800) -> dict:
    """{"model": (AUC, pointing, distractor), "prototype": (...), "audio_accuracy": float, "n": int}."""
    from avsdk.datasets import load_split
    from avsdk.evaluation import load_target, report_from_maps
    model, names, prototypes = _model_and_prototypes(checkpoint, bench, train_clips)
    samples = load_split(bench, split)
    visual, audio = _encode(model, samples, model.audio_spec)
    targets = [load_target(s) for s in samples]

    def scores(a):
        report = report_from_maps(model.similarity_map(visual, a).numpy(), targets)
        return report.rules["value"].auc, report.pointing_game, report.distractor_accuracy

    known = [names.index(s.label) for s in samples]
    nearest = (torch.nn.functional.normalize(audio, dim=1) @ torch.nn.functional.normalize(prototypes, dim=1).T)
    return {"model": scores(audio), "prototype": scores(prototypes[known]), "n": len(samples),
            "audio_accuracy": float(np.mean(nearest.argmax(1).numpy() == np.array(known))),
            "classes": len(names)}


def offscreen_headroom(checkpoint, bench, train_clips: int = 800) -> dict:
    """AUROC of the raw score (the map's largest value) telling the test split's on-screen pairs
    from the off-screen pairs that play a heard class's recording, with the model's audio
    vectors and with the class prototypes: how far better hearing could take the visibility
    answer. {"model": auroc, "prototype": auroc, "on": n, "off": {kind: n}, "by_kind": {...}}."""
    from avsdk.datasets import load_split
    from avsdk.visibility import auroc

    model, names, prototypes = _model_and_prototypes(checkpoint, bench, train_clips)
    on = load_split(bench, "test")
    off = [s for s in load_split(bench, "offscreen") if s.label in names]  # silence and noise have no class
    samples = on + off
    visual, audio = _encode(model, samples, model.audio_spec)
    known = [names.index(s.label) for s in samples]
    positive = np.array([True] * len(on) + [False] * len(off))
    kinds = np.array(["on_screen"] * len(on) + [s.kind for s in off])

    def score(a):
        return model.similarity_map(visual, a).flatten(1).amax(1).numpy()

    result = {"on": len(on), "off": {k: int((kinds == k).sum()) for k in sorted(set(kinds[~positive]))},
              "by_kind": {}}
    for row, vectors in (("model", audio), ("prototype", prototypes[known])):
        s = score(vectors)
        result[row] = auroc(s, positive)
        for kind in result["off"]:
            keep = positive | (kinds == kind)
            result["by_kind"][(row, kind)] = auroc(s[keep], positive[keep])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--splits", nargs="+", default=["val", "test"],
                        help="heard-class splits (val, test, photos): unheard classes have no train prototype")
    parser.add_argument("--offscreen", action="store_true",
                        help="also the off-screen AUROC of the raw score with either audio vector")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    lines = [f"# Headroom of {args.checkpoint}", "",
             f"`python benchmarks/bench_headroom.py --checkpoint {args.checkpoint} --bench {args.bench} "
             f"--splits {' '.join(args.splits)}{' --offscreen' if args.offscreen else ''}`", "",
             "| split | audio vector | AUC | pointing game | distractor acc. |", "|---|---|---:|---:|---:|"]
    notes = []
    for split in args.splits:
        result = headroom(args.checkpoint, args.bench, split)
        for row in ("model", "prototype"):
            auc, pointing, distractor = result[row]
            name = "the model's" if row == "model" else "its class's train prototype"
            lines.append(f"| {split} ({result['n']}) | {name} | {auc:.3f} | {pointing:.3f} | {distractor:.3f} |")
        notes.append(f"- {split}: the nearest prototype names the class of {result['audio_accuracy']:.1%} of the "
                     f"clips ({result['classes']} heard classes; chance {1 / result['classes']:.1%}).")
    if args.offscreen:
        result = offscreen_headroom(args.checkpoint, args.bench)
        kinds = list(result["off"])
        lines += ["", f"Off-screen: AUROC of the raw score, the test split's {result['on']} on-screen pairs "
                  "against the off-screen pairs that play a heard class's recording.", "",
                  "| audio vector | all | " + " | ".join(f"{k} ({result['off'][k]})" for k in kinds) + " |",
                  "|---|---:|" + "---:|" * len(kinds)]
        for row in ("model", "prototype"):
            name = "the model's" if row == "model" else "its class's train prototype"
            lines.append(f"| {name} | {result[row]:.3f} | "
                         + " | ".join(f"{result['by_kind'][(row, k)]:.3f}" for k in kinds) + " |")
    text = "\n".join(lines + [""] + notes) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
