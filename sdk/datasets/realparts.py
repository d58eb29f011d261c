"""The real-parts localization benchmark: real cut-outs with their own recorded sounds.

    from avsdk.datasets import BenchmarkConfig, build_benchmark, load_split
    root = build_benchmark("data/realparts")            # ~1 minute on 2 cores, then cached
    for sample in load_split(root, "test"): ...

Each sample pastes a sounding Tux Paint cut-out (25-55 % of the side) and a silent
distractor of another class, never overlapping it, onto a background photo, and pairs the
224 x 224 image with 3 s of that object's own recording. The alpha channels give exact masks
and boxes. Splits: train / val / test use disjoint backgrounds and disjoint sound clips
(whole recordings where a class has three or more); "unheard" holds classes that never
appear in train / val / test, neither as sounding object nor as distractor.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from ..errors import bad_input
from . import compose

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
SPLITS = ("train", "val", "test", "unheard")
SAMPLE_RATE = 16000
MIN_HEARD_CLIPS = 3  # one clip each for val and test, at least one for train
INDEX_NAME = "index.json"
INDEX_FORMAT = "avsdk.realparts"
INDEX_VERSION = 1


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to build. Same config + same asset pack -> byte-identical benchmark."""

    seed: int = 0
    train: int = 1600  # samples per split
    val: int = 200
    test: int = 300
    unheard: int = 200
    image_size: int = 224
    min_scale: float = 0.25  # longest side of each cut-out, as a fraction of the image side
    max_scale: float = 0.55
    clip_seconds: float = 3.0
    # Classes with fewer than MIN_HEARD_CLIPS clips are always unheard (their audio cannot be
    # split three ways). An int holds out that many more, drawn by the seed; a tuple of
    # labels holds out exactly those more.
    unheard_classes: int | tuple[str, ...] = 3
    background_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25)  # train, val, test
    image_format: str = "jpg"  # "jpg" (quality 95) or "png"

    def __post_init__(self):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise bad_input("seed", "an int >= 0", self.seed)
        for split in SPLITS:
            count = getattr(self, split)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise bad_input(split, "an int >= 1 (samples in that split)", count)
        if not isinstance(self.image_size, int) or not 32 <= self.image_size <= 4096:
            raise bad_input("image_size", "an int in [32, 4096]", self.image_size)
        if not (0.05 <= self.min_scale <= 0.5 and self.min_scale <= self.max_scale <= 0.6):
            raise bad_input("min_scale, max_scale", "0.05 <= min_scale <= 0.5 and "
                            "min_scale <= max_scale <= 0.6 (the distractor must fit beside "
                            "the sounding object)", (self.min_scale, self.max_scale))
        if not 0.5 <= self.clip_seconds <= 30:
            raise bad_input("clip_seconds", "a number of seconds in [0.5, 30]", self.clip_seconds)
        held = self.unheard_classes
        if isinstance(held, bool) or not (
            (isinstance(held, int) and held >= 0)
            or (isinstance(held, tuple) and all(isinstance(x, str) for x in held))
        ):
            raise bad_input("unheard_classes", "an int >= 0 or a tuple of class labels", held)
        fractions = self.background_fractions
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise bad_input("background_fractions", "three positive fractions summing to 1", fractions)
        if self.image_format not in ("jpg", "png"):
            raise bad_input("image_format", '"jpg" or "png"', self.image_format)


@dataclass(frozen=True)
class Sample:
    """One benchmark sample. Boxes are (x0, y0, x1, y1) in image pixels, end-exclusive;
    masks are PNG mode L with 255 on the object."""

    id: str
    split: str
    label: str
    image: Path  # RGB [image_size, image_size]
    audio: Path  # 16 kHz mono wav, clip_seconds long
    box: tuple[int, int, int, int]
    mask: Path
    distractor_label: str
    distractor_box: tuple[int, int, int, int]
    distractor_mask: Path
    background: str
    clip: str


