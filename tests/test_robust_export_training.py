"""Failures and Ctrl-C in export/build_engine.py and the training CLI: one line on stderr, the
exit status of the other tools (2 error, 130 interrupted), and an output folder that holds
either the whole new set of files or exactly what it held before.

Ctrl-C is a KeyboardInterrupt raised by a monkeypatched function at the point it stands for.
"""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from avsdk._atomic import write_atomic
from avsdk.errors import InputError

from conftest import load_script


def _files(folder) -> dict:
    """Every file of ``folder`` (hidden ones too: a staging folder left behind shows), by name."""
    return {p.name: p.read_bytes() if p.is_file() else "folder" for p in folder.iterdir()} if folder.exists() else {}


def _one_line(err: str, start: str) -> None:
    assert err.startswith(start) and err.count("\n") == 1 and "Traceback" not in err, err


# ------------------------------------------------------------------ export/build_engine.py

OLD_SET = ("edge.onnx", "edge.onnx.json", "edge.int8.onnx", "edge.int8.onnx.json")


@pytest.fixture(scope="module")
def build_engine():
    """export/build_engine.py as a module of its own: importing it as avsdk.export.build_engine
    would replace the package's build_engine function with the script for the whole session."""
    return load_script("export/build_engine.py")


@pytest.fixture(scope="module")
def fp32_onnx(checkpoint, tmp_path_factory):
    """The conftest checkpoint exported to fp32 ONNX (edge.onnx + its manifest)."""
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from avsdk.export.onnx_export import export_onnx
    from avsdk.models import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    return export_onnx(model, tmp_path_factory.mktemp("fp32") / "edge.onnx", checkpoint=checkpoint)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from avsdk.datasets import BenchmarkConfig, build_benchmark

    return build_benchmark(tmp_path_factory.mktemp("bench"), BenchmarkConfig(train=6, val=2, test=2, unheard=2),
                           progress=False)


@pytest.fixture(scope="module")
def nan_checkpoint(checkpoint, tmp_path_factory):
    """The conftest checkpoint with one NaN weight, under the same stem (edge.pt)."""
    from avsdk.models import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(checkpoint)
    with torch.no_grad():
        next(p for p in model.parameters() if p.is_floating_point()).view(-1)[0] = float("nan")
    path = tmp_path_factory.mktemp("nan") / "edge.pt"
    save_checkpoint(path, model, **meta)
    return path


@pytest.fixture
def old_out(tmp_path):
    """An output folder holding the set of an earlier export of edge.pt."""
    out = tmp_path / "out"
    out.mkdir()
    for name in OLD_SET:
        (out / name).write_text(f"{name} of an earlier checkpoint")
    return out


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _bug(*args, **kwargs):
    raise RuntimeError("a bug in the quantizer")


# source (new checkpoint, or the fp32 ONNX to quantize), what is patched to fail, with what,
# exit status (None: the exception is a bug and propagates), how stderr's line begins
FAILED_BUILDS = {
    "checkpoint --int8, Ctrl-C in calibration":
        ("checkpoint", "onnxruntime.quantization.quantize_static", _interrupt, 130, "interrupted; nothing was written"),
    "onnx --int8, Ctrl-C in calibration":
        ("onnx", "onnxruntime.quantization.quantize_static", _interrupt, 130, "interrupted; nothing was written"),
    "onnx --int8, Ctrl-C writing the int8 manifest":
        ("onnx", "avsdk.export.quantize.write_manifest", _interrupt, 130, "interrupted; nothing was written"),
    "onnx --int8, quantizer bug": ("onnx", "onnxruntime.quantization.quantize_static", _bug, None, ""),
    "NaN-weight checkpoint": ("nan", None, None, 2, "error: checkpoint '"),
}


@pytest.mark.parametrize("case", list(FAILED_BUILDS))
def test_a_failed_or_interrupted_build_leaves_the_output_folder_as_it_was(
        case, request, build_engine, bench, old_out, monkeypatch, capsys):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    source, target, fail, status, start = FAILED_BUILDS[case]
    if source == "onnx":
        argv = ["--onnx", request.getfixturevalue("fp32_onnx")]
    else:
        argv = ["--checkpoint", request.getfixturevalue("checkpoint" if source == "checkpoint" else "nan_checkpoint")]
    argv += ["--int8", "--calib-data", bench, "--calib-size", "2", "--out", old_out]
    if target is not None:
        monkeypatch.setattr(target, fail)
    before = _files(old_out)
    if status is None:
        with pytest.raises(RuntimeError, match="a bug in the quantizer"):
            build_engine.main([str(a) for a in argv])
    else:
        assert build_engine.main([str(a) for a in argv]) == status
        err = capsys.readouterr().err.splitlines(keepends=True)[-1]  # after the progress bars
        _one_line(err, start)
    assert _files(old_out) == before  # no new edge.onnx beside the old edge.int8.onnx


def test_a_built_set_replaces_the_old_one_whole_and_calibration_shows_progress(build_engine, fp32_onnx, bench,
                                                                                old_out, capsys):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: this test covers the machine without it (exit status 3)")
    from avsdk.export.manifest import read_manifest, sha256_file

    argv = ["--onnx", fp32_onnx, "--int8", "--calib-data", bench, "--calib-size", "2", "--out", old_out]
    assert build_engine.main([str(a) for a in argv]) == build_engine.EXIT_NO_TENSORRT
    out, err = capsys.readouterr()
    assert sorted(_files(old_out)) == sorted(OLD_SET)  # nothing left of the staging folder
    int8 = read_manifest(old_out / "edge.int8.onnx")
    assert int8.precision == "int8" and int8.artifact_sha256 == sha256_file(old_out / "edge.int8.onnx")
    assert f"wrote edge.int8.onnx, edge.int8.onnx.json in {old_out}" in out
    assert "calibrating: 100%" in err and "2/2" in err  # the calibration's own bar, to its end


