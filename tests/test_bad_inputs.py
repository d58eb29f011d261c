"""Issue 15, "What 397 bad inputs found": hostile inputs per public entry point, each with the
outcome it must have. An avsdk error is one line naming what the user passed, what was expected
and what was received; a command-line tool prints it as ``error: ...`` with exit status 2.

(The MPEG-TS video with 44.1 kHz AAC sound that was refused is in test_video_timing.py.)
"""
from __future__ import annotations

import errno
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from avsdk import cli
from avsdk.errors import CheckpointError, InputError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from avsdk.models import ModelConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "edge.pt"
    save_checkpoint(path, build_model(ModelConfig(), pretrained=False))
    return path


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


# ------------------------------------------------------------ integer audio arrays (item 2)

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

    return audio_to_examples(audio, 16000, backend="numpy")


def _localizer(audio):
    from avsdk.localizer import Localizer

    loc = Localizer(lambda frames, log_mel: np.zeros((len(frames), 14, 14), np.float32))
    return loc.inputs(np.zeros((32, 32, 3), np.uint8), audio, sample_rate=16000)[2].numpy()[0]


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


# ------------------------------------------------------------ refused .pt files (item 4)

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


# ------------------------------------------------------------ outputs written atomically (item 3)

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


# ------------------------------------------------------------ a pipe closed early (item 5)

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