# ----------------------------------------------------------------------------- assets
def read_manifest(assets: str | os.PathLike | None = None) -> tuple[Path, dict, str]:
    """(folder, manifest dict, sha256 of manifest.json) of an asset pack (default: committed)."""
    folder = Path(assets) if assets is not None else ASSETS_DIR
    path = folder / "manifest.json"
    if not path.is_file():
        raise bad_input("assets", "a folder holding an avsdk asset pack (manifest.json)", str(folder))
    blob = path.read_bytes()
    return folder, json.loads(blob), hashlib.sha256(blob).hexdigest()


def plan_splits(manifest: dict, config: BenchmarkConfig) -> dict:
    """Which classes, backgrounds and clips each split may use (deterministic in the seed)."""
    rng = np.random.default_rng([config.seed, 0])
    classes = manifest["classes"]
    labels = sorted(classes)
    rich = [c for c in labels if len(classes[c]["clips"]) >= MIN_HEARD_CLIPS]
    if isinstance(config.unheard_classes, tuple):
        unknown = sorted(set(config.unheard_classes) - set(labels))
        if unknown:
            raise bad_input("unheard_classes", f"labels of the asset pack ({', '.join(labels)})", unknown)
        extra = set(config.unheard_classes)
    else:
        if config.unheard_classes > len(rich) - 2:
            raise bad_input("unheard_classes", f"at most {len(rich) - 2} (classes with enough clips, "
                            "keeping two heard)", config.unheard_classes)
        extra = set(rng.permutation(rich)[: config.unheard_classes].tolist())
    heard = [c for c in rich if c not in extra]
    unheard = [c for c in labels if c not in heard]
    if len(heard) < 2 or len(unheard) < 2:
        raise bad_input("unheard_classes", "a choice leaving >= 2 heard and >= 2 unheard classes",
                        config.unheard_classes)

    backgrounds = sorted(manifest["backgrounds"])
    if len(backgrounds) < 3:
        raise bad_input("assets", ">= 3 background photos", len(backgrounds), described=True)
    order = rng.permutation(len(backgrounds))
    n_val = max(1, round(config.background_fractions[1] * len(backgrounds)))
    n_test = max(1, round(config.background_fractions[2] * len(backgrounds)))
    n_train = len(backgrounds) - n_val - n_test
    if n_train < 1:
        raise bad_input("background_fractions", "fractions leaving >= 1 training background",
                        config.background_fractions)
    pick = lambda idx: sorted(backgrounds[i] for i in idx)  # noqa: E731
    split_backgrounds = {"train": pick(order[:n_train]), "val": pick(order[n_train : n_train + n_val]),
                         "test": pick(order[n_train + n_val :])}
    split_backgrounds["unheard"] = split_backgrounds["test"]  # another held-out evaluation set

    clips = {split: {} for split in SPLITS}
    for label in heard:
        for split, chosen in _assign_clips(manifest, label, rng).items():
            clips[split][label] = chosen
    for label in unheard:
        clips["unheard"][label] = sorted(classes[label]["clips"])
    return {"heard": heard, "unheard": unheard, "backgrounds": split_backgrounds, "clips": clips}


def _assign_clips(manifest: dict, label: str, rng: np.random.Generator) -> dict[str, list[str]]:
    """Disjoint clips for train / val / test: whole recordings when there are >= 3 of them
    (the largest goes to train), otherwise single segments of the same recording(s)."""
    clips = sorted(manifest["classes"][label]["clips"])
    recordings: dict[str, list[str]] = {}
    for clip in clips:
        recordings.setdefault(manifest["files"][clip]["recording"], []).append(clip)
    if len(recordings) >= 3:
        names = sorted(recordings, key=lambda r: (-len(recordings[r]), r))
        rest = [names[0]] + [names[i] for i in rng.permutation(range(1, len(names)))]
        groups = {"val": recordings[rest[1]], "test": recordings[rest[2]],
                  "train": [c for r in [rest[0]] + rest[3:] for c in recordings[r]]}
    else:
        order = [clips[i] for i in rng.permutation(len(clips))]
        groups = {"val": [order[0]], "test": [order[1]], "train": order[2:]}
    return {split: sorted(chosen) for split, chosen in groups.items()}


