"""The main job: its checks before step 1, and end to end on a tiny benchmark."""
import json

import pytest

from avsdk.errors import InputError
from avsdk.training import pipeline
from avsdk.training.pipeline import PipelineConfig, run


@pytest.mark.parametrize("name,value", [("epochs", -1), ("epochs", 0), ("batch_size", 1), ("views", 1),
                                        ("tau", float("inf")), ("lr", 0.0), ("calib_size", 0),
                                        ("split_sizes", (16, 8, 8)), ("split_sizes", (16, 8, 8, 8)),
                                        ("seed", -1), ("audio", "wav2vec")])
def test_config_rejects_bad_values(name, value):
    with pytest.raises(InputError, match=f"^{name}: expected"):
        PipelineConfig(**{name: value})


def test_calibration_cannot_take_more_than_train_and_val():
    sizes = (16, 8, 8, 8, 8, 8)
    PipelineConfig(split_sizes=sizes, int8=True, calib_size=24)
    with pytest.raises(InputError, match="^calib_size: expected at most 24"):
        PipelineConfig(split_sizes=sizes, int8=True, calib_size=25)
    with pytest.raises(InputError, match="^calib_size: expected at most 1800"):  # BenchmarkConfig's sizes
        PipelineConfig(int8=True, calib_size=5000)


@pytest.mark.parametrize("argv,flag", [(["--epochs", "-1"], "--epochs"), (["--views", "1"], "--views"),
                                       (["--int8", "--calib-size", "0"], "--calib-size"),
                                       (["--int8", "--calib-size", "100000"], "--calib-size"),
                                       (["--out", "FILE"], "--out")])
def test_cli_reports_user_errors_by_flag_on_stderr_before_step_1(argv, flag, tmp_path, monkeypatch, capsys):
    def no_run(config):
        raise AssertionError("the pipeline started")

    monkeypatch.setattr(pipeline, "run", no_run)
    (tmp_path / "file").write_text("x")
    argv = ["--out", str(tmp_path / "run")] + [a.replace("FILE", str(tmp_path / "file")) for a in argv]
    assert pipeline.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {flag}: expected ") and captured.err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_main_job_runs_end_to_end_on_a_tiny_benchmark(tmp_path):
    pytest.importorskip("onnxruntime", reason="the main job exports and scores ONNX (extra 'export')")
    config = PipelineConfig(out=str(tmp_path / "run"), epochs=1, batch_size=8, views=2,
                            split_sizes=(16, 8, 8, 8, 8, 8), int8=True, calib_size=8, progress=False)
    outcome = run(config)
    out = tmp_path / "run"
    for name in ("train/best.pt", "export/edge.onnx", "export/edge.onnx.json", "export/edge.int8.onnx",
                 "overlay.png", "results.md"):
        assert (out / name).is_file(), name
    test = outcome["tables"]["test"]
    assert {"edge model (PyTorch)", "edge model (ONNX fp32)", "edge model (ONNX int8)",
            "all-ones", "centre box"} <= set(test)
    assert all(report.n == 8 for report in test.values())
    assert outcome["tables"]["photos"]["edge model (PyTorch)"].n == 8  # real photos, scored like test
    # the ONNX model scores what PyTorch scores: same maps up to ~1e-6
    torch_ciou = test["edge model (PyTorch)"].rules["value"]
    onnx_ciou = test["edge model (ONNX fp32)"].rules["value"]
    assert torch_ciou.auc == pytest.approx(onnx_ciou.auc, abs=1e-9)
    manifest = json.loads((out / "export/edge.onnx.json").read_text())
    assert manifest["build"]["opset"] == 17
    # the visibility answer: calibrated on val, stored with the model, measured on offscreen
    assert manifest["visibility"]["format"] == "avsdk.visibility"
    from avsdk.localizer import Localizer

    assert Localizer.load(out / "train/best.pt").visibility is not None
    visibility = json.loads((out / "visibility.json").read_text())
    assert visibility["n_on"] == 8 and visibility["n_off"] == 8 and 0.0 <= visibility["auroc"] <= 1.0
