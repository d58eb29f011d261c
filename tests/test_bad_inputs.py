"""Hostile inputs per public entry point, each with the
outcome it must have. An avsdk error is one line naming what the user passed, what was expected
and what was received; a command-line tool prints it as ``error: ...`` with exit status 2.

(The MPEG-TS video with 44.1 kHz AAC sound that was refused is in test_video_timing.py.)
"""
from __future__ import annotations

import errno
import io
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from avsdk import cli
from avsdk.errors import CheckpointError, InputError


@pytest.fixture
def frame_and_audio(tmp_path):
    import soundfile

    frame, audio = tmp_path / "frame.png", tmp_path / "clip.wav"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(frame)
    soundfile.write(audio, (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    return str(frame), str(audio)


def _one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len("error: "):-1]


# ------------------------------------------------------------ integer audio arrays

_PCM16 = (np.random.default_rng(1).standard_normal(20_000) * 3000).astype(np.int16)

# audio: how an InputError naming audio must begin, None for accepted (read as the same sound
# as _PCM16 / 32768)
WIDER = "float samples or integer PCM as uint8, int8, int16 or int32"  # no PCM format stores these
AMBIGUOUS = "int32 PCM at 32-bit full scale"  # 16-bit values would read as near silence
AUDIO = {
    "int16": (_PCM16, None),
    "int32 at 32-bit scale": (_PCM16.astype(np.int32) * 65536, None),
    "big-endian int16": (_PCM16.astype(">i2"), None),
    "int32 holding int16 values": (_PCM16.astype(np.int32), AMBIGUOUS),
    "int32 silence": (np.zeros(20_000, np.int32), AMBIGUOUS),
    "int64 holding int16 values": (_PCM16.astype(np.int64), WIDER),
    "int64 at 32-bit scale": (_PCM16.astype(np.int64) * 65536, WIDER),
    "list of ints (np.array: int64)": (_PCM16.tolist(), WIDER),
    "uint16": (_PCM16.astype(np.int32).astype(np.uint16), WIDER),
    "uint32": (np.zeros(20_000, np.uint32), WIDER),
}


def _prepare(audio):
    from avsdk.audio import prepare_waveform

    return prepare_waveform(audio, 16000)


def _examples(audio):
    from avsdk.frontend import audio_to_examples

    return audio_to_examples(audio, 16000, implementation="numpy")


def _localizer(audio):
    from avsdk.localizer import Localizer

    loc = Localizer(lambda frames, log_mel: np.zeros((len(frames), 14, 14), np.float32))
    return loc.inputs(np.zeros((32, 32, 3), np.uint8), audio, sample_rate=16000).audio


@pytest.mark.parametrize("entry", [_prepare, _examples, _localizer], ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("case", AUDIO)
def test_integer_audio_is_read_at_its_scale_or_refused(case, entry):
    audio, expected = AUDIO[case]
    if expected is None:
        np.testing.assert_allclose(entry(audio), entry(_PCM16 / 32768.0), atol=1e-5)
        return
    with pytest.raises(InputError) as caught:
        entry(audio)
    message = str(caught.value)
    assert caught.value.argument == "audio" and "\n" not in message
    assert message.startswith(f"audio: expected {expected}") and ", received " in message


# ------------------------------------------------------------ refused .pt files

class _RunsCode:
    """Unpickling this runs ``touch <marker>``: a refusal must leave no marker."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _onnx_bytes() -> bytes:
    try:
        from onnx import TensorProto, helper
    except ImportError:  # what onnx.save writes first: ir_version, producer_name, a graph
        return b"\x08\x08\x12\x07pytorch\x1a\x052.1.0:\x02\n\x00"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, producer_name="pytorch").SerializeToString()


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write_weight_file(kind: str, path, marker) -> None:
    if kind == "torch.save of os.system":
        torch.save({"state_dict": {}, "x": _RunsCode(marker)}, path)
    elif kind == "raw pickle of os.system":
        path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=4))
    elif kind == "raw pickle":
        path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    elif kind == "JPEG renamed .pt":
        path.write_bytes(_jpeg_bytes())
    elif kind == "ONNX renamed .pt":
        path.write_bytes(_onnx_bytes())


# kind: what avsdk's message must say (after "<what> '<path>' ")
WEIGHT_FILES = {
    "torch.save of os.system": "holds pickled Python objects (posix.system), which run code",
    "raw pickle of os.system": "is a raw pickle, not a PyTorch file, and holds pickled Python objects (posix.system)",
    "raw pickle": "is not a readable PyTorch file: it is a raw pickle, and avsdk never unpickles arbitrary objects",
    "JPEG renamed .pt": "is not a readable PyTorch file: it is a JPEG image",
    "ONNX renamed .pt": "is not a readable PyTorch file: it is an ONNX model",
}


def _check_refusal(message: str, kind: str, marker) -> None:
    assert WEIGHT_FILES[kind].replace("posix.", f"{os.system.__module__}.") in message
    assert "\n" not in message
    assert "weights_only" not in message and "torch.load" not in message and "will likely succeed" not in message
    assert not marker.exists(), "the file's code ran"


@pytest.mark.parametrize("kind", WEIGHT_FILES)
def test_refused_weight_files_get_avsdk_s_one_line_message(kind, tmp_path, recwarn):
    from avsdk.localizer import Localizer
    from avsdk.models import load_checkpoint
    from avsdk.models.weights import read_state_dict

    path, marker = tmp_path / "model.pt", tmp_path / "pwned"
    _write_weight_file(kind, path, marker)
    for load in (load_checkpoint, read_state_dict, Localizer.load):
        with pytest.raises(CheckpointError) as caught:
            load(path)
        _check_refusal(str(caught.value), kind, marker)
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]  # torch's warning


@pytest.mark.parametrize("kind", WEIGHT_FILES)
def test_cli_refuses_weight_files_in_one_line(kind, frame_and_audio, tmp_path, capsys):
    path, marker = tmp_path / "model.pt", tmp_path / "pwned"
    _write_weight_file(kind, path, marker)
    assert cli.main(["localize", str(path), *frame_and_audio]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _check_refusal(_one_line_error(captured.err), kind, marker)


def test_legacy_torch_files_still_load(tmp_path):
    from avsdk.models.weights import read_state_dict

    path = tmp_path / "old.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(read_state_dict(path)["w"], torch.ones(2))


# ------------------------------------------------------------ outputs written atomically

def _full_disk_after_some_bytes(monkeypatch):
    """Image.save writes part of the PNG, then the disk is full."""
    def save(self, fp, format=None, **params):
        fp.write(b"\x89PNG\r\n\x1a\n truncated")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", save)


def test_localize_out_on_a_full_disk_keeps_the_previous_file(checkpoint, frame_and_audio, tmp_path,
                                                              monkeypatch, capsys):
    out = tmp_path / "out" / "o.png"
    out.parent.mkdir()
    Image.fromarray(np.full((60, 80, 3), 7, np.uint8)).save(out)
    before = out.read_bytes()
    _full_disk_after_some_bytes(monkeypatch)
    assert cli.main(["localize", str(checkpoint), *frame_and_audio, "--out", str(out)]) == 2
    message = _one_line_error(capsys.readouterr().err)
    assert message.startswith("--out: expected a file that can be written, received ")
    assert str(out) in message and "No space left on device" in message
    assert out.read_bytes() == before
    assert os.listdir(out.parent) == ["o.png"]  # no temporary file left behind


def test_save_overlay_names_path_when_the_write_fails(tmp_path, monkeypatch):
    from avsdk.overlay import save_overlay

    _full_disk_after_some_bytes(monkeypatch)
    with pytest.raises(InputError, match="^path: expected a file that can be written, .*No space left"):
        save_overlay(tmp_path / "o.png", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ a pipe closed early

class _ClosedPipe(io.TextIOBase):
    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_cli_exits_quietly_when_its_reader_closes_the_pipe(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert cli.main(["info"]) == 1
    assert capsys.readouterr().err == ""


def test_cli_in_a_closed_pipe_prints_no_traceback():
    """``avsdk info | head -0``: the pipe's read end is closed before the command writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "avsdk.cli", "info"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 1
    assert done.stderr == ""


# ------------------------------------------------------------ huge images

def _bomb_png(path, width: int, height: int) -> None:
    """A black 1-bit PNG of width x height written row by row (20000x20000: 50 KB on disk,
    400 million pixels): a decompression bomb that avsdk must refuse from its header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    data = b"".join(packer.compress(row * min(1000, height - start)) for start in range(0, height, 1000))
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data + packer.flush()) + chunk(b"IEND", b""))


def _maps_of(frames, heard):
    """A stand-in network whose maps follow its inputs, so that a NaN or Inf that preprocessing
    let through reaches the map (and the Localizer's check of it)."""
    value = float(np.mean(np.asarray(frames, np.float64))) + float(np.mean(np.asarray(heard, np.float64)))
    maps = np.full((len(frames), 7, 7), value, np.float32)
    maps[:, 2, 3] += 1.0
    return maps


_TONE = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    _bomb_png(path, 20000, 20000)
    assert path.stat().st_size < 400_000
    return path


def test_a_decompression_bomb_is_refused_naming_frame(bomb):
    from avsdk.frames import load_frame
    from avsdk.localizer import Localizer

    expected = (f"frame: expected an image of at most 120,000,000 pixels (the max_pixels limit), "
                f"received {str(bomb)!r} (400,000,000 pixels)")
    with pytest.raises(InputError) as caught:
        Localizer(_maps_of)(bomb, _TONE, sample_rate=16000)
    assert str(caught.value) == expected and caught.value.argument == "frame"
    with pytest.raises(InputError, match="^source: expected an image of at most 120,000,000 pixels"):
        load_frame(bomb)


def test_cli_refuses_a_bomb_in_one_line_naming_the_flag(checkpoint, frame_and_audio, bomb, capsys):
    assert cli.main(["localize", str(checkpoint), str(bomb), frame_and_audio[1]]) == 2
    assert _one_line_error(capsys.readouterr().err) == (
        f"frame: expected an image of at most 120,000,000 pixels (the --max-pixels limit), "
        f"received {str(bomb)!r} (400,000,000 pixels)")


def test_max_pixels_sets_the_limit(checkpoint, frame_and_audio, capsys):
    from avsdk.frames import frame_input, load_frame
    from avsdk.localizer import Localizer

    frame, audio = frame_and_audio  # 80x60
    with pytest.raises(InputError) as caught:
        Localizer(_maps_of, max_pixels=4799)(frame, audio)
    assert str(caught.value) == (f"frame: expected an image of at most 4,799 pixels (the max_pixels limit), "
                                 f"received {frame!r} (80x60, 4,800 pixels)")
    assert Localizer(_maps_of, max_pixels=4800)(frame, audio).heatmap.shape == (60, 80)
    pixels = np.zeros((60, 80, 3), np.uint8)
    for source in (pixels, Image.fromarray(pixels)):  # arrays and PIL images have the same limit
        with pytest.raises(InputError, match=r"^source: .* at most 100 pixels .*\(80x60, 4,800 pixels\)"):
            load_frame(source, max_pixels=100)
        assert load_frame(source, max_pixels=None).shape == (60, 80, 3)
    assert frame_input(frame, max_pixels=None)[1] == (60, 80)
    for bad in (0, -1, 2.5, True, "100"):
        with pytest.raises(InputError, match="^max_pixels: expected a positive int"):
            Localizer(_maps_of, max_pixels=bad)
    assert cli.main(["localize", str(checkpoint), frame, audio, "--max-pixels", "100"]) == 2
    assert _one_line_error(capsys.readouterr().err).startswith(
        "frame: expected an image of at most 100 pixels (the --max-pixels limit), received ")
    assert cli.main(["localize", str(checkpoint), frame, audio, "--max-pixels", "-5"]) == 2
    assert _one_line_error(capsys.readouterr().err).startswith("--max-pixels: expected a positive int")
    assert cli.main(["localize", str(checkpoint), frame, audio, "--max-pixels", "0"]) == 0  # 0: none


def test_max_pixels_replaces_pillow_s_own_limit(tmp_path, monkeypatch, recwarn):
    """Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; avsdk's limit decides
    for the files it opens, and Pillow's setting is left as it was."""
    import PIL.Image

    from avsdk.frames import load_frame

    path = tmp_path / "f.png"
    Image.fromarray(np.full((100, 100, 3), 9, np.uint8)).save(path)  # 10,000 pixels
    for pillow_limit in (6000, 1000):  # Pillow would warn, then refuse
        monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", pillow_limit)
        assert load_frame(path).shape == (100, 100, 3)
        assert load_frame(path, max_pixels=None)[0, 0].tolist() == [9, 9, 9]
        with pytest.raises(InputError, match=r"at most 9,999 pixels .*10,000 pixels"):
            load_frame(path, max_pixels=9999)
        assert PIL.Image.MAX_IMAGE_PIXELS == pillow_limit
    assert not [w for w in recwarn if issubclass(w.category, PIL.Image.DecompressionBombWarning)]


def test_a_big_jpeg_is_decoded_small_with_its_orientation(tmp_path, monkeypatch):
    import avsdk.frames as frames

    rng = np.random.default_rng(5)
    stored = np.clip(rng.normal(128, 40, (1000, 1800, 3)), 0, 255).astype(np.uint8)  # landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # shown as a 1800x1000 portrait
    path = tmp_path / "portrait.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    decoded = []
    original = frames._from_pil
    monkeypatch.setattr(frames, "_from_pil", lambda image, argument: decoded.append(image.size)
                        or original(image, argument))
    for transform in ("stretch", "centre_crop"):
        tensor, size = frames.frame_input(path, transform)
        assert size == (1800, 1000) and decoded[-1] == (500, 900)  # 1/2 scale: >= 448 on each side
        full = frames.frame_tensor(frames.load_frame(path), transform)
        # pixel noise is the worst case: 1.2 grey levels apart on average, at most 7 (centre_crop)
        gap = np.abs(tensor - full.numpy())
        assert float(gap.mean()) < 0.03 and float(gap.max()) < 0.15


def test_heatmap_is_float32_at_the_frame_s_size_and_the_box_agrees_with_it():
    from avsdk import metrics
    from avsdk.localizer import BOX_GRID_SIDE, heatmap_at_image_size, result_from_similarity
    from avsdk.regions import component_box

    raw = np.random.default_rng(2).standard_normal((14, 14)).astype(np.float32)
    for transform in ("stretch", "centre_crop"):
        result = result_from_similarity(raw, 1500, 2600, transform)  # larger than BOX_GRID_SIDE
        assert 2600 > BOX_GRID_SIDE
        heatmap = result.heatmap
        assert heatmap.shape == (1500, 2600) and heatmap.dtype == np.float32 and result.heatmap is heatmap
        peak = metrics.peak(heatmap)
        box = component_box(heatmap >= 0.5, peak)
        assert max(abs(a - b) for a, b in zip(box, result.box)) <= 2 * 2600 / BOX_GRID_SIDE
        assert max(abs(a - b) for a, b in zip(peak, result.peak)) <= 2 * 2600 / BOX_GRID_SIDE
        # the band-by-band float32 heatmap is the whole-image float64 one, cast
        if transform == "stretch":
            old = metrics.normalize_map(metrics.resize_bilinear(raw, (1500, 2600)))
            np.testing.assert_allclose(heatmap_at_image_size(raw, 1500, 2600), old, rtol=0, atol=1e-6)


def test_overlay_is_blended_band_by_band_as_a_whole():
    from avsdk import overlay

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    heatmap = rng.random((700, 900), dtype=np.float32)
    whole = (0.6 * image.astype(np.float32) + 0.4 * overlay.colorize(heatmap).astype(np.float32))
    np.testing.assert_array_equal(overlay.blend(image, heatmap, 0.4), np.round(whole).astype(np.uint8))


# ------------------------------------------------------------ errors about what the user never passed

class _TinyGraph(torch.nn.Module):
    """A model the exporter takes: maps [B, 7, 7] from the frame's mean, plus the sound's."""

    def __init__(self, scale: float = 1.0, log: bool = False):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.full((1,), scale))
        self.log = log

    def forward(self, frame, log_mel):
        pooled = torch.nn.functional.avg_pool2d(frame.mean(1, keepdim=True), frame.shape[-1] // 7)[:, 0]
        maps = pooled * self.scale + log_mel.mean(dim=(1, 2, 3, 4))[:, None, None]
        return torch.log(maps - 100.0) if self.log else maps  # log of a negative: NaN maps


def _export(path, module=None, **preprocessing):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from avsdk.export.manifest import Preprocessing
    from avsdk.export.onnx_export import export_onnx

    return export_onnx(module or _TinyGraph(), path, exporter="torchscript", verify=False,
                       preprocessing=Preprocessing(**preprocessing))


def _edit_manifest(path, **preprocessing) -> None:
    import dataclasses

    from avsdk.export.manifest import read_manifest, write_manifest

    manifest = read_manifest(path)
    write_manifest(dataclasses.replace(manifest, preprocessing=dataclasses.replace(manifest.preprocessing,
                                                                                   **preprocessing)), path)


def _hand_graph(path, frame_type: str = "float", axes=(1,)):
    """An ONNX graph written with onnx.helper: similarity = mean of the frame over ``axes``."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes, source = [], "frame"
    if frame_type != "float":
        nodes.append(helper.make_node("Cast", ["frame"], ["frame_f"], to=TensorProto.FLOAT))
        source = "frame_f"
    nodes.append(helper.make_node("ReduceMean", [source], ["similarity"], axes=list(axes), keepdims=0))
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("frame", getattr(TensorProto, frame_type.upper()), ["batch", 3, 224, 224]),
        helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, ["batch", 3, 1, 96, 64])],
        [helper.make_tensor_value_info("similarity", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _nan_checkpoint(path, model):
    import copy

    from avsdk.models import save_checkpoint

    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.visual_trunk._conv_stem.weight[0, 0, 0, 0] = float("nan")
    save_checkpoint(path, broken)
    return path


def _meta_checkpoint(**meta):
    def build(path, model):
        from avsdk.models import save_checkpoint

        save_checkpoint(path, model, **meta)
        return path
    return build


@pytest.fixture(scope="module")
def edge_model(checkpoint):
    from avsdk.models import load_checkpoint

    return load_checkpoint(checkpoint)[0]


# case: (build(path, model) writes the file, its suffix, how avsdk's message begins ({path}: the file,
# {manifest}: its manifest)
MODEL_FILES = {
    # NaN weights: every call failed with "similarity: expected a finite map"
    "checkpoint with a NaN weight": (_nan_checkpoint, ".pt", "checkpoint {path} holds weights that are NaN or "
                                     "Inf: visual_trunk._conv_stem.weight (1 of 864); every map it computes"),
    "ONNX graph with a NaN weight": (lambda p, m: _export(p, _TinyGraph(float("nan"))), ".onnx",
                                     "ONNX graph {path} holds weights that are NaN or Inf: model.scale (1 of 1)"),
    # a bad value in the meta blamed transform / clip_seconds, as if the caller had passed it
    "meta transform 'crop'": (_meta_checkpoint(transform="crop"), ".pt", "checkpoint {path} meta: transform: "
                              "expected 'stretch' or 'centre_crop', received 'crop' (the value saved with the "
                              "model)"),
    "meta clip_seconds 0.5": (_meta_checkpoint(clip_seconds=0.5), ".pt", "checkpoint {path} meta: clip_seconds: "
                              "expected >= 0.975 s (one 96-frame log-mel example), received 0.5 (the value"),
    "meta clip_seconds NaN": (_meta_checkpoint(clip_seconds=float("nan")), ".pt", "checkpoint {path} meta: "
                              "clip_seconds: expected a finite number of seconds, received nan"),
    "meta clip_seconds '3'": (_meta_checkpoint(clip_seconds="3"), ".pt", "checkpoint {path} meta: clip_seconds: "
                              "expected a finite number of seconds, received '3'"),
    "manifest transform 'crop'": (lambda p, m: _export(p) and _edit_manifest(p, transform="crop"), ".onnx",
                                  "manifest {manifest} preprocessing: transform: expected 'stretch' or "
                                  "'centre_crop', received 'crop'"),
    "manifest audio 'mp3'": (lambda p, m: _export(p) and _edit_manifest(p, audio="mp3"), ".onnx",
                             "manifest {manifest} preprocessing: audio kind: expected one of"),
    # a graph of other input sizes: "frame: expected [B, 3, 112, 112]" at every call
    "graph 112x112, manifest 224": (lambda p, m: _export(p, image_size=112) and _edit_manifest(p, image_size=224),
                                    ".onnx", "ONNX graph {path} takes frame [batch, 3, 112, 112], but by its "
                                    "manifest {manifest} avsdk feeds it frame [B, 3, 224, 224]: the graph and"),
    "graph of 5 s, manifest 3 s": (lambda p, m: _export(p, clip_seconds=5.0, examples=5)
                                   and _edit_manifest(p, clip_seconds=3.0), ".onnx",
                                   "ONNX graph {path} takes log_mel [batch, 5, 1, 96, 64], but by its manifest "
                                   "{manifest} avsdk feeds it log_mel [B, 3, 1, 96, 64]"),
    "graph of 5 s, no manifest": (lambda p, m: _export(p, clip_seconds=5.0, examples=5)
                                  and os.remove(str(p) + ".json"), ".onnx",
                                  "ONNX graph {path} takes log_mel [batch, 5, 1, 96, 64], but by the default "
                                  "preprocessing (it has no manifest 'model.onnx.json') avsdk feeds it log_mel"),
    # an output of the wrong rank blamed backend, which the caller never passed
    "graph output [batch, 224]": (lambda p, m: _hand_graph(p, axes=(1, 2)), ".onnx",
                                  "ONNX graph {path} outputs similarity [batch, 224]; an avsdk graph outputs maps"),
    # non-float inputs were ONNX Runtime's InvalidArgument at every call
    "graph with a uint8 frame": (lambda p, m: _hand_graph(p, "uint8"), ".onnx", "ONNX graph {path} takes frame "
                                 "as tensor(uint8); an avsdk graph takes float32 inputs"),
    "graph with an int64 frame": (lambda p, m: _hand_graph(p, "int64"), ".onnx", "ONNX graph {path} takes frame "
                                  "as tensor(int64); an avsdk graph takes float32 inputs"),
}


@pytest.fixture(params=MODEL_FILES)
def bad_model(request, edge_model, tmp_path):
    build, suffix, message = MODEL_FILES[request.param]
    path = tmp_path / f"model{suffix}"
    build(path, edge_model)
    return path, message.format(path=repr(str(path)), manifest=repr(str(path) + ".json"))


def test_bad_model_files_are_refused_at_load_naming_the_file(bad_model):
    from avsdk.localizer import Localizer

    path, message = bad_model
    with pytest.raises(CheckpointError) as caught:
        Localizer.load(path)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_cli_refuses_bad_model_files_in_one_line(bad_model, frame_and_audio, capsys):
    path, message = bad_model
    assert cli.main(["localize", str(path), *frame_and_audio]) == 2
    assert _one_line_error(capsys.readouterr().err).startswith(message)


def test_settings_from_a_file_are_the_caller_s_once_overridden(edge_model, tmp_path):
    from avsdk.localizer import Localizer

    path = _meta_checkpoint(transform="crop")(tmp_path / "crop.pt", edge_model)
    assert Localizer.load(path, transform="centre_crop").transform == "centre_crop"
    with pytest.raises(InputError, match="^transform: expected 'stretch' or 'centre_crop', received 'center'"):
        Localizer.load(path, transform="center")  # the caller's own value: named as theirs


def test_a_graph_with_its_own_input_size_is_fed_that_size(frame_and_audio, tmp_path):
    """A 112x112 graph whose manifest says so, or that has none, is fed 112x112 frames."""
    from avsdk.localizer import Localizer

    with_manifest = _export(tmp_path / "m112.onnx", image_size=112)
    alone = _export(tmp_path / "a112.onnx", image_size=112)
    os.remove(str(alone) + ".json")
    for path in (with_manifest, alone):
        localizer = Localizer.load(path)
        assert localizer.image_size == 112
        assert localizer(*frame_and_audio).heatmap.shape == (60, 80)


def test_maps_a_model_file_gets_wrong_name_the_file(frame_and_audio, tmp_path, monkeypatch):
    """A loaded graph that returns NaN maps, or maps of the wrong rank, is named as the
    culprit; a caller's own backend is named ``backend``."""
    from avsdk.localizer import Localizer

    nan_maps = _export(tmp_path / "nan_maps.onnx", _TinyGraph(log=True))  # finite weights, NaN output
    with pytest.raises(CheckpointError) as caught:
        Localizer.load(nan_maps)(*frame_and_audio)
    assert str(caught.value).startswith(f"ONNX graph {str(nan_maps)!r} returned maps holding 49 NaN or Inf of "
                                        "49, expected maps of finite values")
    localizer = Localizer.load(_export(tmp_path / "ok.onnx"))
    monkeypatch.setattr(localizer.backend.runner, "run", lambda frame, audio: np.zeros((len(frame), 224)))
    with pytest.raises(CheckpointError, match=r"^ONNX graph .*ok.onnx' returned ndarray of shape \(1, 224\)"):
        localizer(*frame_and_audio)
    for maps, expected in ((lambda f, a: np.zeros((len(f), 224)), "maps of shape [1, h, w]"),
                           (lambda f, a: np.full((len(f), 7, 7), np.nan), "maps of finite values"),
                           (lambda f, a: "maps", "maps of shape [1, h, w]")):
        with pytest.raises(InputError, match=rf"^backend: expected {re.escape(expected)}, received"):
            Localizer(maps)(*frame_and_audio)


def test_a_model_with_nan_weights_in_memory_is_refused_naming_model(edge_model):
    import copy

    from avsdk.localizer import Localizer

    broken = copy.deepcopy(edge_model)
    with torch.no_grad():
        broken.visual_trunk._conv_stem.weight.fill_(float("inf"))
    with pytest.raises(InputError, match=r"^model: expected a model whose weights are finite, received one "
                                         r"with NaN or Inf in visual_trunk._conv_stem.weight \(864 of 864\)"):
        Localizer.from_model(broken)


# audio: what must be named (sample_rate used to be blamed for a bytes object)
AUDIO_ARGUMENTS = {
    "bytes": (b"RIFF\x24\x00\x00\x00WAVEfmt ", None, "audio: expected a sound file path or binary file object, "
              "or a waveform array [T] / [T, channels], received bytes of length 16 (an encoded file in memory? "
              "pass io.BytesIO(data))"),
    "bytearray": (bytearray(b"RIFF"), 16000, "audio: expected a sound file path or binary file object, or a "
                  "waveform array [T] / [T, channels], received bytearray of length 4"),
    "an int": (5, None, "audio: expected a sound file path or binary file object, or a waveform array [T] / "
               "[T, channels], received 5"),
    "a dict": ({"samples": []}, 16000, "audio: expected a sound file path"),
    "a ragged list": ([[0.1, 0.2], [0.3]], 16000, "audio: expected an array of numbers, received list that is "
                      "not one array"),
    "a huge float": (np.full(16000, 1e300), 16000, "audio: expected float samples of magnitude at most 1e+12"),
    "array without a rate": (_TONE, None, "sample_rate: expected the rate in Hz of the audio array"),
}


@pytest.mark.parametrize("case", AUDIO_ARGUMENTS)
def test_audio_arguments_are_named_as_passed(case):
    from avsdk.localizer import Localizer

    audio, rate, message = AUDIO_ARGUMENTS[case]
    with pytest.raises(InputError) as caught:
        Localizer(_maps_of)(np.zeros((8, 8, 3), np.uint8), audio, sample_rate=rate)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert caught.value.argument == message.split(":")[0]


# ------------------------------------------------------------ fuzzed arrays: a result or an InputError naming them

_SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 3e38, 65504.0, 5e-324, -0.0, 1.5, -1.0]
_EXOTIC = st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3),
                    st.sampled_from([np.dtype(t) for t in (np.float16, np.longdouble, ">f4", ">f8", ">i2", ">u2",
                                                           np.int8, np.int64, np.uint16, bool, object)]))


