"""Localizer on every backend that runs here, its typed result, the region box and the overlay."""
import fractions
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_refusal
from small_videos import add_tracks, mux_pictures, mux_sound

from avsdk import overlay
from avsdk.errors import InputError
from avsdk.frontend import IMPLEMENTATIONS
from avsdk.localizer import LocalizationResult, Localizer, result_from_similarity
from avsdk.regions import component_box


def _needs_inputs():
    for name in ("avsdk.audio", "avsdk.frames", "avsdk.frontend"):
        pytest.importorskip(name, reason=f"{name} (input helper) has not landed yet")


# ------------------------------------------------------------------ regions


def test_component_box_matches_scipy_label():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    for trial in range(30):
        mask = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) > 0.45
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        seed_index = int(rng.integers(ys.size))
        seed = (int(xs[seed_index]), int(ys[seed_index]))
        labels, _ = ndimage.label(mask)  # default structure: 4-connectivity
        cy, cx = np.nonzero(labels == labels[seed[1], seed[0]])
        expected = (cx.min(), cy.min(), cx.max() + 1, cy.max() + 1)
        assert component_box(mask, seed) == expected, f"trial {trial}"


def test_component_box_ignores_diagonal_neighbours_and_bad_seed():
    mask = np.eye(4, dtype=bool)
    assert component_box(mask, (1, 1)) == (1, 1, 2, 2)
    with pytest.raises(InputError, match="seed"):
        component_box(mask, (0, 1))


# ------------------------------------------------------------------ result


def test_result_from_similarity_at_original_size():
    raw = np.full((14, 14), -0.2, np.float32)
    raw[2:5, 9:12] = 0.8  # one hot region at the top right
    raw[11, 1] = 0.5  # a weaker, separate blob
    result = result_from_similarity(raw, 300, 500, "stretch")
    assert isinstance(result, LocalizationResult)
    assert result.heatmap.shape == (300, 500) and result.heatmap.dtype == np.float32
    assert result.heatmap.min() == 0.0 and result.heatmap.max() == 1.0
    assert result.score == pytest.approx(0.8)
    np.testing.assert_array_equal(result.similarity, raw)
    x0, y0, x1, y1 = result.box
    px, py = result.peak
    assert x0 <= px < x1 and y0 <= py < y1
    # the hot cells span x in [9/14, 12/14) and y in [2/14, 5/14) of the image
    assert 500 * 8 / 14 < x0 < 500 * 10 / 14 < 500 * 11 / 14 < x1 < 500 * 13 / 14
    assert 300 * 1 / 14 < y0 < 300 * 3 / 14 and 300 * 4 / 14 < y1 < 300 * 6 / 14
    assert y1 < 300 * 10 / 14  # the second blob is not in the box
    with pytest.raises(Exception):
        result.score = 1.0  # frozen


def test_centre_crop_transform_maps_the_centre_square_only():
    raw = np.zeros((14, 14), np.float32)
    raw[:, :7] = 1.0
    result = result_from_similarity(raw, 100, 200, "centre_crop")
    assert result.heatmap[:, :50].max() == 0.0 and result.heatmap[:, 150:].max() == 0.0
    assert result.box[0] == 50 and result.box[2] < 110


def test_constant_map_boxes_the_whole_image():
    result = result_from_similarity(np.zeros((14, 14)), 64, 80)
    assert result.box == (0, 0, 80, 64) and result.heatmap.min() == 1.0


# ------------------------------------------------------------------ overlay


def test_colorize_endpoints_and_overlay_png(tmp_path):
    colours = overlay.colorize(np.array([[0.0, 0.5, 1.0]]))
    assert colours[0, 0].tolist() == [0, 0, 128]  # dark blue
    assert colours[0, 1].tolist() == [128, 255, 128] or colours[0, 1][1] == 255  # green peak
    assert colours[0, 2].tolist() == [128, 0, 0]  # dark red
    image = np.zeros((40, 60, 3), np.uint8)
    heat = np.tile(np.linspace(0, 1, 60, dtype=np.float32), (40, 1))
    path = overlay.save_overlay(tmp_path / "o.png", image, heat, box=(10, 5, 30, 25), peak=(20, 15))
    written = np.asarray(Image.open(path))
    assert written.shape == (40, 60, 3)
    assert written[5, 10].tolist() == [255, 255, 255]  # box corner
    with pytest.raises(InputError, match="heatmap"):
        overlay.blend(image, heat[:10])
    with pytest.raises(InputError, match="path"):
        overlay.save_overlay(tmp_path / "o.jpg", image, heat)


