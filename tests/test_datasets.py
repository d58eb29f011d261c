"""The real-parts benchmark: determinism, split hygiene, exact masks, audio, the asset pack."""
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

from avsdk.datasets import ASSETS_DIR, SPLITS, BenchmarkConfig, build_benchmark, load_split, read_manifest
from avsdk.datasets import compose
from avsdk.datasets.realparts import plan_splits
from avsdk.errors import InputError

SMALL = BenchmarkConfig(seed=7, train=24, val=12, test=12, unheard=12)


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
    other = build_benchmark(tmp_path / "other", BenchmarkConfig(seed=8, train=4, val=4, test=4, unheard=4),
                            progress=False)
    a = [s.box for s in load_split(built, "test")[:4]]
    b = [s.box for s in load_split(other, "test")]
    assert a != b


def test_rebuild_is_skipped_when_config_matches(built):
    index = built / "index.json"
    before = index.stat().st_mtime_ns
    build_benchmark(built, SMALL, progress=False)
    assert index.stat().st_mtime_ns == before


def test_rebuild_happens_when_config_changes(tmp_path):
    root = build_benchmark(tmp_path, BenchmarkConfig(train=2, val=2, test=2, unheard=2), progress=False)
    assert len(load_split(root, "train")) == 2
    build_benchmark(root, BenchmarkConfig(train=3, val=2, test=2, unheard=2), progress=False)
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


def test_clips_are_disjoint_across_splits(built, splits):
    index = json.loads((built / "index.json").read_text())
    allowed = {split: set(index["splits"][split]["clips"]) for split in SPLITS}
    for split, samples in splits.items():
        assert {s.clip for s in samples} <= allowed[split]
        assert all(Path(s.clip).parts[1] == s.label for s in samples)  # sounds/<label>/...
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not allowed[a] & allowed[b], (a, b)


def test_unheard_classes_never_appear_elsewhere(built, splits):
    index = json.loads((built / "index.json").read_text())
    heard, unheard = set(index["classes"]["heard"]), set(index["classes"]["unheard"])
    assert not heard & unheard
    for split in ("train", "val", "test"):
        seen = {s.label for s in splits[split]} | {s.distractor_label for s in splits[split]}
        assert seen <= heard, split
    assert {s.label for s in splits["unheard"]} <= unheard
    assert {s.distractor_label for s in splits["unheard"]} <= unheard


def test_default_plan_has_enough_classes():
    _, manifest, _ = read_manifest()
    plan = plan_splits(manifest, BenchmarkConfig())
    assert len(manifest["classes"]) >= 20
    assert len(plan["heard"]) >= 20
    assert len(plan["unheard"]) >= 3


def _mask(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "L" and image.size == (224, 224)
    values = np.asarray(image)
    assert set(np.unique(values)) <= {0, 255}
    return values == 255


def test_masks_match_boxes_exactly_and_never_overlap(splits):
    for samples in splits.values():
        for s in samples:
            mask, dmask = _mask(s.mask), _mask(s.distractor_mask)
            assert compose.mask_box(mask) == s.box
            assert compose.mask_box(dmask) == s.distractor_box
            assert not (mask & dmask).any()
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
            assert 0.05 < np.abs(wave).max() <= 1.0


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
    folder, manifest, _ = read_manifest()
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    assert sum((folder / p).stat().st_size for p in on_disk) + (folder / "manifest.json").stat().st_size < 10e6
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
    ("background_fractions", (0.5, 0.5, 0.5)), ("image_format", "gif"),
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
    config = BenchmarkConfig(image_size=32, train=60, val=12, test=12, unheard=12)
    with pytest.raises(InputError, match=r"^image_size: expected a side at which every cut-out"):
        build_benchmark(tmp_path / "b", config, progress=False)
    assert not (tmp_path / "b" / "index.json").exists()


def test_explicit_unheard_classes_are_held_out(tmp_path):
    config = BenchmarkConfig(train=4, val=2, test=2, unheard=4, unheard_classes=("cow", "violin"))
    root = build_benchmark(tmp_path, config, progress=False)
    index = json.loads((root / "index.json").read_text())
    assert {"cow", "violin"} <= set(index["classes"]["unheard"])
    assert not {"cow", "violin"} & set(index["classes"]["heard"])


def test_import_needs_no_torch_or_scikit_image():
    code = ("import sys, avsdk.datasets; "
            "print(sorted(m for m in ('torch', 'skimage', 'scipy', 'triton') if m in sys.modules))")
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
    from avsdk.datasets.qt_rcc import RccArchive

    path = tmp_path / "tiny.rcc"
    path.write_bytes(_tiny_rcc())
    archive = RccArchive(path)
    assert archive.names() == ["a/x.txt", "a/y.txt"]
    assert archive.read("a/x.txt") == b"plain"
    assert archive.read("a/y.txt") == b"zipped"


def test_segments_are_disjoint_and_bounded():
    from avsdk.datasets.pack_audio import MAX_CLIP_S, RATE, segment_bounds

    rng = np.random.default_rng(1)
    for seconds in (0.5, 2.0, 5.0, 13.0):
        x = rng.standard_normal(int(seconds * RATE)).astype(np.float32)
        bounds = segment_bounds(x)
        assert bounds[0][0] == 0 and all(b <= len(x) for _, b in bounds)
        assert all(b0 <= a1 for (_, b0), (a1, _) in zip(bounds, bounds[1:]))
        assert all(0 < b - a <= MAX_CLIP_S * RATE for a, b in bounds)
