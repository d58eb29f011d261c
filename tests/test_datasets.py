"""The real-parts benchmark: determinism, split hygiene (disjoint recordings and looks, unheard
classes), the offscreen split, exact masks, audio, the asset pack."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avsdk.datasets import (ASSETS_DIR, OFFSCREEN_KINDS, ON_SCREEN_SPLITS, SPLITS, BenchmarkConfig,
                            build_benchmark, load_split, read_asset_manifest)
from avsdk.datasets import compose
from avsdk.datasets.realparts import (MIN_HEARD_LOOKS, MIN_HEARD_RECORDINGS, class_looks,
                                      class_recordings, plan_splits)
from avsdk.errors import InputError

SMALL = BenchmarkConfig(seed=7, train=24, val=12, test=12, unheard=12, offscreen=20, photos=12)
COMPOSED = tuple(s for s in ON_SCREEN_SPLITS if s != "photos")  # cut-outs pasted on backgrounds


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_benchmark(tmp_path_factory.mktemp("realparts"), SMALL, progress=False)


@pytest.fixture(scope="module")
def splits(built) -> dict:
    return {split: load_split(built, split) for split in SPLITS}


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(built, tmp_path):
    again = build_benchmark(tmp_path / "again", SMALL, progress=False)
    assert _tree_digest(again) == _tree_digest(built)


def test_other_seed_gives_other_samples(built, tmp_path):
    other = build_benchmark(tmp_path / "other", BenchmarkConfig(seed=8, train=4, val=4, test=4, unheard=4,
                                                                offscreen=4), progress=False)
    a = [s.box for s in load_split(built, "test")[:4]]
    b = [s.box for s in load_split(other, "test")]
    assert a != b


def test_rebuild_is_skipped_when_config_matches(built):
    index = built / "index.json"
    before = index.stat().st_mtime_ns
    build_benchmark(built, SMALL, progress=False)
    assert index.stat().st_mtime_ns == before


def test_rebuild_happens_when_config_changes(tmp_path):
    root = build_benchmark(tmp_path, BenchmarkConfig(train=2, val=2, test=2, unheard=2, offscreen=2), progress=False)
    assert len(load_split(root, "train")) == 2
    build_benchmark(root, BenchmarkConfig(train=3, val=2, test=2, unheard=2, offscreen=2), progress=False)
    assert len(load_split(root, "train")) == 3


def test_split_sizes_and_ids(splits):
    for split, samples in splits.items():
        assert len(samples) == getattr(SMALL, split)
        assert all(s.split == split for s in samples)
        assert len({s.id for s in samples}) == len(samples)


def test_backgrounds_are_disjoint_across_splits(built, splits):
    index = json.loads((built / "index.json").read_text())
    allowed = {split: set(index["splits"][split]["backgrounds"]) for split in SPLITS}
    for split, samples in splits.items():
        assert {s.background for s in samples} <= allowed[split]
    for a, b in [("train", "val"), ("train", "test"), ("val", "test"), ("train", "unheard"), ("val", "unheard")]:
        assert not allowed[a] & allowed[b], (a, b)


def _index(built: Path) -> dict:
    return json.loads((built / "index.json").read_text())


def _used(index: dict, split: str, label: str | None = None) -> tuple[set, set]:
    """(recordings, looks) that the samples of a split actually use (of one class, or all)."""
    recordings, looks = set(), set()
    for s in index["splits"][split]["samples"]:
        if s["recording"] is not None and label in (None, s["label"]):
            recordings.add(s["recording"])
        looks |= {look for name, look in zip(s["objects"], s["looks"]) if label in (None, name)}
    return recordings, looks


def test_samples_use_only_their_split_clips_and_cut_outs(built, splits):
    index = _index(built)
    _, manifest, _ = read_asset_manifest()
    for split, samples in splits.items():
        allowed_clips = set(index["splits"][split]["clips"])
        allowed_looks = set(index["splits"][split]["cutouts"])
        for s, raw in zip(samples, index["splits"][split]["samples"]):
            if not s.clip.startswith("synthetic:"):
                assert s.clip in allowed_clips and Path(s.clip).parts[1] == s.label  # sounds/<label>/...
                assert raw["recording"].split("/")[0] == s.label
            assert set(raw["looks"]) <= allowed_looks
            if split == "photos":
                assert [manifest["files"][look]["label"] for look in raw["looks"]] == list(s.objects)
            else:
                assert [Path(look).parts[1] for look in raw["looks"]] == list(s.objects)  # cutouts/<label>/...


def test_test_recordings_and_looks_are_never_used_by_train_or_val(built):
    index = _index(built)
    test_recordings, test_looks = _used(index, "test")
    assert test_recordings and test_looks
    for split in ("train", "val"):
        recordings, looks = _used(index, split)
        assert not recordings & test_recordings, split
        assert not looks & test_looks, split
        # the plan's lists (what a larger build could draw) are disjoint too
        assert not set(index["splits"][split]["recordings"]) & set(index["splits"]["test"]["recordings"])
        assert not set(index["splits"][split]["cutouts"]) & set(index["splits"]["test"]["cutouts"])
        # and no other segment of a test recording is in the other split's clips
        test_sources = {c.rsplit("-", 1)[0] for c in index["splits"]["test"]["clips"]}
        assert not {c.rsplit("-", 1)[0] for c in index["splits"][split]["clips"]} & test_sources


def test_val_recordings_are_disjoint_from_train_and_shared_looks_are_documented(built):
    index = _index(built)
    assert not set(index["splits"]["val"]["recordings"]) & set(index["splits"]["train"]["recordings"])
    assert not _used(index, "val")[0] & _used(index, "train")[0]
    shared = set(index["classes"]["val_shares_train_looks"])
    _, manifest, _ = read_asset_manifest()
    for label in index["classes"]["heard"]:
        val_looks = {c for c in index["splits"]["val"]["cutouts"] if Path(c).parts[1] == label}
        train_looks = {c for c in index["splits"]["train"]["cutouts"] if Path(c).parts[1] == label}
        if label in shared:
            assert len(class_looks(manifest, label)) == 2 and val_looks == train_looks, label
        else:
            assert not val_looks & train_looks, label


def test_heard_classes_have_enough_independent_recordings_and_looks(built):
    index = _index(built)
    _, manifest, _ = read_asset_manifest()
    for label in index["classes"]["heard"]:
        assert len(class_recordings(manifest, label)) >= MIN_HEARD_RECORDINGS, label
        assert len(class_looks(manifest, label)) >= MIN_HEARD_LOOKS, label
        for split in ("train", "val", "test"):
            assert any(r.startswith(label + "/") for r in index["splits"][split]["recordings"]), (label, split)


def test_unheard_classes_never_appear_elsewhere(built, splits):
    index = _index(built)
    heard, unheard = set(index["classes"]["heard"]), set(index["classes"]["unheard"])
    assert not heard & unheard
    for split in ("train", "val", "test", "offscreen"):
        seen = {s.label for s in splits[split]} | {o for s in splits[split] for o in s.objects}
        assert seen - {"silence", "noise"} <= heard, split
        assert not {c for c in index["splits"][split]["clips"] if Path(c).parts[1] in unheard}, split
        assert not {c for c in index["splits"][split]["cutouts"] if Path(c).parts[1] in unheard}, split
    assert {s.label for s in splits["unheard"]} <= unheard
    assert {o for s in splits["unheard"] for o in s.objects} <= unheard


def test_offscreen_never_pictures_the_sound_source(built, splits):
    index = _index(built)
    heard = set(index["classes"]["heard"])
    samples = splits["offscreen"]
    assert {s.kind for s in samples} == set(OFFSCREEN_KINDS)
    test_clips, test_looks = set(index["splits"]["test"]["clips"]), set(index["splits"]["test"]["cutouts"])
    test_backgrounds = set(index["splits"]["test"]["backgrounds"])
    for s, raw in zip(samples, index["splits"]["offscreen"]["samples"]):
        assert not s.on_screen and s.box is None and s.mask is None
        assert s.label not in s.objects, s.id
        assert len(set(s.objects)) == len(s.objects) == {"two_objects": 2, "one_object": 1, "no_object": 0}.get(
            s.kind, len(s.objects))
        assert set(raw["looks"]) <= test_looks and s.background in test_backgrounds
        if s.kind in ("silence", "noise"):
            assert s.label == s.kind and s.clip.startswith(f"synthetic:{s.kind}:")
        else:
            assert s.label in heard and s.clip in test_clips
        if s.objects:
            assert s.distractor_label == s.objects[0] and s.distractor_mask is not None
            union = _mask(s.objects_mask)
            assert compose.mask_box(_mask(s.distractor_mask)) == s.distractor_box
            assert (_mask(s.distractor_mask) <= union).all() and union.sum() > _mask(s.distractor_mask).sum() - 1
        else:
            assert s.distractor_label is s.distractor_box is s.distractor_mask is s.objects_mask is None


def test_offscreen_silence_and_noise_levels(splits):
    for s in splits["offscreen"]:
        wave, rate = sf.read(s.audio, dtype="float32")
        rms_db = 20 * np.log10(np.sqrt(np.mean(wave.astype(np.float64) ** 2)) + 1e-12)
        if s.kind == "silence":
            assert -63 < rms_db < -57, (s.id, rms_db)
        elif s.kind == "noise":
            assert -43 < rms_db < -9, (s.id, rms_db)
        else:
            assert np.abs(wave).max() > 0.05, s.id


def test_offscreen_kind_proportions():
    from avsdk.datasets.realparts import _sample_plan

    _, manifest, _ = read_asset_manifest()
    config = BenchmarkConfig(offscreen=200)
    kinds = [k for k, _ in _sample_plan(plan_splits(manifest, config), "offscreen", config, 4)]
    counts = {k: kinds.count(k) for k in OFFSCREEN_KINDS}
    assert counts == {"two_objects": 90, "one_object": 45, "no_object": 45, "silence": 10, "noise": 10}


def test_on_screen_samples_have_a_sounding_object(splits):
    for split in COMPOSED:
        for s in splits[split]:
            assert s.on_screen and s.kind == "on_screen" and s.objects == (s.label, s.distractor_label)
            assert s.label != s.distractor_label


def test_photos_are_hand_boxed_real_photos_heard_with_test_recordings(built, splits):
    index = _index(built)
    _, manifest, _ = read_asset_manifest()
    photos = splits["photos"]
    assert len(photos) == SMALL.photos and len({s.background for s in photos}) >= 8  # cycles over them
    test_recordings = set(index["splits"]["test"]["recordings"])
    for s, raw in zip(photos, index["splits"]["photos"]["samples"]):
        info = manifest["files"][s.background]
        assert info["kind"] == "photo" and info["label"] == s.label and info["licence"] != "unknown"
        assert s.label in index["classes"]["heard"] and s.on_screen and s.distractor_mask is None
        assert raw["recording"] in test_recordings
        expected = np.zeros((224, 224), dtype=bool)
        for x0, y0, x1, y1 in info["boxes"]:
            expected[int(np.floor(y0 * 224)):int(np.ceil(y1 * 224)), int(np.floor(x0 * 224)):int(np.ceil(x1 * 224))] = True
        assert (_mask(s.mask) == expected).all() and compose.mask_box(expected) == s.box
    for split in ("train", "val", "test", "unheard", "offscreen"):  # no photo anywhere else
        assert not {s.background for s in splits[split]} & {s.background for s in photos}


def test_default_plan_has_enough_classes():
    _, manifest, _ = read_asset_manifest()
    plan = plan_splits(manifest, BenchmarkConfig())
    assert len(manifest["classes"]) >= 20
    assert len(plan["heard"]) >= 15  # >= 3 independent recordings and >= 2 looks each
    assert len(plan["unheard"]) >= 20
    assert {"violin", "drum_kit", "cow", "dog"} <= set(plan["heard"])


def _mask(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "L" and image.size == (224, 224)
    values = np.asarray(image)
    assert set(np.unique(values)) <= {0, 255}
    return values == 255


def test_masks_match_boxes_exactly_and_never_overlap(splits):
    for split in COMPOSED:
        for s in splits[split]:
            mask, dmask = _mask(s.mask), _mask(s.distractor_mask)
            assert compose.mask_box(mask) == s.box
            assert compose.mask_box(dmask) == s.distractor_box
            assert not (mask & dmask).any()
            assert (_mask(s.objects_mask) == (mask | dmask)).all()
            (x0, y0, x1, y1), (a0, b0, a1, b1) = s.box, s.distractor_box
            assert x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0, s.id  # boxes disjoint too
            side = max(x1 - x0, y1 - y0)
            assert 0.25 * 224 - 2 <= side <= 0.55 * 224 + 1, (s.id, side)


def test_images_and_audio_have_the_promised_format(splits):
    for samples in splits.values():
        for s in samples[:6]:
            with Image.open(s.image) as image:
                assert image.mode == "RGB" and image.size == (224, 224)
            info = sf.info(s.audio)
            assert (info.samplerate, info.channels, info.frames) == (16000, 1, 48000)
            wave, _ = sf.read(s.audio, dtype="float32")
            assert np.abs(wave).max() <= 1.0
            assert s.kind == "silence" or np.abs(wave).max() > 0.05


def test_place_pair_separates_any_feasible_sizes():
    rng = np.random.default_rng(0)
    for _ in range(500):
        sounding, distractor = tuple(rng.integers(10, 130, 2)), tuple(rng.integers(10, 130, 2))
        corners = compose.place_pair(sounding, distractor, 224, rng)
        if corners is None:
            continue
        (sx, sy), (dx, dy) = corners
        (sw, sh), (dw, dh) = sounding, distractor
        assert 0 <= min(sx, sy, dx, dy) and max(sx + sw, dx + dw, sy + sh, dy + dh) <= 224
        assert sx + sw <= dx or dx + dw <= sx or sy + sh <= dy or dy + dh <= sy


def test_asset_pack_is_small_and_every_file_is_listed_with_a_licence():
    folder, manifest, _ = read_asset_manifest()
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    assert sum((folder / p).stat().st_size for p in on_disk) + (folder / "manifest.json").stat().st_size < 12e6
    assert on_disk == set(manifest["files"])
    for rel, entry in manifest["files"].items():
        if entry["kind"] == "licence":
            continue
        assert entry["package"] in manifest["packages"], rel
        assert entry["version"] == manifest["packages"][entry["package"]]["version"], rel
        assert entry["path"] and entry["processing"], rel
        assert (folder / manifest["licences"][entry["licence"]]).is_file(), rel
        if entry["kind"] == "clip":
            assert entry["recording"] and len(entry["segment_s"]) == 2, rel
            assert sf.info(folder / rel).samplerate == 16000
            assert sf.info(folder / rel).duration <= 4.05


@pytest.mark.parametrize("field, value", [
    ("seed", -1), ("train", 0), ("val", 2.5), ("image_size", 8), ("min_scale", 0.7),
    ("max_scale", 0.1), ("clip_seconds", 0.0), ("unheard_classes", -1), ("unheard_classes", True),
    ("background_fractions", (0.5, 0.5, 0.5)), ("image_format", "gif"), ("offscreen", 0),
    ("offscreen_synthetic", 1.5), ("offscreen_synthetic", "a"),
])
def test_bad_config_values_name_the_argument(field, value):
    with pytest.raises(InputError, match=field.split("_")[0]):
        BenchmarkConfig(**{field: value})


def test_bad_unheard_labels_and_bad_split_are_reported(tmp_path, built):
    with pytest.raises(InputError, match="unheard_classes"):
        build_benchmark(tmp_path, BenchmarkConfig(unheard_classes=("unicorn",)), progress=False)
    with pytest.raises(InputError, match="split"):
        load_split(built, "dev")
    with pytest.raises(InputError, match="root"):
        load_split(tmp_path / "nothing", "test")
    with pytest.raises(InputError, match="assets"):
        build_benchmark(tmp_path, SMALL, assets=tmp_path, progress=False)


@pytest.mark.parametrize("damage", [b"{not json", b"[]", b'{"format": "avsdk.realparts"}',
                                    b"\xff\xfe", b'{"format": "avsdk.realparts", "version": 99}'],
                         ids=["not-json", "a-list", "no-splits", "not-utf8", "other-version"])
def test_a_damaged_index_is_an_input_error_and_is_rebuilt(damage, built, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(built, root)
    (root / "index.json").write_bytes(damage)
    with pytest.raises(InputError, match="^root: expected a"):
        load_split(root, "test")
    build_benchmark(root, SMALL, progress=False)  # rebuilt, not trusted
    assert [s.id for s in load_split(root, "test")] == [s.id for s in load_split(built, "test")]


def test_an_image_size_too_small_for_a_cut_out_names_image_size(tmp_path):
    """At 32 pixels a cut-out can lose every opaque pixel: a raw ValueError mid-build before."""
    config = BenchmarkConfig(image_size=32, train=400, val=12, test=12, unheard=400, offscreen=12)
    with pytest.raises(InputError, match=r"^image_size: expected a side at which every cut-out"):
        build_benchmark(tmp_path / "b", config, progress=False)
    assert not (tmp_path / "b" / "index.json").exists()


def test_explicit_unheard_classes_are_held_out(tmp_path):
    config = BenchmarkConfig(train=4, val=2, test=2, unheard=4, offscreen=2, unheard_classes=("cow", "violin"))
    root = build_benchmark(tmp_path, config, progress=False)
    index = json.loads((root / "index.json").read_text())
    assert {"cow", "violin"} <= set(index["classes"]["unheard"])
    assert not {"cow", "violin"} & set(index["classes"]["heard"])


def test_import_needs_no_torch_or_scikit_image_or_the_asset_pack_tooling():
    code = ("import sys, avsdk.datasets; "
            "print(sorted(m for m in sys.modules if m in ('torch', 'skimage', 'scipy', 'triton') "
            "or m.startswith('avsdk.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_assets_dir_is_the_committed_pack():
    assert ASSETS_DIR.is_dir() and (ASSETS_DIR / "manifest.json").is_file()


def _tiny_rcc() -> bytes:
    """A format-3 archive: root/ -> dir "a"/ -> "x.txt" (stored), "y.txt" (zlib)."""
    import struct
    import zlib

    names, name_offsets = b"", {}
    for name in ("a", "x.txt", "y.txt"):
        name_offsets[name] = len(names)
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0) + encoded
    stored, packed = b"plain", struct.pack(">I", 6) + zlib.compress(b"zipped")
    data = struct.pack(">I", len(stored)) + stored
    y_offset = len(data)
    data += struct.pack(">I", len(packed)) + packed
    node = lambda name_off, flags, a, b: struct.pack(">IHII", name_off, flags, a, b) + bytes(8)  # noqa: E731
    file_node = lambda name_off, flags, off: struct.pack(">IHHHI", name_off, flags, 0, 0, off) + bytes(8)  # noqa: E731
    tree = (node(0, 2, 1, 1) + node(name_offsets["a"], 2, 2, 2)
            + file_node(name_offsets["x.txt"], 0, 0) + file_node(name_offsets["y.txt"], 1, y_offset))
    header_size = 24
    tree_at, data_at = header_size, header_size + len(tree)
    names_at = data_at + len(data)
    return struct.pack(">4s5I", b"qres", 3, tree_at, data_at, names_at, 0) + tree + data + names


def test_rcc_reader_lists_and_inflates(tmp_path):
    from avsdk.training.asset_pack.qt_rcc import RccArchive

    path = tmp_path / "tiny.rcc"
    path.write_bytes(_tiny_rcc())
    archive = RccArchive(path)
    assert archive.names() == ["a/x.txt", "a/y.txt"]
    assert archive.read("a/x.txt") == b"plain"
    assert archive.read("a/y.txt") == b"zipped"


def test_segments_are_disjoint_and_bounded():
    from avsdk.training.asset_pack.audio import MAX_CLIP_S, RATE, segment_bounds

    rng = np.random.default_rng(1)
    for seconds in (0.5, 2.0, 5.0, 13.0):
        x = rng.standard_normal(int(seconds * RATE)).astype(np.float32)
        bounds = segment_bounds(x)
        assert bounds[0][0] == 0 and all(b <= len(x) for _, b in bounds)
        assert all(b0 <= a1 for (_, b0), (a1, _) in zip(bounds, bounds[1:]))
        assert all(0 < b - a <= MAX_CLIP_S * RATE for a, b in bounds)


def test_cut_out_file_names_keep_every_source_apart():
    from avsdk.training.asset_pack import catalogue
    from avsdk.training.asset_pack.make import _look_name

    assert _look_name("animals/mammals/dogs/dog") == "dog"  # a Tux Paint stamp
    assert _look_name("gcsvg:explore_farm_animals:animals/dog.svg") == "gc-dog"
    assert _look_name("gcimg:lang:words_sample/dog.webp") == "gc-lang-dog"
    assert _look_name("ocsvg:animals/mammals/sheep-md-v0.1") == "oc-sheep-md-v0.1"
    for label, (looks, _) in catalogue.CLASSES.items():  # one file per look within a class
        assert len({_look_name(look) for look in looks}) == len(looks), label


def test_gcompris_credits_are_read_per_file_from_readme_blocks():
    from avsdk.training.asset_pack.sources import parse_attributions

    readme = ("Copyright: Jane Doe\nLicense: CC-BY-SA 4.0\nSource: https://commons.wikimedia.org/x\n"
              "Files: a.webp\n  sub/b.webp\n\nLicense: Public domain\nFiles: c.webp\n")
    credits = parse_attributions(readme)
    assert credits["a.webp"] == credits["b.webp"] == {
        "copyright": "Jane Doe", "license": "CC-BY-SA 4.0", "source": "https://commons.wikimedia.org/x"}
    assert credits["c.webp"] == {"license": "Public domain"} and "d.webp" not in credits


def test_photo_annotations_are_boxes_inside_the_photo_of_a_catalogued_class():
    from avsdk.training.asset_pack import catalogue

    for ref, (label, boxes) in catalogue.PHOTOS.items():
        assert ref.startswith("gcphoto:") and label in catalogue.CLASSES and boxes, ref
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, ref