def _elements(dtype: np.dtype, low: float, high: float, valid: bool):
    """Values for ``dtype``: in [low, high] (valid pixels or samples) when ``valid``, else of every
    class: the dtype's whole range and, for floats, NaN, Inf, huge, subnormal, -0.0."""
    if dtype.kind == "O":
        return st.one_of(st.none(), st.floats(), st.text(max_size=2), st.integers())
    anything = hnp.from_dtype(dtype)
    if dtype.kind != "f":
        return anything
    in_range = st.floats(low, high, width=min(64, 8 * dtype.itemsize))
    if valid:
        return in_range
    with np.errstate(over="ignore"):  # 1e300 as float16 is inf: one more of them
        special = [np.asarray(v).astype(dtype).item() for v in _SPECIAL]
    return st.one_of(in_range, st.sampled_from(special), anything)


def _arrays(common: tuple, shapes, low: float, high: float):
    """Arrays of any dtype (the ``common`` ones of the input half of the time), shape and values."""
    dtypes = st.one_of(st.sampled_from([np.dtype(t) for t in common]), _EXOTIC)
    return st.tuples(dtypes, shapes, st.booleans()).flatmap(
        lambda drawn: hnp.arrays(drawn[0], drawn[1], elements=_elements(drawn[0], low, high, drawn[2])))