# ------------------------------------------------------------------ Localizer


@pytest.fixture(scope="module")
def tiny_model():
    from avsdk.models import ModelConfig, build_model

    torch.manual_seed(0)
    return build_model(ModelConfig(), pretrained=False).eval()


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory):
    from avsdk.models import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "edge.pt"
    save_checkpoint(path, tiny_model, transform="stretch")
    return path


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("picture") / "frame.png"
    Image.fromarray(rng.integers(0, 255, (180, 240, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    import soundfile

    path = tmp_path_factory.mktemp("sound") / "clip.wav"
    t = np.arange(2 * 22050) / 22050
    soundfile.write(path, (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    return path


def test_predict_matches_the_model(tiny_model):
    loc = Localizer.from_model(tiny_model)
    frames, log_mel = torch.randn(2, 3, 224, 224), torch.randn(2, 3, 1, 96, 64)
    with torch.no_grad():
        ref = tiny_model(frames, log_mel).numpy()
    np.testing.assert_allclose(loc.predict(frames, log_mel), ref, rtol=1e-5, atol=1e-6)


def test_checkpoint_localizer_end_to_end(checkpoint, tiny_model, picture, sound, tmp_path):
    _needs_inputs()
    loc = Localizer.load(checkpoint)
    assert loc.backend_name == "torch" and loc.transform == "stretch"
    result = loc(picture, sound)
    assert result.heatmap.shape == (180, 240) and result.similarity.shape == (14, 14)
    assert -1.0 <= result.score <= 1.0
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() == 1.0
    # arrays give the same answer as files
    import soundfile

    waveform, rate = soundfile.read(sound, dtype="float32")
    same = loc(np.asarray(Image.open(picture)), waveform, sample_rate=rate)
    np.testing.assert_allclose(same.similarity, result.similarity, atol=1e-5)
    path = result.save_overlay(tmp_path / "overlay.png", picture)
    assert Image.open(path).size == (240, 180)


def test_onnx_localizer_matches_checkpoint(checkpoint, tiny_model, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    export = pytest.importorskip("avsdk.export.onnx_export", reason="the ONNX exporter has not landed")
    path = export.export_onnx(tiny_model, tmp_path / "edge.onnx", checkpoint=checkpoint)
    loc = Localizer.load(path)
    assert loc.backend_name == "onnxruntime"
    frames, log_mel = torch.randn(3, 3, 224, 224), torch.randn(3, 3, 1, 96, 64)
    ref = Localizer.load(checkpoint).predict(frames, log_mel)
    np.testing.assert_allclose(loc.predict(frames, log_mel), ref, atol=1e-4)
    # a graph exported with a fixed batch of 1 is fed one sample at a time
    fixed = export.export_onnx(tiny_model, tmp_path / "edge_b1.onnx", dynamic_batch=False, batch_size=1)
    np.testing.assert_allclose(Localizer.load(fixed).predict(frames.numpy(), log_mel.numpy()), ref, atol=1e-4)


def test_audio_file_objects_are_read_like_paths(checkpoint, picture, sound):
    _needs_inputs()
    loc = Localizer.load(checkpoint)
    with open(sound, "rb") as handle:
        from_object = loc(picture, handle)
    np.testing.assert_array_equal(from_object.similarity, loc(picture, sound).similarity)


def test_package_docstring_example_runs(tiny_model, tmp_path, monkeypatch):
    _needs_inputs()
    import soundfile

    import avsdk

    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((90, 120, 3), np.uint8)).save("frame.jpg")
    soundfile.write("clip.wav", (0.3 * np.sin(np.arange(48000) / 5)).astype(np.float32), 16000)
    # the example loads "model.onnx": here the in-memory model stands in for it
    monkeypatch.setattr(Localizer, "load", classmethod(lambda cls, path: cls.from_model(tiny_model)))
    example = [line.strip() for line in avsdk.__doc__.splitlines() if line.startswith("    ")]
    exec("\n".join(example), {})
    assert Image.open("overlay.png").size == (120, 90)


def test_engine_needs_tensorrt(tmp_path):
    pytest.importorskip("avsdk.export.tensorrt_runtime", reason="the TensorRT runner has not landed")
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed: the missing-dependency path cannot be checked")
    (tmp_path / "m.engine").write_bytes(b"not an engine")
    with pytest.raises((ImportError, InputError)):
        Localizer.load(tmp_path / "m.engine")


def test_localize_video(checkpoint, tmp_path):
    _needs_inputs()
    av = pytest.importorskip("av", reason="PyAV (extra 'video') is not installed")
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        video, sound = add_tracks(container, "mpeg4", 10, 64, 48, "pcm_s16le", 16000)
        mux_pictures(container, video, (np.full((48, 64, 3), 6 * i, np.uint8) for i in range(40)), range(40),
                     fractions.Fraction(1, 10))
        ramp = (np.arange(4 * 16000) / 16000 / 10 * 32767).astype(np.int16)  # value = t / 10
        mux_sound(container, sound, ramp, 16000)

    from avsdk.video import read_clip

    clip = read_clip(path, time=2.0)
    assert clip.frame.shape == (48, 64, 3) and abs(int(clip.frame.mean()) - 120) <= 4
    assert clip.audio.shape == (48000,) and clip.audio[0] == pytest.approx(0.05, abs=1e-3)
    early = read_clip(path, time=1.0)  # the window is clipped at the start of the video
    assert early.audio.shape == (40000,) and early.audio[0] == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(InputError, match="time"):
        read_clip(path, time=10.0)
    result = Localizer.load(checkpoint).localize_video(path)
    assert result.heatmap.shape == (48, 64)


def test_released_pairs_are_wired_to_the_model_loaders(tiny_model, monkeypatch):
    # the loaders themselves are tested with reference-layout weights in the models tests;
    # a real VGGish pair is ~300 MB, too big to write here
    import avsdk.models

    seen = {}

    def fake_pair(*paths):
        seen["paths"] = paths
        return tiny_model

    monkeypatch.setattr(avsdk.models, "load_sacl_pair", fake_pair)
    monkeypatch.setattr(avsdk.models, "load_sspl", fake_pair)
    sacl = Localizer.load_sacl("frame_best.pth", "sound_best.pth")
    assert seen["paths"] == ("frame_best.pth", "sound_best.pth")
    assert sacl.transform == "stretch" and sacl.backend_name == "torch"
    sspl = Localizer.load_sspl("frame.pth", "sound.pth", "pcm.pth")
    assert seen["paths"] == ("frame.pth", "sound.pth", "pcm.pth") and sspl.transform == "centre_crop"


# ------------------------------------------------------------------ old transform names


def test_files_written_with_the_old_transform_names_load_silently(tiny_model, tmp_path):
    import json
    import warnings

    from avsdk.models import load_checkpoint, save_checkpoint

    for old, new in (("sacl", "stretch"), ("sspl", "centre_crop")):
        path = tmp_path / f"{old}.pt"
        save_checkpoint(path, tiny_model, transform=old)  # a checkpoint's meta as training wrote it before the rename
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert Localizer.load(path).transform == new
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    from avsdk.export.onnx_export import export_onnx, preprocessing_from_meta

    meta = load_checkpoint(path)[1]  # "sspl"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        onnx_path = export_onnx(tiny_model, tmp_path / "old.onnx", exporter="torchscript", verify=False,
                                checkpoint=path, preprocessing=preprocessing_from_meta(meta))
    manifest = tmp_path / "old.onnx.json"
    data = json.loads(manifest.read_text())
    assert data["preprocessing"]["transform"] == "centre_crop"  # a new manifest: the new name
    data["preprocessing"]["transform"] = "sspl"  # a manifest written before the rename
    manifest.write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert Localizer.load(onnx_path).transform == "centre_crop"


@pytest.mark.parametrize("old, new", [("sacl", "stretch"), ("sspl", "centre_crop")])
def test_old_transform_names_as_arguments_work_and_warn(tiny_model, checkpoint, old, new):
    with pytest.warns(DeprecationWarning, match=f"transform '{old}' is deprecated: use '{new}'") as caught:
        assert Localizer(lambda f, a: None, transform=old).transform == new
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning, match=f"use '{new}'") as caught:
        assert Localizer.load(checkpoint, transform=old).transform == new
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning, match=f"use '{new}'"):
        assert Localizer.from_model(tiny_model, transform=old).transform == new
    raw = np.random.default_rng(0).normal(size=(14, 14)).astype(np.float32)
    with pytest.warns(DeprecationWarning, match=f"use '{new}'"):
        by_old = result_from_similarity(raw, 100, 200, old)
    by_new = result_from_similarity(raw, 100, 200, new)
    np.testing.assert_array_equal(by_old.heatmap, by_new.heatmap)
    assert by_old.box == by_new.box


def test_load_names_an_unreadable_onnx_file(tmp_path):
    from avsdk.errors import AvsdkError

    pytest.importorskip("onnxruntime")
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(AvsdkError, match="broken.onnx"):
        Localizer.load(tmp_path / "broken.onnx")


# ------------------------------------------------------------------ visibility


@pytest.fixture(scope="module")
def calibration():
    from avsdk.visibility import Calibration

    # louder and higher-scoring: on screen (weights on standardised score, contrast, level)
    return Calibration(weights=(1.0, 0.5, 2.0), bias=0.0, mean=(0.5, 0.2, -30.0), scale=(0.1, 0.1, 10.0))


def test_visibility_travels_with_checkpoint_and_onnx(tiny_model, calibration, picture, sound, tmp_path):
    _needs_inputs()
    from avsdk.models import save_checkpoint
    from avsdk.visibility import audio_level_db, map_features

    path = tmp_path / "calibrated.pt"
    save_checkpoint(path, tiny_model, transform="stretch", visibility=calibration.to_json())
    loc = Localizer.load(path)
    assert loc.visibility == calibration
    result = loc(picture, sound)
    import soundfile

    waveform, rate = soundfile.read(sound, dtype="float32")
    expected = calibration.probability(map_features(result.similarity, audio_level_db(waveform, rate)))
    assert result.on_screen == pytest.approx(expected) and 0.0 < result.on_screen < 1.0
    # silence at the same picture: the level feature pulls the probability down
    quiet = loc(picture, np.zeros(32000, np.float32), sample_rate=16000)
    assert quiet.on_screen < result.on_screen
    # a model saved without one answers None
    assert Localizer.from_model(tiny_model)(picture, sound).on_screen is None

    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    from avsdk.export.onnx_export import export_onnx

    onnx_path = export_onnx(tiny_model, tmp_path / "calibrated.onnx", checkpoint=path,
                            visibility=calibration.to_json())
    onnx_loc = Localizer.load(onnx_path)
    assert onnx_loc.visibility == calibration
    assert onnx_loc(picture, sound).on_screen == pytest.approx(result.on_screen, abs=1e-4)


def test_a_damaged_calibration_is_named(tiny_model, tmp_path):
    from avsdk.models import save_checkpoint

    path = tmp_path / "bad.pt"
    save_checkpoint(path, tiny_model, transform="stretch", visibility={"format": "avsdk.visibility"})
    with pytest.raises(InputError, match="meta visibility"):
        Localizer.load(path)


# ------------------------------------------------------------------ refusals


def _unused_backend(frames, log_mel):
    raise AssertionError("a refused Localizer never runs its backend")


@pytest.fixture(scope="module")
def given(checkpoint, picture, sound, tmp_path_factory):
    """What the refusal table's calls take: the checkpoint, a picture (240x180) and a sound file,
    a Localizer of the checkpoint and its result, and a folder holding model.h5 (no model),
    small.png (10x10), a folder named folder.png and a file named file."""
    from types import SimpleNamespace

    folder = tmp_path_factory.mktemp("refusals")
    (folder / "model.h5").write_bytes(b"x")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "small.png")
    (folder / "folder.png").mkdir()
    (folder / "file").write_text("x")
    localizer = Localizer.load(checkpoint)
    return SimpleNamespace(checkpoint=checkpoint, picture=picture, sound=sound, folder=folder,
                           localizer=localizer, result=localizer(picture, sound))


_ANY_TRANSFORM = "'stretch' or 'centre_crop', received"
_ABSENT_CUDA = "cuda:7" if torch.cuda.is_available() else "cuda"

# call(given), the argument its InputError names, a regex the message holds after
# "<argument>: expected "
REFUSALS = {
    "Localizer transform 'crop'": (lambda g: Localizer(_unused_backend, transform="crop"), "transform",
                                   f"{_ANY_TRANSFORM} 'crop'"),
    "Localizer frontend 'bogus'": (lambda g: Localizer(_unused_backend, frontend="bogus"), "frontend",
                                   "one of .*, received 'bogus'"),
    "Localizer visibility dict": (lambda g: Localizer(_unused_backend, visibility={"weights": [1, 2, 3]}),
                                  "visibility", "None or an avsdk.visibility.Calibration"),
    "load missing file": (lambda g: Localizer.load(g.folder / "missing.pt"), "path",
                          "an existing .pt, .onnx or .engine file, received .*missing.pt"),
    "load .h5 file": (lambda g: Localizer.load(g.folder / "model.h5"), "path",
                      "a file ending in .pt, .onnx or .engine, received .*model.h5"),
    "load None": (lambda g: Localizer.load(None), "path", "a str or os.PathLike .*, received None"),
    "load 3": (lambda g: Localizer.load(3), "path", "a str or os.PathLike .*, received 3"),
    "load transform 'crop'": (lambda g: Localizer.load(g.checkpoint, transform="crop"), "transform",
                              f"{_ANY_TRANSFORM} 'crop'"),
    "load frontend 'bogus'": (lambda g: Localizer.load(g.checkpoint, frontend="bogus"), "frontend",
                              "one of .*, received 'bogus'"),
    "load device 'foo'": (lambda g: Localizer.load(g.checkpoint, device="foo"), "device",
                          "a torch device .*, received 'foo'"),
    "load device of an absent GPU": (lambda g: Localizer.load(g.checkpoint, device=_ABSENT_CUDA), "device",
                                     f"'cpu' or a CUDA device .*, received '{_ABSENT_CUDA}'"),
    "call array without sample_rate": (lambda g: g.localizer(g.picture, np.zeros(16000, np.float32)),
                                       "sample_rate", "the rate in Hz of the audio array"),
    "call file with sample_rate": (lambda g: g.localizer(g.picture, g.sound, sample_rate=16000), "sample_rate",
                                   "None when audio is a file"),
    # the readers call their argument "source"; the Localizer's caller passed "frame" and "audio"
    "call missing frame file": (lambda g: g.localizer(g.folder / "missing.png", g.sound), "frame",
                                "an existing image file, received .*missing.png"),
    "call 2-channel frame": (lambda g: g.localizer(np.zeros((5, 5, 2), np.uint8), g.sound), "frame",
                             r"an image array .*, received ndarray of shape \(5, 5, 2\)"),
    "call missing audio file": (lambda g: g.localizer(g.picture, g.folder / "missing.wav"), "audio",
                                "an existing audio file, received .*missing.wav"),
    "call audio None": (lambda g: g.localizer(g.picture, None, sample_rate=16000), "audio",
                        "a sound file path .*, received None"),
    "predict batches of two sizes": (
        lambda g: g.localizer.predict(torch.zeros(1, 3, 224, 224), torch.zeros(2, 3, 1, 96, 64)), "log_mel",
        r"a batch of 1 to match frames, received Tensor of shape \(2, 3, 1, 96, 64\)"),
    "localize_video None": (lambda g: g.localizer.localize_video(None), "path", "a video file path, received None"),
    "result_from_similarity transform 'center'": (
        lambda g: result_from_similarity(np.zeros((14, 14)), 64, 80, "center"), "transform",
        f"{_ANY_TRANSFORM} 'center'"),
    "save_overlay to a folder": (lambda g: g.result.save_overlay(g.folder / "folder.png", g.picture), "path",
                                 "a file to write, received .*folder.png', an existing folder"),
    "save_overlay under a file": (lambda g: g.result.save_overlay(g.folder / "file" / "o.png", g.picture), "path",
                                  "a path under a folder, received .*o.png' .*is a file"),
    "save_overlay to None": (lambda g: g.result.save_overlay(None, g.picture), "path", "a .png file path"),
    "save_overlay of another frame": (lambda g: g.result.save_overlay(g.folder / "o.png", g.folder / "small.png"),
                                      "image", r"the localized frame.*\(180, 240\).*\(10, 10\)"),
    "save_overlay alpha 'a'": (lambda g: g.result.save_overlay(g.folder / "o.png", g.picture, alpha="a"), "alpha",
                               r"a number in \[0, 1\], received 'a'"),
}


@pytest.mark.parametrize("call, argument, expected", REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_arguments_are_input_errors_naming_them(given, call, argument, expected):
    before = sorted(given.folder.rglob("*"))
    with pytest.raises(InputError) as caught:
        call(given)
    assert_refusal(caught.value, argument, expected)
    assert sorted(given.folder.rglob("*")) == before  # a refused call writes nothing


@pytest.mark.parametrize("frontend", [name for name in IMPLEMENTATIONS if name != "auto"])
def test_every_frontend_names_non_finite_audio_audio(checkpoint, picture, frontend):
    try:
        localizer = Localizer.load(checkpoint, frontend=frontend)
    except ImportError:
        pytest.skip(f"the {frontend} audio frontend is not built here")
    noisy = np.zeros(16000, np.float32)
    noisy[100] = np.nan
    with pytest.raises(InputError, match="^audio: expected finite samples") as caught:
        localizer(picture, noisy, sample_rate=16000)
    assert caught.value.argument == "audio"
