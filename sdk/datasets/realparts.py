"""The real-parts localization benchmark: real cut-outs with their own recorded sounds.

    from avsdk.datasets import BenchmarkConfig, build_benchmark, load_split
    root = build_benchmark("data/realparts")            # ~1 minute on 2 cores, then cached
    for sample in load_split(root, "test"): ...

On-screen splits (train / val / test / unheard): each sample pastes a sounding cut-out
(25-55 % of the side) and a silent distractor of another class, never overlapping it, onto a
background photo, and pairs the 224 x 224 image with 3 s of that object's own recording. The
alpha channels give exact masks and boxes.

What each split claims (checked from index.json by the tests):

* A class is *heard* only if the pack holds >= 3 independent recordings and >= 2 looks
  (distinct cut-outs) of it; every other class is *unheard*.
* ``test`` uses recordings and looks (of the sounding object and of the distractor) that no
  train or val sample uses: not other segments of the same recording, not the same cut-out.
* ``val`` uses recordings that train does not use. Its looks are its own where a class has
  >= 3 looks; a class with only 2 looks lends its train look(s) to val (listed under
  ``val_shares_train_looks`` in the index), as test needs the other one.
* train, val and test draw from disjoint background photos.
* ``unheard`` holds classes that never appear in train / val / test / offscreen, neither as
  sounding object nor as distractor, on the test backgrounds.
* ``offscreen``: the source of the sound is NOT in the picture. The picture is composed like
  test (test backgrounds, test looks of heard classes); the audio is a test recording of a
  heard class that is not among the pictured objects. About half the samples show two
  objects of other classes, a quarter one, a quarter none; ``offscreen_synthetic`` of them
  (default 10 %) instead play synthetic "silence" (white noise at -60 dBFS RMS) or "noise"
  (white, pink or brown at a random level), labelled as such.
* ``photos``: real photos (not composed) of heard classes, with boxes drawn by hand around
  every animal of the class (the mask is the union of the boxes, ``box`` the box around them
  all), each paired with a window of a test recording of its class. No photo is used by any
  other split. The pack holds few of them: the split cycles over them with other windows of
  the sound. Like most photos (and Flickr-SoundNet), they frame the animal large and central,
  so the centre box is a strong baseline there.
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
SPLITS = ("train", "val", "test", "unheard", "offscreen", "photos")
ON_SCREEN_SPLITS = ("train", "val", "test", "unheard", "photos")  # a sounding object in every picture
SAMPLE_RATE = 16000
MIN_HEARD_RECORDINGS = 3  # one each for val and test, at least one for train
MIN_HEARD_LOOKS = 2  # one for test, at least one for train (and val)
INDEX_NAME = "index.json"
INDEX_FORMAT = "avsdk.realparts"
INDEX_VERSION = 3
ON_SCREEN_KIND = "on_screen"
# offscreen kinds: the first three play a heard class's test recording, the last two synthetic noise
OFFSCREEN_KINDS = ("two_objects", "one_object", "no_object", "silence", "noise")
SILENCE_DBFS = -60.0  # RMS of the "silence" clips (white noise)
NOISE_DBFS = (-40.0, -10.0)  # RMS range of the "noise" clips
NOISE_COLOURS = ("white", "pink", "brown")


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
    # Classes with fewer than MIN_HEARD_RECORDINGS recordings or MIN_HEARD_LOOKS looks are
    # always unheard. An int holds out that many more, drawn by the seed; a tuple of labels
    # holds out exactly those more.
    unheard_classes: int | tuple[str, ...] = 0
    background_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25)  # train, val, test
    image_format: str = "jpg"  # "jpg" (quality 95) or "png"
    offscreen: int = 200  # samples whose sound source is not in the picture
    offscreen_synthetic: float = 0.1  # fraction of them playing "silence" or "noise" (half each)
    photos: int = 60  # samples pairing the pack's real photos of heard classes with test recordings

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
        synthetic = self.offscreen_synthetic
        if isinstance(synthetic, bool) or not isinstance(synthetic, (int, float)) or not 0 <= synthetic <= 1:
            raise bad_input("offscreen_synthetic", "a fraction in [0, 1] (of the offscreen samples)", synthetic)


@dataclass(frozen=True)
class Sample:
    """One benchmark sample. Boxes are (x0, y0, x1, y1) in image pixels, end-exclusive;
    masks are PNG mode L with 255 on the object.

    On-screen splits (train, val, test, unheard): ``label`` / ``box`` / ``mask`` are the
    sounding object, ``distractor_*`` the silent object of another class; ``on_screen`` is
    True and ``kind`` is "on_screen".

    ``offscreen``: ``on_screen`` is False, ``box`` and ``mask`` are None (nothing in the
    picture makes the sound); ``label`` is the class heard, or "silence" / "noise" for the
    synthetic clips; ``kind`` is one of OFFSCREEN_KINDS; ``distractor_*`` describe one of the
    pictured objects, or are None when the picture shows none.

    ``objects`` lists the labels of every pasted object (on-screen: sounding object first),
    ``objects_mask`` is the union of their masks (None when there is none).
    """

    id: str
    split: str
    label: str
    image: Path  # RGB [image_size, image_size]
    audio: Path  # 16 kHz mono wav, clip_seconds long
    box: tuple[int, int, int, int] | None
    mask: Path | None
    distractor_label: str | None
    distractor_box: tuple[int, int, int, int] | None
    distractor_mask: Path | None
    background: str
    clip: str  # asset clip, or "synthetic:..." for the offscreen silence / noise clips
    on_screen: bool = True
    kind: str = ON_SCREEN_KIND
    objects: tuple[str, ...] = ()
    objects_mask: Path | None = None


# ----------------------------------------------------------------------------- assets
def read_asset_manifest(assets: str | os.PathLike | None = None) -> tuple[Path, dict, str]:
    """(folder, manifest dict, sha256 of manifest.json) of an asset pack (default: committed)."""
    folder = Path(assets) if assets is not None else ASSETS_DIR
    path = folder / "manifest.json"
    if not path.is_file():
        raise bad_input("assets", "a folder holding an avsdk asset pack (manifest.json)", str(folder))
    blob = path.read_bytes()
    return folder, json.loads(blob), hashlib.sha256(blob).hexdigest()


def class_recordings(manifest: dict, label: str) -> dict[str, list[str]]:
    """recording id -> the clips (segments) cut from it, for one class of the pack."""
    recordings: dict[str, list[str]] = {}
    for clip in sorted(manifest["classes"][label]["clips"]):
        recordings.setdefault(manifest["files"][clip]["recording"], []).append(clip)
    return recordings


def class_looks(manifest: dict, label: str) -> dict[str, list[str]]:
    """look id -> its cut-outs (one each unless the pack groups several files as one look)."""
    looks: dict[str, list[str]] = {}
    for cutout in sorted(manifest["classes"][label]["cutouts"]):
        looks.setdefault(manifest["files"].get(cutout, {}).get("look", cutout), []).append(cutout)
    return looks


def plan_splits(manifest: dict, config: BenchmarkConfig) -> dict:
    """Which classes, backgrounds, recordings (clips) and looks (cut-outs) each split may use
    (deterministic in the seed)."""
    rng = np.random.default_rng([config.seed, 0])
    classes = manifest["classes"]
    labels = sorted(classes)
    rich = [c for c in labels if len(class_recordings(manifest, c)) >= MIN_HEARD_RECORDINGS
            and len(class_looks(manifest, c)) >= MIN_HEARD_LOOKS]
    if isinstance(config.unheard_classes, tuple):
        unknown = sorted(set(config.unheard_classes) - set(labels))
        if unknown:
            raise bad_input("unheard_classes", f"labels of the asset pack ({', '.join(labels)})", unknown)
        extra = set(config.unheard_classes)
    else:
        if config.unheard_classes > len(rich) - 3:
            raise bad_input("unheard_classes", f"at most {max(len(rich) - 3, 0)} (classes with >= "
                            f"{MIN_HEARD_RECORDINGS} recordings and >= {MIN_HEARD_LOOKS} looks, "
                            "keeping three heard)", config.unheard_classes)
        extra = set(rng.permutation(rich)[: config.unheard_classes].tolist())
    heard = [c for c in rich if c not in extra]
    unheard = [c for c in labels if c not in heard]
    if len(heard) < 3 or len(unheard) < 2:
        raise bad_input("unheard_classes", "a choice leaving >= 3 heard classes (with >= "
                        f"{MIN_HEARD_RECORDINGS} recordings and >= {MIN_HEARD_LOOKS} looks) and "
                        ">= 2 unheard ones", config.unheard_classes)

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
    split_backgrounds["unheard"] = split_backgrounds["test"]  # other held-out evaluation sets
    split_backgrounds["offscreen"] = split_backgrounds["test"]

    recordings = {split: {} for split in SPLITS}
    looks = {split: {} for split in SPLITS}
    shared_looks = []
    for label in heard:
        for split, chosen in _assign_recordings(class_recordings(manifest, label), rng).items():
            recordings[split][label] = chosen
        assigned, shared = _assign_looks(class_looks(manifest, label), rng)
        for split, chosen in assigned.items():
            looks[split][label] = chosen
        if shared:
            shared_looks.append(label)
        recordings["offscreen"][label] = recordings["test"][label]
        looks["offscreen"][label] = looks["test"][label]
    for label in unheard:
        recordings["unheard"][label] = sorted(class_recordings(manifest, label))
        looks["unheard"][label] = sorted(class_looks(manifest, label))

    photos = {rel: manifest["files"][rel] for rel in sorted(manifest.get("photos", []))
              if manifest["files"][rel]["label"] in heard}
    for label in sorted({info["label"] for info in photos.values()}):
        recordings["photos"][label] = recordings["test"][label]

    per_class_recordings = {label: class_recordings(manifest, label) for label in labels}
    per_class_looks = {label: class_looks(manifest, label) for label in labels}
    clips = {split: {label: sorted(c for r in chosen for c in per_class_recordings[label][r])
                     for label, chosen in recordings[split].items()} for split in SPLITS}
    cutouts = {split: {label: sorted(c for lk in chosen for c in per_class_looks[label][lk])
                       for label, chosen in looks[split].items()} for split in SPLITS}
    cutouts["photos"] = {label: [rel for rel, info in photos.items() if info["label"] == label]
                         for label in recordings["photos"]}
    looks["photos"] = cutouts["photos"]
    split_backgrounds["photos"] = sorted(photos)  # a photo is its own background
    return {"heard": heard, "unheard": unheard, "backgrounds": split_backgrounds,
            "recordings": recordings, "looks": looks, "clips": clips, "cutouts": cutouts,
            "val_shares_train_looks": shared_looks, "photos": photos,
            "clip_recording": {c: r for label in labels for r, cs in per_class_recordings[label].items()
                               for c in cs}}


def _assign_recordings(recordings: dict[str, list[str]], rng: np.random.Generator) -> dict[str, list[str]]:
    """Disjoint whole recordings for train / val / test (>= 3 of them): about 20 % to test,
    15 % to val, at least one each; the recording with the most segments goes to train."""
    names = sorted(recordings, key=lambda r: (-len(recordings[r]), r))
    rest = [names[i] for i in rng.permutation(range(1, len(names)))]
    n_test = max(1, round(0.2 * len(names)))
    n_val = max(1, round(0.15 * len(names)))
    return {"test": sorted(rest[:n_test]), "val": sorted(rest[n_test : n_test + n_val]),
            "train": sorted([names[0]] + rest[n_test + n_val :])}


def _assign_looks(looks: dict[str, list[str]], rng: np.random.Generator) -> tuple[dict[str, list[str]], bool]:
    """Looks for train / val / test (>= 2 of them): about 25 % to test (at least one), about
    15 % to val (at least one) when >= 3 looks, the rest to train. With 2 looks, val shares
    train's look; the second value says so."""
    names = [sorted(looks)[i] for i in rng.permutation(len(looks))]
    n_test = max(1, round(0.25 * len(names)))
    test, rest = sorted(names[:n_test]), names[n_test:]
    if len(rest) >= 2:
        n_val = min(max(1, round(0.15 * len(names))), len(rest) - 1)
        return {"test": test, "val": sorted(rest[:n_val]), "train": sorted(rest[n_val:])}, False
    return {"test": test, "val": sorted(rest), "train": sorted(rest)}, True


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
    folder, manifest, manifest_hash = read_asset_manifest(assets)
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
    total = sum(getattr(config, s) for s in SPLITS if s != "photos" or plan["photos"])
    with tqdm(total=total, desc="real-parts benchmark", disable=not progress, unit="sample") as bar:
        for code, split in enumerate(SPLITS):
            split_dir = root / split
            for sub in ("images", "masks", "audio"):
                (split_dir / sub).mkdir(parents=True, exist_ok=True)
            samples = []
            for i, (kind, label) in enumerate(_sample_plan(plan, split, config, code)):
                rng = np.random.default_rng([config.seed, 1 + code, i])
                try:
                    if split == "photos":
                        samples.append(_make_photo_sample(root, i, label, plan, cache, config, rng))
                        bar.update(1)
                        continue
                    samples.append(_make_sample(root, split, i, kind, label, plan, cache, config, rng))
                except compose.EmptyCutout as exc:  # no index is written: the build is not kept
                    raise bad_input("image_size", "a side at which every cut-out keeps a visible pixel "
                                    "(the evaluation's 224 does)", f"{config.image_size} ({exc}, "
                                    f"{split} sample {i}, {label})", described=True) from None
                bar.update(1)
            splits[split] = {
                "on_screen": split in ON_SCREEN_SPLITS,
                "backgrounds": plan["backgrounds"][split],
                "recordings": sorted(f"{label}/{r}" for label, rs in plan["recordings"][split].items()
                                     for r in rs),
                "looks": sorted(f"{label}/{lk}" for label, ls in plan["looks"][split].items() for lk in ls),
                "clips": sorted(c for cs in plan["clips"][split].values() for c in cs),
                "cutouts": sorted(c for cs in plan["cutouts"][split].values() for c in cs),
                "samples": samples,
            }
    index = {**stamp, "classes": {"heard": plan["heard"], "unheard": plan["unheard"],
                                  "val_shares_train_looks": plan["val_shares_train_looks"]},
             "splits": splits}
    tmp = index_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, index_path)
    return root