# ----------------------------------------------------------------------------- build
def build_benchmark(out_dir: str | os.PathLike, config: BenchmarkConfig = BenchmarkConfig(),
                    assets: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Build the benchmark under ``out_dir`` and return that folder.

    Does nothing when ``out_dir/index.json`` already records the same config and asset
    manifest. The index is written last, so an interrupted build is redone in full.

    Raises:
        InputError: bad config or asset folder.
    """
    if not isinstance(config, BenchmarkConfig):
        raise bad_input("config", "a BenchmarkConfig", config)
    root = Path(out_dir)
    folder, manifest, manifest_hash = read_manifest(assets)
    stamp = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "config": _config_json(config),
             "assets_manifest_sha256": manifest_hash}
    index_path = root / INDEX_NAME
    if index_path.is_file():
        old = _read_index(index_path) or {}  # a damaged index: build again
        if all(old.get(k) == v for k, v in stamp.items()):
            return root
        index_path.unlink()
    plan = plan_splits(manifest, config)
    from tqdm import tqdm

    cache = _AssetCache(folder)
    splits = {}
    total = sum(getattr(config, s) for s in SPLITS)
    with tqdm(total=total, desc="real-parts benchmark", disable=not progress, unit="sample") as bar:
        for code, split in enumerate(SPLITS):
            split_dir = root / split
            for sub in ("images", "masks", "audio"):
                (split_dir / sub).mkdir(parents=True, exist_ok=True)
            samples = []
            labels = _balanced_labels(plan, split, getattr(config, split), config.seed, code)
            for i, label in enumerate(labels):
                rng = np.random.default_rng([config.seed, 1 + code, i])
                try:
                    samples.append(_make_sample(root, split, i, label, plan, manifest, cache, config, rng))
                except compose.EmptyCutout as exc:  # no index is written: the build is not kept
                    raise bad_input("image_size", "a side at which every cut-out keeps a visible pixel "
                                    "(the evaluation's 224 does)", f"{config.image_size} ({exc}, "
                                    f"{split} sample {i}, {label})", described=True) from None
                bar.update(1)
            splits[split] = {"backgrounds": plan["backgrounds"][split],
                             "clips": sorted(c for cs in plan["clips"][split].values() for c in cs),
                             "samples": samples}
    index = {**stamp, "classes": {"heard": plan["heard"], "unheard": plan["unheard"]}, "splits": splits}
    tmp = index_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, index_path)
    return root


def _config_json(config: BenchmarkConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists, as stored


def _balanced_labels(plan: dict, split: str, count: int, seed: int, code: int) -> list[str]:
    classes = plan["unheard"] if split == "unheard" else plan["heard"]
    rng = np.random.default_rng([seed, 100 + code])
    labels = [classes[i % len(classes)] for i in range(count)]
    return [labels[i] for i in rng.permutation(count)]


class _AssetCache:
    """Decoded cut-outs, backgrounds and clips, loaded once per build."""

    def __init__(self, folder: Path):
        self.folder, self._images, self._audio = folder, {}, {}

    def image(self, rel: str, mode: str) -> Image.Image:
        if rel not in self._images:
            with Image.open(self.folder / rel) as im:
                self._images[rel] = im.convert(mode)
        return self._images[rel]

    def audio(self, rel: str) -> np.ndarray:
        if rel not in self._audio:
            data, rate = sf.read(self.folder / rel, dtype="float32", always_2d=True)
            if rate != SAMPLE_RATE:
                raise ValueError(f"{rel}: asset clips must be {SAMPLE_RATE} Hz, found {rate}")
            self._audio[rel] = data.mean(axis=1)
        return self._audio[rel]


def _make_sample(root: Path, split: str, i: int, label: str, plan: dict, manifest: dict,
                 cache: _AssetCache, config: BenchmarkConfig, rng: np.random.Generator) -> dict:
    size = config.image_size
    pool = plan["unheard"] if split == "unheard" else plan["heard"]
    others = [c for c in pool if c != label]
    distractor_label = others[int(rng.integers(len(others)))]
    background = plan["backgrounds"][split][int(rng.integers(len(plan["backgrounds"][split])))]
    clips = plan["clips"][split][label]
    clip = clips[int(rng.integers(len(clips)))]

    frame = compose.background_crop(cache.image(background, "RGB"), size, rng)
    cutouts = []
    for name in (label, distractor_label):
        options = manifest["classes"][name]["cutouts"]
        cutouts.append(cache.image(options[int(rng.integers(len(options)))], "RGBA"))
    for _ in range(1000):  # redraw sizes until the two can sit side by side without overlapping
        scaled = [compose.scaled_cutout(c, round(size * rng.uniform(config.min_scale, config.max_scale)),
                                        flip=bool(rng.integers(2))) for c in cutouts]
        corners = compose.place_pair(scaled[0].size, scaled[1].size, size, rng)
        if corners is not None:
            break
    else:
        raise RuntimeError(f"{split}-{i}: found no non-overlapping placement in 1000 draws")
    sounding = compose.paste(frame, scaled[0], corners[0])
    distractor = compose.paste(frame, scaled[1], corners[1])

    sample_id = f"{split}-{i:05d}"
    rel = {"image": f"{split}/images/{sample_id}.{config.image_format}",
           "mask": f"{split}/masks/{sample_id}.png",
           "distractor_mask": f"{split}/masks/{sample_id}-distractor.png",
           "audio": f"{split}/audio/{sample_id}.wav"}
    if config.image_format == "jpg":
        frame.save(root / rel["image"], quality=95)
    else:
        frame.save(root / rel["image"])
    Image.fromarray(sounding.mask.astype(np.uint8) * 255, "L").save(root / rel["mask"])
    Image.fromarray(distractor.mask.astype(np.uint8) * 255, "L").save(root / rel["distractor_mask"])
    length = int(round(config.clip_seconds * SAMPLE_RATE))
    wave = compose.audio_window(cache.audio(clip), length, SAMPLE_RATE, rng)
    sf.write(root / rel["audio"], wave, SAMPLE_RATE, subtype="PCM_16")
    return {"id": sample_id, "split": split, "label": label, "box": list(sounding.box),
            "distractor_label": distractor_label, "distractor_box": list(distractor.box),
            "background": background, "clip": clip, **rel}


# ----------------------------------------------------------------------------- load
def load_split(root: str | os.PathLike, split: str) -> list[Sample]:
    """The samples of one split of a built benchmark, in index order.

    Raises:
        InputError: unknown split, or ``root`` holds no built benchmark.
    """
    if split not in SPLITS:
        raise bad_input("split", f"one of {SPLITS}", split)
    root = Path(root)
    index_path = root / INDEX_NAME
    if not index_path.is_file():
        raise bad_input("root", f"a folder built by build_benchmark (with {INDEX_NAME})", str(root))
    index = _read_index(index_path)
    if index is None or index.get("format") != INDEX_FORMAT or index.get("version") != INDEX_VERSION:
        found = "an unreadable or damaged index" if index is None else (
            f"format {index.get('format')!r}, version {index.get('version')!r}")
        raise bad_input("root", f"a benchmark index of format {INDEX_FORMAT!r}, version {INDEX_VERSION} "
                        "(rebuild it with build_benchmark)", f"{index_path}: {found}", described=True)
    try:
        return [
            Sample(id=s["id"], split=s["split"], label=s["label"], image=root / s["image"],
                   audio=root / s["audio"], box=tuple(s["box"]), mask=root / s["mask"],
                   distractor_label=s["distractor_label"], distractor_box=tuple(s["distractor_box"]),
                   distractor_mask=root / s["distractor_mask"], background=s["background"], clip=s["clip"])
            for s in index["splits"][split]["samples"]
        ]
    except (KeyError, TypeError) as exc:
        raise bad_input("root", "a complete benchmark index (rebuild it with build_benchmark)",
                        f"{index_path}: no {exc} entry", described=True) from None


def _read_index(path: Path) -> dict | None:
    """The index's JSON object, or None if it cannot be read as one."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return index if isinstance(index, dict) else None
