"""The main job end to end, on a tiny benchmark: every stage runs and leaves its files."""
import json

import pytest

pytest.importorskip("onnxruntime", reason="the main job exports and scores ONNX (extra 'export')")

from avsdk.training.pipeline import PipelineConfig, run  # noqa: E402


def test_main_job_runs_end_to_end_on_a_tiny_benchmark(tmp_path):
    config = PipelineConfig(out=str(tmp_path / "run"), epochs=1, batch_size=8, views=2,
                            split_sizes=(16, 8, 8, 8), int8=True, calib_size=8, progress=False)
    outcome = run(config)
    out = tmp_path / "run"
    for name in ("train/best.pt", "export/edge.onnx", "export/edge.onnx.json", "export/edge.int8.onnx",
                 "overlay.png", "results.md"):
        assert (out / name).is_file(), name
    test = outcome["tables"]["test"]
    assert {"edge model (PyTorch)", "edge model (ONNX fp32)", "edge model (ONNX int8)",
            "all-ones", "centre box"} <= set(test)
    assert all(report.n == 8 for report in test.values())
    # the ONNX model scores what PyTorch scores: same maps up to ~1e-6
    torch_ciou = test["edge model (PyTorch)"].rules["value"]
    onnx_ciou = test["edge model (ONNX fp32)"].rules["value"]
    assert torch_ciou.auc == pytest.approx(onnx_ciou.auc, abs=1e-9)
    manifest = json.loads((out / "export/edge.onnx.json").read_text())
    assert manifest["build"]["opset"] == 17
    assert "| edge model (PyTorch)" in (out / "results.md").read_text()