def _config_json(config: BenchmarkConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists, as stored


def _sample_plan(plan: dict, split: str, config: BenchmarkConfig, code: int) -> list[tuple[str, str]]:
    """(kind, label) of every sample of a split, labels balanced over its classes, shuffled."""
    count = getattr(config, split)
    rng = np.random.default_rng([config.seed, 100 + code])
    if split == "photos":  # (kind, photo): each photo in turn, several windows of its class's sound
        photos = sorted(plan["photos"])
        return [(ON_SCREEN_KIND, photos[i % len(photos)]) for i in rng.permutation(count)] if photos else []
    classes = plan["unheard"] if split == "unheard" else plan["heard"]
    if split in ON_SCREEN_SPLITS:
        kinds = [ON_SCREEN_KIND] * count
    else:
        synthetic = round(config.offscreen_synthetic * count)
        recorded = count - synthetic
        two, one = round(recorded / 2), round(recorded / 4)
        kinds = (["two_objects"] * two + ["one_object"] * one + ["no_object"] * (recorded - two - one)
                 + ["silence"] * (synthetic // 2) + ["noise"] * (synthetic - synthetic // 2))
    labels, n = [], 0
    for kind in kinds:
        if kind in ("silence", "noise"):
            labels.append(kind)
        else:
            labels.append(classes[n % len(classes)])
            n += 1
    order = rng.permutation(count)
    return [(kinds[i], labels[i]) for i in order]


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


def _pick(options: list, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def _make_sample(root: Path, split: str, i: int, kind: str, label: str, plan: dict,
                 cache: _AssetCache, config: BenchmarkConfig, rng: np.random.Generator) -> dict:
    size = config.image_size
    pool = plan["unheard"] if split == "unheard" else plan["heard"]
    on_screen = kind == ON_SCREEN_KIND
    # which classes are pasted: on screen the sounding one plus a distractor; off screen 0-2
    # classes other than the one heard
    if on_screen:
        others = [c for c in pool if c != label]
        pictured = [label, _pick(others, rng)]
    else:
        count = {"two_objects": 2, "one_object": 1, "no_object": 0}.get(kind)
        if count is None:  # silence / noise: a picture drawn like the others (1/2, 1/4, 1/4)
            count = (2, 2, 1, 0)[int(rng.integers(4))]
        others = [c for c in pool if c != label]
        pictured = [others[j] for j in rng.permutation(len(others))[:count]]
    background = _pick(plan["backgrounds"][split], rng)
    clip = None if kind in ("silence", "noise") else _pick(plan["clips"][split][label], rng)

    frame = compose.background_crop(cache.image(background, "RGB"), size, rng)
    looks = [_pick(plan["cutouts"][split][name], rng) for name in pictured]
    cutouts = [cache.image(look, "RGBA") for look in looks]
    corners = []
    for _ in range(1000):  # redraw sizes until the objects can sit side by side without overlapping
        scaled = [compose.scaled_cutout(c, round(size * rng.uniform(config.min_scale, config.max_scale)),
                                        flip=bool(rng.integers(2))) for c in cutouts]
        if len(scaled) == 2:
            corners = compose.place_pair(scaled[0].size, scaled[1].size, size, rng)
        elif len(scaled) == 1:
            corner = compose.place_one(scaled[0].size, size, rng)
            corners = None if corner is None else [corner]
        if corners is not None:
            break
    else:
        raise RuntimeError(f"{split}-{i}: found no non-overlapping placement in 1000 draws")
    placed = [compose.paste(frame, s, corner) for s, corner in zip(scaled, corners)]

    sample_id = f"{split}-{i:05d}"
    rel = {"image": f"{split}/images/{sample_id}.{config.image_format}",
           "audio": f"{split}/audio/{sample_id}.wav", "mask": None, "distractor_mask": None,
           "objects_mask": None}
    if config.image_format == "jpg":
        frame.save(root / rel["image"], quality=95)
    else:
        frame.save(root / rel["image"])

    def save_mask(key: str, mask: np.ndarray, suffix: str) -> None:
        rel[key] = f"{split}/masks/{sample_id}{suffix}.png"
        Image.fromarray(mask.astype(np.uint8) * 255, "L").save(root / rel[key])

    sounding = placed[0] if on_screen else None
    distractor = placed[1] if on_screen else (placed[0] if placed else None)
    if sounding is not None:
        save_mask("mask", sounding.mask, "")
    if distractor is not None:
        save_mask("distractor_mask", distractor.mask, "-distractor")
    if placed:
        save_mask("objects_mask", np.logical_or.reduce([p.mask for p in placed]), "-objects")

    length = int(round(config.clip_seconds * SAMPLE_RATE))
    extra = {}
    if kind == "silence":
        wave = compose.coloured_noise(length, "white", SILENCE_DBFS, rng)
        clip = f"synthetic:silence:white:{SILENCE_DBFS:g}dBFS"
    elif kind == "noise":
        colour = _pick(list(NOISE_COLOURS), rng)
        level = round(float(rng.uniform(*NOISE_DBFS)), 1)
        wave = compose.coloured_noise(length, colour, level, rng)
        clip = f"synthetic:noise:{colour}:{level:g}dBFS"
    else:
        wave = compose.audio_window(cache.audio(clip), length, SAMPLE_RATE, rng)
        extra["recording"] = f"{label}/{plan['clip_recording'][clip]}"
    sf.write(root / rel["audio"], wave, SAMPLE_RATE, subtype="PCM_16")
    box = lambda p: None if p is None else list(p.box)  # noqa: E731
    return {"id": sample_id, "split": split, "label": label, "on_screen": on_screen, "kind": kind,
            "box": box(sounding), "distractor_label": pictured[1] if on_screen else (pictured or [None])[0],
            "distractor_box": box(distractor), "objects": pictured, "looks": looks,
            "background": background, "clip": clip, "recording": None, **extra, **rel}



def _make_photo_sample(root: Path, i: int, photo: str, plan: dict, cache: _AssetCache,
                       config: BenchmarkConfig, rng: np.random.Generator) -> dict:
    """A real photo, resized to image_size x image_size, with a window of a test recording."""
    size, split = config.image_size, "photos"
    label = plan["photos"][photo]["label"]
    frame = cache.image(photo, "RGB").resize((size, size), Image.BICUBIC)
    mask = np.zeros((size, size), dtype=bool)
    for x0, y0, x1, y1 in plan["photos"][photo]["boxes"]:  # fractions of the photo's width / height
        mask[int(np.floor(y0 * size)) : int(np.ceil(y1 * size)), int(np.floor(x0 * size)) : int(np.ceil(x1 * size))] = True
    rows, cols = np.nonzero(mask)
    box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]
    sample_id = f"{split}-{i:05d}"
    rel = {"image": f"{split}/images/{sample_id}.{config.image_format}", "audio": f"{split}/audio/{sample_id}.wav",
           "mask": f"{split}/masks/{sample_id}.png", "distractor_mask": None, "objects_mask": f"{split}/masks/{sample_id}.png"}
    frame.save(root / rel["image"], **({"quality": 95} if config.image_format == "jpg" else {}))
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(root / rel["mask"])
    clip = _pick(plan["clips"][split][label], rng)
    wave = compose.audio_window(cache.audio(clip), int(round(config.clip_seconds * SAMPLE_RATE)), SAMPLE_RATE, rng)
    sf.write(root / rel["audio"], wave, SAMPLE_RATE, subtype="PCM_16")
    return {"id": sample_id, "split": split, "label": label, "on_screen": True, "kind": ON_SCREEN_KIND,
            "box": box, "distractor_label": None, "distractor_box": None, "objects": [label], "looks": [photo],
            "background": photo, "clip": clip, "recording": f"{label}/{plan['clip_recording'][clip]}", **rel}


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
    path = lambda rel: None if rel is None else root / rel  # noqa: E731
    box = lambda b: None if b is None else tuple(b)  # noqa: E731
    try:
        return [
            Sample(id=s["id"], split=s["split"], label=s["label"], image=root / s["image"],
                   audio=root / s["audio"], box=box(s["box"]), mask=path(s["mask"]),
                   distractor_label=s["distractor_label"], distractor_box=box(s["distractor_box"]),
                   distractor_mask=path(s["distractor_mask"]), background=s["background"], clip=s["clip"],
                   on_screen=bool(s["on_screen"]), kind=s["kind"], objects=tuple(s["objects"]),
                   objects_mask=path(s["objects_mask"]))
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
