"""The published benchmarks (Flickr-SoundNet test, VGG-SS) in the reference code's folder layouts:
the reader, the folder check and its reasons, the evaluation end to end against metrics computed
here on the same maps, and the command line. The folders are made here, a few pairs each."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from small_videos import add_tracks, mux_pictures, mux_sound

from avsdk import metrics
from avsdk.datasets import published
from avsdk.localizer import Localizer
from avsdk.published_eval import evaluate_published

evaluate_cli = pytest.importorskip("avsdk.training.evaluate")

RATE = 22050  # not 16 kHz: the reader resamples


def _picture(box256, seed: int) -> Image.Image:
    """256x256 grey noise with a bright square on ``box256`` (x0, y0, x1, y1) or nowhere."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((256, 256, 3)) * 60 + 40).astype(np.uint8)
    if box256 is not None:
        x0, y0, x1, y1 = box256
        pixels[y0:y1, x0:x1] = 230
    return Image.fromarray(pixels)


def _sound(seconds: float, seed: int, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.05
    return (level * (np.sin(2 * np.pi * 440 * t) + noise)).astype(np.float32)


def _flickr_xml(boxes) -> str:
    """The Flickr-SoundNet annotation format: per bbox a first child (skipped), then xmin, ymin,
    xmax, ymax at 256x256; one <bbox> per annotator."""
    objects = "".join(f"<object><bbox><name>{i}</name><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                      f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bbox></object>" for i, b in enumerate(boxes))
    return f'<?xml version="1.0"?>\n<annotation><filename>x.jpg</filename>{objects}</annotation>\n'


# id -> (what is special, the annotators' boxes at 256x256, where the picture's bright square is)
FLICKR = {
    "1001": ("good", [(60, 60, 180, 180), (70, 50, 190, 170)], (60, 60, 180, 180)),
    "1002": ("good", [(0, 0, 128, 128)], (0, 0, 128, 128)),
    "1003": ("good", [(100, 20, 250, 120), (90, 30, 240, 140)], (10, 150, 90, 250)),  # bright elsewhere
    "1004": ("good", [(30, 30, 220, 220), (40, 40, 230, 230)], None),
    "1005": ("unreadable frame", [(0, 0, 100, 100)], None),
    "1006": ("silent audio", [(0, 0, 100, 100)], None),
    "1007": ("short audio", [(0, 0, 100, 100)], None),
    "1008": ("missing annotation", None, None),
    "1009": ("unreadable audio", [(0, 0, 100, 100)], None),
    "1010": ("bad annotation", [], None),
}
FLICKR_GOOD = [i for i, (kind, _, _) in FLICKR.items() if kind == "good"]


def make_flickr(parent: Path) -> Path:
    """``parent/SoundNet_Flickr`` as zjsong/SSPL's README draws it (the 249-id test list named as
    the reference names it, with the ten ids of FLICKR)."""
    root = parent / "SoundNet_Flickr"
    annotations, frames, audio = (root / "5k_labeled" / p for p in ("Annotations", "Data/frames", "Data/audio"))
    for folder in (annotations, frames, audio):
        folder.mkdir(parents=True)
    (root / "flickr_test249_in5k.csv").write_text("".join(f"{i}\n" for i in FLICKR))
    for n, (id_, (kind, boxes, bright)) in enumerate(FLICKR.items()):
        if boxes is not None:
            (annotations / f"{id_}.xml").write_text(_flickr_xml(boxes))
        if kind == "unreadable frame":
            (frames / f"{id_}.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
        else:
            _picture(bright, n).save(frames / f"{id_}.jpg", quality=95)
        if kind == "unreadable audio":
            (audio / f"{id_}.wav").write_bytes(b"RIFF....WAVE but nothing else")
            continue
        sound = {"silent audio": np.zeros(3 * RATE, np.float32), "short audio": _sound(0.5, n)}.get(kind)
        soundfile.write(audio / f"{id_}.wav", _sound(4.0, n) if sound is None else sound, RATE)
    return root


# id -> (what is special, normalised boxes)
VGGSS = {
    "aaaaaaaaaaa_000030": ("good", [[0.2, 0.2, 0.7, 0.8]]),
    "bbbbbbbbbbb_000010": ("good", [[0.0, 0.5, 0.5, 1.0], [0.6, 0.0, 0.9, 0.3]]),
    "ccccccccccc_000120": ("good", [[-0.05, 0.1, 0.4, 0.6]]),  # a corrupt negative coordinate
    "ddddddddddd_000000": ("silent audio", [[0.1, 0.1, 0.5, 0.5]]),
    "eeeeeeeeeee_000040": ("missing annotation", None),
}
VGGSS_GOOD = [i for i, (kind, _) in VGGSS.items() if kind == "good"]


def _vggss_common(parent: Path) -> tuple[Path, Path]:
    root = parent / "VGG-Sound"
    (root / "5k_labeled" / "Annotations").mkdir(parents=True)
    (root / "5k_labeled" / "Data").mkdir(parents=True)
    (root / "vggss_test_4692.csv").write_text("".join(f"{i}\n" for i in VGGSS))
    entries = [{"file": id_, "class": "dog", "bbox": boxes} for id_, (_, boxes) in VGGSS.items() if boxes]
    (root / "5k_labeled" / "Annotations" / "vggss_test_5158.json").write_text(json.dumps(entries))
    return root, root / "5k_labeled" / "Data"


def _vggss_pixels(n: int, boxes) -> np.ndarray:
    x0, y0, x1, y1 = (int(256 * max(v, 0)) for v in boxes[0])
    return np.asarray(_picture((x0, y0, x1, y1), 100 + n))


def make_vggss(parent: Path) -> Path:
    """``parent/VGG-Sound`` with extracted frames and audio (Data/frames, Data/audio)."""
    root, data = _vggss_common(parent)
    (data / "frames").mkdir()
    (data / "audio").mkdir()
    for n, (id_, (kind, boxes)) in enumerate(VGGSS.items()):
        Image.fromarray(_vggss_pixels(n, boxes or [[0, 0, 0.5, 0.5]])).save(data / "frames" / f"{id_}.jpg", quality=95)
        sound = np.zeros(10 * RATE, np.float32) if kind == "silent audio" else _sound(10.0, n)
        soundfile.write(data / "audio" / f"{id_}.flac", sound, RATE)
    return root


class Recorder:
    """A deterministic model: the map is the red channel averaged over 16x16 blocks [B, 14, 14];
    every map it returns is kept, in order."""

    def __init__(self):
        self.maps = []

    def __call__(self, frames, log_mel):
        frames = np.asarray(frames, dtype=np.float32)
        assert frames.shape[1:] == (3, 224, 224) and np.asarray(log_mel).shape[1:] == (3, 1, 96, 64)
        maps = frames[:, 0].reshape(len(frames), 14, 16, 14, 16).mean(axis=(2, 4))
        self.maps.extend(maps)
        return maps


def _by_hand(raw: np.ndarray, truth: np.ndarray, rule: str) -> float:
    """cIoU of one map computed here with torch's bilinear resize (not avsdk.metrics')."""
    torch = pytest.importorskip("torch")
    big = torch.nn.functional.interpolate(torch.from_numpy(raw)[None, None], size=(224, 224), mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    heat = (big - big.min()) / (big.max() - big.min())
    keep = heat >= (0.5 if rule == "value" else np.sort(heat, axis=None)[224 * 224 // 2])
    return float((keep * truth).sum() / (truth.sum() + (keep * (truth == 0)).sum()))


# --------------------------------------------------------------------------- reading and checking


def test_flickr_listing_and_check_count_every_skip_with_its_reason(tmp_path):
    root = make_flickr(tmp_path)
    bench = published.load_published("flickr", tmp_path)  # the reference's data_path, one level up
    assert bench.root == root and bench.listed == 10 and bench.layout == "files"
    assert [s.id for s in bench.skipped] == ["1008", "1010"]  # the listing's own skips
    report = published.check(bench)
    assert [s.id for s in report.skipped] == ["1005", "1006", "1007", "1008", "1009", "1010"]  # list order
    assert list(report.usable) == FLICKR_GOOD
    assert {s.id: s.reason for s in report.skipped} == {i: kind for i, (kind, _, _) in FLICKR.items()
                                                       if kind != "good"}
    assert report.counts() == {reason: 1 for reason in ("unreadable frame", "silent audio", "short audio",
                                                         "missing annotation", "unreadable audio", "bad annotation")}
    details = {s.id: s.detail for s in report.skipped}
    assert details["1008"] == "no 5k_labeled/Annotations/1008.xml"
    assert "0.500 s of sound, at least 0.96 s" in details["1007"]
    assert "1006.wav" in details["1006"] and "no sound" in details["1006"]
    text = published.format_check(report)
    assert "usable: 4 of 10" in text and "skipped 6 of 10: " in text
    assert "  1005: unreadable frame: " in text


def test_flickr_ground_truth_is_metrics_own(tmp_path):
    make_flickr(tmp_path)
    bench = published.load_published("flickr", tmp_path / "SoundNet_Flickr")
    for item in bench.items:
        xml = tmp_path / "SoundNet_Flickr" / "5k_labeled" / "Annotations" / f"{item.id}.xml"
        np.testing.assert_array_equal(item.ground_truth, metrics.flickr_ground_truth(xml))
    consensus = bench.items[0].ground_truth  # two annotators: 1 where both boxes are, 0.5 where one is
    assert set(np.unique(consensus)) == {0.0, 0.5, 1.0}


def test_read_pair_gives_the_frame_and_the_sound_at_16k(tmp_path):
    make_flickr(tmp_path)
    bench = published.load_published("flickr", tmp_path)
    pair = published.read_pair(bench, bench.items[0])
    assert pair.frame.shape == (256, 256, 3) and pair.frame.dtype == np.uint8
    assert pair.audio.ndim == 1 and abs(pair.audio.size - 4 * 16000) <= 1


def test_a_test_list_of_ones_own(tmp_path):
    make_flickr(tmp_path)
    listing = tmp_path / "mine.csv"
    listing.write_text("1002,whatever\n\n1001\n")
    bench = published.load_published("flickr", tmp_path, test_list=listing)
    assert [i.id for i in bench.items] == ["1002", "1001"] and bench.listed == 2 and not bench.skipped


def test_vggss_listing_and_check(tmp_path):
    make_vggss(tmp_path)
    bench = published.load_published("vggss", tmp_path / "VGG-Sound")
    report = published.check(bench)
    assert list(report.usable) == VGGSS_GOOD
    assert {s.id: s.reason for s in report.skipped} == {"ddddddddddd_000000": "silent audio",
                                                        "eeeeeeeeeee_000040": "missing annotation"}
    for item in bench.items:
        np.testing.assert_array_equal(item.ground_truth, metrics.vggss_ground_truth(VGGSS[item.id][1]))
    negative = next(i for i in bench.items if i.id == "ccccccccccc_000120").ground_truth
    assert negative[:, 0].any()  # -0.05 is clamped to the left edge


def test_vggss_reference_h5_layout(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py reads the reference's VGG-SS h5 files")
    root, data = _vggss_common(tmp_path)
    rows = len(VGGSS) - 1  # rows for the first four ids; the extra listed id has none: a skip, counted
    frames = np.stack([_vggss_pixels(n, boxes or [[0, 0, 0.5, 0.5]]) for n, (_, boxes) in
                       enumerate(list(VGGSS.values())[:rows])]).astype(np.float32)
    audios = np.stack([_sound(3.0, n)[:48000] if VGGSS[i][0] == "good" else np.full(48000, -1.0, np.float32)
                       for n, i in enumerate(list(VGGSS)[:rows])]).astype(np.float32)
    with h5py.File(data / "h5py_test_frames.h5", "w") as handle:
        handle.create_dataset("test_frames", data=frames)
    with h5py.File(data / "h5py_test_audios.h5", "w") as handle:
        handle.create_dataset("test_audios", data=audios)
    (root / "vggss_test_4692.csv").write_text("".join(f"{i}\n" for i in VGGSS) + "zzzzzzzzzzz_000001\n")
    annotations = root / "5k_labeled" / "Annotations" / "vggss_test_5158.json"
    entries = json.loads(annotations.read_text()) + [{"file": "zzzzzzzzzzz_000001", "bbox": [[0, 0, 1, 1]]}]
    annotations.write_text(json.dumps(entries))
    bench = published.load_published("vggss", root)
    assert bench.layout == "h5" and [i.row for i in bench.items] == [0, 1, 2, 3]
    report = published.check(bench)
    assert list(report.usable) == VGGSS_GOOD
    assert report.counts() == {"silent audio": 1, "missing annotation": 1, "missing h5 row": 1}
    pair = published.read_pair(bench, bench.items[0])
    np.testing.assert_array_equal(pair.frame, frames[0].astype(np.uint8))


def test_vggss_videos(tmp_path):
    av = pytest.importorskip("av", reason="PyAV (extra 'video') reads videos")
    root, data = _vggss_common(tmp_path)
    (data / "video").mkdir()
    for n, (id_, (kind, boxes)) in enumerate(VGGSS.items()):
        sound = np.zeros(2 * 16000) if kind == "silent audio" else _sound(2.0, n)[: 2 * 16000]
        _write_video(av, data / "video" / f"{id_}.mkv", _vggss_pixels(n, boxes or [[0, 0, .5, .5]]), sound)
    bench = published.load_published("vggss", root)
    report = published.check(bench)
    assert list(report.usable) == VGGSS_GOOD and report.counts() == {"silent audio": 1, "missing annotation": 1}
    pair = published.read_pair(bench, bench.items[0])
    assert pair.frame.shape == (256, 256, 3)


def _write_video(av, path: Path, picture: np.ndarray, sound: np.ndarray) -> None:
    """2 s of ``picture`` at 5 fps and ``sound`` (16 kHz) as 16-bit PCM, in Matroska."""
    with av.open(str(path), "w") as container:
        video, track = add_tracks(container, "mpeg4", 5, 256, 256, "pcm_s16le", 16000)
        mux_pictures(container, video, [picture] * 10, range(10), Fraction(1, 5))
        mux_sound(container, track, (np.asarray(sound) * 32767).astype(np.int16), 16000)


@pytest.mark.parametrize("name,build,expected", [
    ("flickr", lambda root: None, "flickr_test249_in5k.csv, 5k_labeled/Annotations/, 5k_labeled/Data/frames/ "
                                  "and 5k_labeled/Data/audio/"),
    ("vggss", lambda root: None, "vggss_test_4692.csv, 5k_labeled/Annotations/vggss_test_5158.json, "
                                 "5k_labeled/Data/frames/ and 5k_labeled/Data/audio/ (or 5k_labeled/Data/video/, "
                                 "or the reference's h5 files)"),
    ("vggss", lambda root: (root / "5k_labeled/Data").mkdir(parents=True)
     or (root / "5k_labeled/Data/h5py_test_frames.h5").write_bytes(b""),
     "vggss_test_4692.csv, 5k_labeled/Annotations/vggss_test_5158.json, 5k_labeled/Data/h5py_test_audios.h5"),
], ids=["flickr-empty", "vggss-empty", "vggss-one-h5"])
def test_a_folder_without_the_layout_is_an_error_listing_what_is_missing(tmp_path, name, build, expected):
    build(tmp_path)
    with pytest.raises(published.InputError) as error:
        published.load_published(name, tmp_path)
    assert str(error.value) == (f"root: expected the {published.TITLES[name]} layout of docs/datasets.md, "
                                f"received {str(tmp_path)!r} without {expected}")


# --------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("name", ["flickr", "vggss"])  # not "benchmark": pytest-benchmark's fixture
def test_evaluation_equals_metrics_on_the_same_maps(tmp_path, name):
    (make_flickr if name == "flickr" else make_vggss)(tmp_path)
    bench = published.load_published(name, tmp_path)
    recorder = Recorder()
    report = evaluate_published(Localizer(recorder), bench, batch_size=3)
    assert list(report.ids) == (FLICKR_GOOD if name == "flickr" else VGGSS_GOOD)
    assert len(recorder.maps) == len(report.ids)
    truths = {item.id: item.ground_truth for item in bench.items}
    summary = report.to_dict()["summary"]
    for rule in metrics.RULES:
        expected = [metrics.ciou(metrics.binarize(metrics.localization_map(raw), rule), truths[id_])
                    for id_, raw in zip(report.ids, recorder.maps)]
        assert list(report.cious["model"][rule]) == expected
        assert summary["model"][rule] == {"ciou_at_0.5": metrics.ciou_at(expected), "auc": metrics.auc(expected)}
        by_hand = [_by_hand(raw, truths[id_], rule) for id_, raw in zip(report.ids, recorder.maps)]
        np.testing.assert_allclose(report.cious["model"][rule], by_hand, atol=1e-3)
        for id_, all_ones, centre in zip(report.ids, report.cious["all-ones"][rule], report.cious["centre box"][rule]):
            g = truths[id_].astype(np.float64)
            assert all_ones == pytest.approx(g.sum() / (g.sum() + (g == 0).sum()))
            box = np.zeros_like(g)
            box[32:192, 32:192] = 1
            assert centre == pytest.approx((box * g).sum() / (g.sum() + (box * (g == 0)).sum()))
    if name == "flickr":  # the map finds the bright square where it is on the annotated boxes
        cious = dict(zip(report.ids, report.cious["model"]["value"]))
        assert cious["1001"] > 0.5 and cious["1002"] > 0.5 and cious["1003"] < 0.1


def test_limit_and_an_all_skipped_benchmark(tmp_path):
    make_flickr(tmp_path)
    bench = published.load_published("flickr", tmp_path)
    assert evaluate_published(Localizer(Recorder()), bench, limit=2).ids == ("1001", "1002")
    listing = tmp_path / "bad.csv"
    listing.write_text("1006\n1008\n")
    nothing = published.load_published("flickr", tmp_path, test_list=listing)
    with pytest.raises(published.InputError, match=r"^root: expected Flickr-SoundNet test with at least one "
                       r"usable pair, received .*skipped 2 of 2: "):
        evaluate_published(Localizer(Recorder()), nothing)


# --------------------------------------------------------------------------- command line


@pytest.fixture
def recorder(monkeypatch):
    """Localizer.load of any name gives the Recorder model."""
    model = Recorder()
    monkeypatch.setattr(Localizer, "load", classmethod(lambda cls, path, **kwargs: Localizer(model)))
    return model


def test_cli_check(tmp_path, capsys):
    make_flickr(tmp_path)
    out = tmp_path / "check.json"
    assert evaluate_cli.main(["--check", "--flickr", str(tmp_path), "--json", str(out), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "usable: 4 of 10" in text and "skipped 6 of 10: " in text and "1009: unreadable audio: " in text
    data = json.loads(out.read_text())
    assert data["usable"] == FLICKR_GOOD and len(data["skipped"]) == 6
    make_vggss(tmp_path)
    (tmp_path / "ok.csv").write_text("".join(f"{i}\n" for i in VGGSS_GOOD))
    assert evaluate_cli.main(["--check", "--vggss", str(tmp_path), "--test-list", str(tmp_path / "ok.csv"),
                              "--no-progress"]) == 0
    assert "usable: 3 of 3\nskipped 0 of 3" in capsys.readouterr().out


def test_cli_scores_the_model_beside_the_baselines(tmp_path, recorder, capsys):
    make_flickr(tmp_path)
    out = tmp_path / "flickr.json"
    (tmp_path / "model.onnx").write_bytes(b"")  # Localizer.load is the fixture's
    code = evaluate_cli.main(["--checkpoint", str(tmp_path / "model.onnx"), "--flickr",
                              str(tmp_path / "SoundNet_Flickr"), "--json", str(out), "--no-progress",
                              "--batch-size", "3"])
    assert code == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["checkpoint"] == str(tmp_path / "model.onnx") and data["rule"] == "value"
    assert data["listed"] == 10 and data["scored"] == 4 and len(data["skipped"]) == 6
    assert [row["id"] for row in data["images"]] == FLICKR_GOOD
    assert set(data["images"][0]) == {"id", "model", "all-ones", "centre box"}
    assert set(data["images"][0]["model"]) == set(metrics.RULES)
    for method in ("model", "all-ones", "centre box"):
        for rule in metrics.RULES:
            values = [row[method][rule] for row in data["images"]]
            assert data["summary"][method][rule] == {"ciou_at_0.5": metrics.ciou_at(values),
                                                     "auc": metrics.auc(values)}
            assert f"{metrics.ciou_at(values):.3f} " in _table_row(text, method)
    assert "4 of 10 listed pairs scored" in text and "skipped 6 of 10: " in text
    assert "\n  SACL, released weights, trained on Flickr 10k: 0.815 / 0.623\n" in text


def _table_row(text: str, method: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {method} "))


def test_cli_passes_the_sacl_pair_to_load_sacl(tmp_path, monkeypatch, capsys):
    make_vggss(tmp_path)
    seen = []

    def load_sacl(cls, frame, sound, **kwargs):
        seen.append((Path(frame).name, Path(sound).name))
        return Localizer(Recorder())

    monkeypatch.setattr(Localizer, "load_sacl", classmethod(load_sacl))
    for name in ("frame_best.pth", "sound_best.pth"):
        (tmp_path / name).write_bytes(b"")
    code = evaluate_cli.main(["--sacl", str(tmp_path / "frame_best.pth"), str(tmp_path / "sound_best.pth"),
                              "--vggss", str(tmp_path), "--no-progress"])
    assert code == 0 and seen == [("frame_best.pth", "sound_best.pth")]
    assert "SACL frame_best.pth + sound_best.pth on VGG-SS" in capsys.readouterr().out


@pytest.mark.parametrize("argv,expected", [
    (["--checkpoint", "{tmp}/m.onnx", "--flickr", "{tmp}/none"],
     "--flickr: expected an existing folder holding Flickr-SoundNet test (docs/datasets.md), received "
     "'{tmp}/none' (no such folder)"),
    (["--checkpoint", "{tmp}/m.onnx", "--vggss", "{tmp}"],
     "--vggss: expected the VGG-SS layout of docs/datasets.md, received '{tmp}' without vggss_test_4692.csv"),
    (["--check", "--flickr", "{tmp}", "--test-list", "{tmp}/none.csv"],
     "--test-list: expected an existing test list file (one id per line), received '{tmp}/none.csv'"),
    (["--check", "--data", "{tmp}"],
     "--check: expected --flickr ROOT or --vggss ROOT (it checks a published benchmark's folder), received --data"),
    (["--check", "--checkpoint", "m.onnx", "--flickr", "{tmp}"],
     "--check: expected no model (it reads the data only), received --checkpoint"),
    (["--flickr", "{tmp}"],
     "--checkpoint: expected a model file (.pt, .onnx or .engine), or --sacl FRAME SOUND, received neither"),
    (["--checkpoint", "m.onnx", "--flickr", "{tmp}", "--split", "val"],
     "--split: expected only with --data (--flickr has one test list), received 'val'"),
    (["--checkpoint", "m.onnx", "--data", "{tmp}", "--test-list", "x.csv"],
     "--test-list: expected only with --flickr or --vggss, received 'x.csv'"),
    (["--sacl", "{tmp}/f.pth", "{tmp}/s.pth", "--flickr", "{tmp}/none"],
     "--sacl: expected an existing file, received '{tmp}/f.pth'"),
    (["--checkpoint", "{tmp}/none.onnx", "--flickr", "{tmp}/none"],
     "--checkpoint: expected an existing file, received '{tmp}/none.onnx'"),
], ids=["flickr-missing", "vggss-no-layout", "test-list-missing", "check-data", "check-model", "no-model",
        "split-published", "test-list-data", "sacl-missing", "checkpoint-missing"])
def test_cli_errors_name_the_flag(tmp_path, capsys, argv, expected):
    (tmp_path / "m.onnx").write_bytes(b"")
    code = evaluate_cli.main([a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: " + expected.format(tmp=tmp_path)) and captured.out == ""


def test_cli_refuses_two_benchmarks(tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", "m.onnx", "--flickr", str(tmp_path), "--data", str(tmp_path)])
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_with_an_exported_onnx_model(tmp_path, capsys):
    """No stand-in: a tiny model exported to ONNX and run by ONNX Runtime through Localizer.load,
    here and where torch cannot be imported (the runtime alone scores a published benchmark)."""
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    torch = pytest.importorskip("torch")
    from test_no_torch import BLOCK_TORCH, _Tiny

    from avsdk.export.onnx_export import export_onnx

    torch.manual_seed(0)
    model = export_onnx(_Tiny().eval(), tmp_path / "tiny.onnx")
    make_flickr(tmp_path)
    out = tmp_path / "onnx.json"
    assert evaluate_cli.main(["--checkpoint", str(model), "--flickr", str(tmp_path), "--json", str(out),
                              "--no-progress"]) == 0
    data = json.loads(out.read_text())
    assert [row["id"] for row in data["images"]] == FLICKR_GOOD
    values = [row["model"]["value"] for row in data["images"]]
    assert data["summary"]["model"]["value"]["auc"] == metrics.auc(values)
    assert "| model " in capsys.readouterr().out

    script = BLOCK_TORCH + textwrap.dedent(f"""
        from avsdk.training.evaluate import main
        code = main(["--checkpoint", {str(model)!r}, "--flickr", {str(tmp_path)!r}, "--json",
                     {str(tmp_path / "no_torch.json")!r}, "--no-progress"])
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "no_torch.json").read_text())["images"] == data["images"]