def _result_or_named_error(call, argument: str, value: np.ndarray) -> None:
    from avsdk.localizer import LocalizationResult

    try:
        result = call()
    except InputError as exc:
        assert exc.argument == argument and str(exc).startswith(f"{argument}: ") and "\n" not in str(exc), exc
        if "expected finite" in str(exc):  # true of the caller's values, not of an overflow of ours
            assert value.dtype.kind == "f" and not np.isfinite(value).all(), exc
        event(str(exc).split(", received")[0][:60])  # pytest --hypothesis-show-statistics
        return
    event("a result")
    assert isinstance(result, LocalizationResult)
    assert np.isfinite(result.similarity).all() and np.isfinite(result.heatmap).all()
    assert result.on_screen is None or 0.0 <= result.on_screen <= 1.0


@pytest.fixture(scope="module")
def fuzzed_localizer():
    from avsdk.localizer import Localizer
    from avsdk.visibility import Calibration

    # with a calibration, so that the audio's level (before the rescale) is computed too
    return Localizer(_maps_of, visibility=Calibration(weights=(1.0, 0.5, 2.0), bias=0.0, mean=(0.5, 0.2, -30.0),
                                                       scale=(0.1, 0.1, 10.0)))


_FRAME_SHAPES = st.one_of(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
                          st.tuples(st.integers(0, 7), st.integers(0, 7)),
                          st.tuples(st.integers(1, 7), st.integers(1, 7), st.sampled_from([1, 2, 3, 4])))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(frame=_arrays((np.uint8, np.float32, np.float64), _FRAME_SHAPES, 0.0, 1.0))
def test_fuzzed_frames_give_a_result_or_an_error_naming_frame(fuzzed_localizer, frame):
    _result_or_named_error(lambda: fuzzed_localizer(frame, _TONE, sample_rate=16000), "frame", frame)


_AUDIO_SHAPES = st.one_of(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
                          st.tuples(st.integers(0, 2500)), st.tuples(st.integers(0, 2500), st.integers(1, 3)))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(audio=_arrays((np.float32, np.float64, np.int16, np.uint8), _AUDIO_SHAPES, -1.0, 1.0),
       rate=st.sampled_from([8000, 16000, 44100]))
def test_fuzzed_audio_gives_a_result_or_an_error_naming_audio(fuzzed_localizer, audio, rate):
    _result_or_named_error(lambda: fuzzed_localizer(np.full((6, 8, 3), 99, np.uint8), audio, sample_rate=rate),
                           "audio", audio)