class _NanScaled(torch.nn.Module):
    """A graph the exporter takes, whose one weight is NaN: maps [B, 7, 7] from both inputs."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.full((1,), float("nan")))

    def forward(self, frame, log_mel):
        pooled = torch.nn.functional.avg_pool2d(frame.mean(1, keepdim=True), frame.shape[-1] // 7)[:, 0]
        return pooled * self.scale + log_mel.mean(dim=(1, 2, 3, 4))[:, None, None]


def test_export_onnx_writes_nothing_when_onnx_runtime_disagrees(tmp_path):
    """The library: the parity check runs before the file takes its name, so a graph that
    fails it (here NaN weights) leaves no ONNX file without a manifest."""
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from avsdk.export.onnx_export import ExportError, export_onnx

    with pytest.raises(ExportError, match="^edge.onnx: ONNX Runtime output 'similarity' differs from PyTorch by nan"):
        export_onnx(_NanScaled(), tmp_path / "edge.onnx", exporter="torchscript")
    assert _files(tmp_path) == {}


# ------------------------------------------------------------------ training CLI


@pytest.fixture
def empty_benchmark(tmp_path):
    """A benchmark index with no samples: enough for the CLI's checks, nothing to train on."""
    from avsdk.datasets.realparts import INDEX_FORMAT, INDEX_NAME, INDEX_VERSION, SPLITS

    root = tmp_path / "bench"
    root.mkdir()
    index = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "splits": {s: {"samples": []} for s in SPLITS}}
    (root / INDEX_NAME).write_text(json.dumps(index))
    return root


# extra arguments, the files --out holds before (None: no folder), how stderr's line begins
TRAIN_ERRORS = {
    "--resume --overwrite": (["--resume", "--overwrite"], (), "--overwrite: expected either resume"),
    "--resume, empty --out": (["--resume"], (), "--out: expected the folder of the run to resume"),
    "--resume, mistyped --out": (["--resume"], None, "--out: expected the folder of the run to resume"),
    "--out holding a run": ([], ("best.pt", "last.pt"), "--out: expected a folder without a training run"),
    "--batch-size above the train split": (["--batch-size", "8"], (), "--batch-size: expected at most 0"),
}


@pytest.mark.parametrize("case", list(TRAIN_ERRORS))
def test_training_errors_name_the_flag_and_touch_nothing(case, empty_benchmark, tmp_path, capsys):
    from avsdk.training.train import main

    extra, held, start = TRAIN_ERRORS[case]
    out = tmp_path / "run"
    if held is not None:
        out.mkdir()
        for name in held:
            (out / name).write_text("an earlier run")
    before = _files(out)
    assert main(["--data", str(empty_benchmark), "--out", str(out), "--no-progress", *extra]) == 2
    _one_line(capsys.readouterr().err, f"error: {start}")
    assert _files(out) == before and out.exists() == (held is not None)


def test_the_library_names_the_field_not_the_flag(empty_benchmark, tmp_path):
    from avsdk.training.config import TrainConfig
    from avsdk.training.train import train

    with pytest.raises(InputError, match="^overwrite: expected either resume"):
        TrainConfig(data="d", out="o", resume=True, overwrite=True)
    with pytest.raises(InputError, match=r"^out: expected the folder of the run to resume .* does not exist"):
        train(TrainConfig(data=str(empty_benchmark), out=str(tmp_path / "typo"), resume=True, progress=False))


# extra arguments, whether --out holds a last.pt before, whether the run wrote its own before
# Ctrl-C (a finished epoch), what stderr's line must and must not say
INTERRUPTED_TRAINING = {
    "fresh, before epoch 1": ([], False, False, "nothing was saved", "last.pt"),
    "fresh, after epoch 1": ([], False, True, "with the same command and --resume", "nothing was saved"),
    "--overwrite, before its epoch 1": (["--overwrite"], True, False, "nothing was saved", "last.pt"),
    "--overwrite, after epoch 1": (["--overwrite"], True, True, "and --resume instead of --overwrite", "nothing"),
    "--resume, before its next epoch": (["--resume"], True, False, "with the same command and --resume", "nothing"),
}


@pytest.mark.parametrize("case", list(INTERRUPTED_TRAINING))
def test_ctrl_c_points_to_a_last_pt_only_when_there_is_one_to_resume(case, empty_benchmark, tmp_path,
                                                                      monkeypatch, capsys):
    from avsdk.training import train as train_module

    extra, held, wrote, said, unsaid = INTERRUPTED_TRAINING[case]
    out = tmp_path / "run"
    if held:
        out.mkdir()
        (out / "last.pt").write_bytes(b"an earlier run")

    def interrupted(config):
        if wrote:
            write_atomic(out / "last.pt", lambda handle: handle.write(b"epoch 1"))
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    assert train_module.main(["--data", str(empty_benchmark), "--out", str(out), *extra]) == 130
    err = capsys.readouterr().err
    _one_line(err, "interrupted")
    assert said in err and unsaid not in err
    if said != "nothing was saved":
        assert str(out / "last.pt") in err
