"""AVNet's forward has no data-dependent control flow: it exports to ONNX with both of
torch's exporters and ONNX Runtime gives PyTorch's map. (The export pipeline itself, with
manifests, FP16 and INT8, is tested in test_export_onnx.py.)"""
import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")

from avsdk.models import AVNet, ModelConfig, PredictiveCoding  # noqa: E402

NAMES = dict(input_names=["frame", "log_mel"], output_names=["similarity"])


@pytest.fixture(scope="module")
def edge():
    torch.manual_seed(0)
    return AVNet(ModelConfig()).eval()


def _inputs(batch, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 224, 224, generator=g), torch.randn(batch, 3, 1, 96, 64, generator=g)


def _check_runtime(path, model):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # exported at batch 2: the batch axis is dynamic
        frames, log_mel = _inputs(batch, seed=batch)
        got = session.run(None, {"frame": frames.numpy(), "log_mel": log_mel.numpy()})[0]
        with torch.no_grad():
            want = model(frames, log_mel).numpy()
        assert got.shape == (batch, 14, 14)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_torchscript_exporter_opset17(edge, tmp_path):
    path = tmp_path / "edge.onnx"
    torch.onnx.export(edge, _inputs(2, 0), str(path), dynamo=False, opset_version=17,
                      dynamic_axes={n: {0: "batch"} for n in ("frame", "log_mel", "similarity")},
                      **NAMES)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    _check_runtime(path, edge)


def test_dynamo_exporter(edge, tmp_path):
    path = tmp_path / "edge.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(edge, _inputs(2, 0), str(path), dynamo=True, opset_version=18,
                      dynamic_shapes=({0: batch}, {0: batch}), **NAMES)
    _check_runtime(path, edge)


def test_pcm_traces_without_data_dependent_branches():
    pcm = PredictiveCoding(cycles=2).eval()
    visual, audio = torch.randn(2, 512, 14, 14), torch.randn(2, 128)
    exported = torch.export.export(pcm, (visual, audio),
                                   dynamic_shapes=({0: torch.export.Dim("b")}, {0: torch.export.Dim("b")}))
    visual3, audio3 = torch.randn(3, 512, 14, 14), torch.randn(3, 128)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(visual3, audio3), pcm(visual3, audio3))
