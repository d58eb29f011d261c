"""The `avsdk` command and `python -m avsdk.training.evaluate`."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from avsdk import cli
from avsdk.training import evaluate as evaluate_cli


def _needs_inputs():
    for name in ("avsdk.audio", "avsdk.frames", "avsdk.frontend"):
        pytest.importorskip(name, reason=f"{name} (input helper) has not landed yet")


@pytest.fixture
def bench_root(tmp_path, monkeypatch):
    """Three synthetic test samples served by a stand-in load_split (the CLI is under test
    here, not the benchmark builder)."""
    import soundfile

    from avsdk import datasets

    samples = []
    for i in range(3):
        box, other = (20 + 10 * i, 30, 120, 140), (160, 160, 210, 210)
        image = np.full((224, 224, 3), 50, np.uint8)
        image[box[1]:box[3], box[0]:box[2]] = 200
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        for name, (x0, y0, x1, y1) in (("mask", box), ("other", other)):
            mask = np.zeros((224, 224), np.uint8)
            mask[y0:y1, x0:x1] = 255
            Image.fromarray(mask).save(tmp_path / f"{i}_{name}.png")
        soundfile.write(tmp_path / f"{i}.wav", np.sin(np.arange(48000) / (3 + i)).astype(np.float32), 16000)
        samples.append(datasets.Sample(
            id=f"t{i}", split="test", label="dog", image=tmp_path / f"{i}.png", audio=tmp_path / f"{i}.wav",
            box=box, mask=tmp_path / f"{i}_mask.png", distractor_label="cat", distractor_box=other,
            distractor_mask=tmp_path / f"{i}_other.png", background="b", clip="c"))
    real = datasets.load_split
    monkeypatch.setattr(datasets, "load_split",
                        lambda root, split: samples if root == "synthetic" and split == "test" else real(root, split))
    return "synthetic"


def test_info_lists_versions_frontend_and_cuda(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for label in ("avsdk", "torch", "numpy", "onnxruntime", "triton", "tensorrt", "frontend", "cuda"):
        assert label in out
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["torch"].startswith(torch.__version__.split("+")[0])
    assert info["cuda"] == torch.cuda.is_available()
    assert "audio_frontend" in info


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "avsdk.cli", "info"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "numpy" in done.stdout


def test_localize_writes_overlay(checkpoint, tmp_path, capsys):
    _needs_inputs()
    import soundfile

    frame = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(frame)
    audio = tmp_path / "clip.wav"
    soundfile.write(audio, (0.3 * np.sin(np.arange(48000) / 5)).astype(np.float32), 16000)
    out = tmp_path / "overlay.png"
    assert cli.main(["localize", str(checkpoint), str(frame), str(audio), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "box" in printed and "peak" in printed and "score" in printed
    assert Image.open(out).size == (160, 120)


def test_localize_reports_bad_input_without_traceback(checkpoint, tmp_path, capsys):
    assert cli.main(["localize", str(tmp_path / "nope.pt"), __file__, __file__]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model: expected an existing") and "Traceback" not in err
    assert cli.main(["localize", str(checkpoint), str(tmp_path / "nope.png"), __file__]) == 2
    assert capsys.readouterr().err.startswith("error: frame: expected an existing file")


@pytest.fixture
def frame_and_audio(tmp_path):
    import soundfile

    frame, audio = tmp_path / "frame.png", tmp_path / "clip.wav"
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(frame)
    soundfile.write(audio, (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    return str(frame), str(audio)


@pytest.mark.parametrize("out,expected", [("FILE/ov.png", "a path under a folder"),
                                          ("ov.jpg", "a file name ending in .png"),
                                          ("DIR.png", "a file to write")])
def test_localize_checks_out_before_inference(out, expected, checkpoint, frame_and_audio, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.png").mkdir()
    out = out.replace("FILE", str(tmp_path / "file")).replace("DIR", str(tmp_path / "dir"))
    assert cli.main(["localize", str(checkpoint), *frame_and_audio, "--out", out]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing localized, nothing printed
    assert captured.err.startswith(f"error: --out: expected {expected}") and captured.err.count("\n") == 1


@pytest.mark.parametrize("device", ["foo", "cuda:7" if torch.cuda.is_available() else "cuda"])
def test_localize_names_a_bad_device(device, checkpoint, frame_and_audio, capsys):
    assert cli.main(["localize", str(checkpoint), *frame_and_audio, "--device", device]) == 2
    assert capsys.readouterr().err.startswith("error: --device: expected ")


def test_evaluate_cli_reports_model_and_baselines(checkpoint, bench_root, tmp_path):
    _needs_inputs()
    out = tmp_path / "reports.json"
    code = evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(bench_root), "--split", "test",
                              "--json", str(out), "--no-progress", "--batch-size", "2"])
    assert code == 0
    data = json.loads(out.read_text())
    assert list(data["reports"]) == ["model", "all-ones", "centre box"]
    assert data["split"] == "test" and all(report["n"] == 3 for report in data["reports"].values())
    assert set(data["reports"]["model"]["value"]) == {"ciou_at_0.5", "auc", "ciou"}


def test_evaluate_cli_errors(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(tmp_path), "--split", "dev"])
    capsys.readouterr()  # argparse's usage and error
    assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: --data: expected a folder built by build_benchmark")


def test_evaluate_cli_checks_json_before_evaluating(checkpoint, tmp_path, monkeypatch, capsys):
    def no_evaluation(*args, **kwargs):
        raise AssertionError("the evaluation ran")

    monkeypatch.setattr(evaluate_cli, "run_evaluation", no_evaluation)
    (tmp_path / "file").write_text("x")
    code = evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(tmp_path),
                              "--json", str(tmp_path / "file" / "x.json")])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: --json: expected a path under a folder")


@pytest.mark.parametrize("typed,given", [("centre_crop", "centre_crop"), ("stretch", "stretch"),
                                         ("sspl", "centre_crop"), ("sacl", "stretch")])
def test_evaluate_cli_transform_takes_the_new_names_and_the_old_with_a_warning(typed, given, checkpoint, tmp_path,
                                                                               monkeypatch, recwarn):
    seen = {}

    def fake_evaluation(checkpoint, data, split, batch_size, limit, transform, progress=True):
        seen["transform"] = transform
        raise evaluate_cli.bad_input("data", "a benchmark", "none here", described=True)

    monkeypatch.setattr(evaluate_cli, "run_evaluation", fake_evaluation)
    assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(tmp_path), "--transform", typed]) == 2
    assert seen["transform"] == given
    warned = [str(w.message) for w in recwarn if issubclass(w.category, DeprecationWarning)]
    assert warned == ([] if typed == given else [f"--transform {typed!r} is deprecated: use {given!r}, the same "
                                                 "transform by its new name"])


def test_evaluate_cli_refuses_an_unknown_transform(checkpoint, tmp_path, capsys):
    code = evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(tmp_path), "--transform", "crop"])
    assert code == 2
    assert capsys.readouterr().err == "error: --transform: expected 'stretch' or 'centre_crop', received 'crop'\n"


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_evaluate_cli_rejects_a_limit_below_1(limit, checkpoint, bench_root, capsys):
    code = evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(bench_root), "--limit", limit,
                              "--no-progress"])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: --limit: expected an int >= 1")


@pytest.mark.parametrize("argument,shown", [("time", "--time"), ("path", "video")])
def test_localize_video_names_time_and_video_as_typed(argument, shown, checkpoint, tmp_path, monkeypatch, capsys):
    from avsdk import video
    from avsdk.errors import bad_input

    def refusing(path, time=None, clip_seconds=3.0):
        raise bad_input(argument, "something else", "this", described=True)

    monkeypatch.setattr(video, "read_clip", refusing)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert cli.main(["localize-video", str(checkpoint), str(clip), "--time", "9"]) == 2
    assert capsys.readouterr().err == f"error: {shown}: expected something else, received this\n"


def test_info_tells_a_missing_frontend_from_a_broken_one(monkeypatch):
    """A built extension that fails to load (another Python, a missing symbol) was reported
    as plain "numpy", like one that was never built."""
    import builtins

    from avsdk import frontend

    real_import = builtins.__import__

    def failing(error):
        def fake(name, globals=None, locals=None, fromlist=(), level=0):
            if fromlist and "_frontend" in fromlist:
                raise error
            return real_import(name, globals, locals, fromlist, level)
        return fake

    # the import is tried once per process (cached): each simulated install starts afresh
    monkeypatch.setattr(builtins, "__import__", failing(ImportError("undefined symbol: _ZN5avsdk")))
    monkeypatch.delitem(sys.modules, "avsdk._frontend", raising=False)
    frontend._import_compiled.cache_clear()
    assert frontend.compiled_status() == "numpy (avsdk._frontend does not load: undefined symbol: _ZN5avsdk)"
    monkeypatch.setattr(builtins, "__import__",
                        failing(ModuleNotFoundError("No module named 'avsdk._frontend'", name="avsdk._frontend")))
    frontend._import_compiled.cache_clear()
    assert frontend.compiled_status() == "numpy (avsdk._frontend is not built)"
    monkeypatch.setattr(builtins, "__import__", real_import)
    frontend._import_compiled.cache_clear()
    if frontend.active_implementation() == "compiled":
        assert frontend.compiled_status().startswith("compiled (")
