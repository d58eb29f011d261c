"""Every backend on its device: Localizer.load's device, backend and provider, with no silent
CPU fallback. This machine has only the CPU build of ONNX Runtime and no TensorRT, so the GPU
paths are checked up to the point where they need one: the providers asked for, the refusal
when they are missing, and the engine a .onnx file would be built into."""
from __future__ import annotations

from pathlib import Path

import pytest

from avsdk import InputError, Localizer, MissingDependencyError


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """A small avsdk graph with its manifest."""
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    import torch

    from avsdk.export.onnx_export import export_onnx

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = torch.nn.Conv2d(3, 8, 16, stride=16)
            self.audio = torch.nn.Linear(96 * 64, 8)

        def forward(self, frame, log_mel):
            return torch.einsum("bchw,bc->bhw", self.visual(frame), self.audio(log_mel.flatten(2)).mean(1))

    torch.manual_seed(0)
    return export_onnx(Tiny().eval(), tmp_path_factory.mktemp("devices") / "tiny.onnx")


@pytest.mark.parametrize("device, provider, expected", [
    ("cpu", None, ["CPUExecutionProvider"]),
    ("cuda", None, [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]),
    ("cuda:2", "cuda", [("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]),
    ("CUDA:1", "tensorrt", [("TensorrtExecutionProvider", {"device_id": 1}),
                            ("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]),
])
def test_each_device_has_its_providers(device, provider, expected):
    from avsdk.onnx_runtime import providers_for

    assert providers_for(device, provider) == expected


@pytest.mark.parametrize("call, argument, fragment", [
    (lambda m: Localizer.load(m, device="gpu"), "device", "'cpu', 'cuda' or 'cuda:N', received 'gpu'"),
    (lambda m: Localizer.load(m, device="cuda:x"), "device", "received 'cuda:x'"),
    (lambda m: Localizer.load(m, device=0), "device", "received 0"),
    (lambda m: Localizer.load(m, provider="tensorrt"), "provider", "None or 'cpu' on device 'cpu'"),
    (lambda m: Localizer.load(m, device="cuda", provider="vulkan"), "provider",
     "None, 'cuda' or 'tensorrt' on a CUDA device"),
    (lambda m: Localizer.load(m, backend="torch"), "backend", "'auto' or 'onnxruntime' for a .onnx file"),
    (lambda m: Localizer.load(m, backend="openvino"), "backend", "one of .*received 'openvino'"),
    (lambda m: Localizer.load(m, backend="tensorrt", device="cpu"), "device", "TensorRT runs on a GPU"),
    (lambda m: Localizer.load(m, backend="tensorrt", provider="cuda"), "provider",
     "None except for an .onnx file run by ONNX Runtime"),
], ids=["device gpu", "device cuda:x", "device 0", "provider on cpu", "unknown provider", "torch for onnx",
        "unknown backend", "tensorrt on cpu", "provider with tensorrt"])
def test_bad_device_backend_and_provider_are_input_errors(onnx_model, call, argument, fragment):
    with pytest.raises(InputError, match=f"^{argument}: expected .*{fragment}"):
        call(onnx_model)


def test_a_gpu_without_its_provider_is_refused_not_run_on_the_cpu(onnx_model):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA: the refusal needs one without it")
    with pytest.raises(MissingDependencyError, match="has no CUDAExecutionProvider.*pip install onnxruntime-gpu"):
        Localizer.load(onnx_model, device="cuda")


def test_a_session_that_fell_back_to_the_cpu_is_refused(onnx_model, monkeypatch):
    """ONNX Runtime starts a session on the CPU, with only a log line, when the CUDA provider
    is built in but cannot start (a CUDA library missing): the runner looks."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    def fell_back(path, options=None, providers=None):
        return real(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", fell_back)
    with pytest.raises(InputError, match="^providers: expected a session on CUDAExecutionProvider.*"
                                         "ONNX Runtime ran it on CPUExecutionProvider"):
        Localizer.load(onnx_model, device="cuda")


def test_tensorrt_backend_builds_the_onnx_file_s_engine_once_in_the_cache(onnx_model, tmp_path, monkeypatch):
    """backend="tensorrt" on an .onnx: the engine comes from cached_engine (built on first use,
    reused after), in the cache folder, at the graph's precision; without TensorRT it says
    where TensorRT comes from."""
    with pytest.raises(MissingDependencyError, match="tensorrt is needed for building a TensorRT engine"):
        Localizer.load(onnx_model, backend="tensorrt", cache_dir=tmp_path)

    import avsdk.errors
    import avsdk.export.tensorrt_build as build
    import avsdk.localizer as localizer

    asked = []
    monkeypatch.setattr(avsdk.errors, "require", lambda *a, **k: None)
    monkeypatch.setattr(build, "cached_engine", lambda onnx, cache, config: asked.append(
        (Path(onnx), Path(cache), config.precision)) or Path(cache) / "tiny.engine")

    def engine_backend(engine, transform, gpu):  # what runs the engine needs a GPU: record it
        asked.append(("run", engine.name, gpu))
        return (lambda frames, audio: None), {}

    monkeypatch.setattr(localizer, "_engine_backend", engine_backend)
    loc = Localizer.load(onnx_model, backend="tensorrt", device="cuda:1", cache_dir=tmp_path)
    assert asked == [(onnx_model, tmp_path, "fp16"), ("run", "tiny.engine", 1)]
    assert loc.source == f"TensorRT engine {str(tmp_path / 'tiny.engine')!r}"


def test_the_engine_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    from avsdk.localizer import default_engine_cache

    monkeypatch.setenv("AVSDK_ENGINE_CACHE", str(tmp_path / "engines"))
    assert default_engine_cache() == tmp_path / "engines"
    monkeypatch.delenv("AVSDK_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_engine_cache() == tmp_path / "cache" / "avsdk" / "engines"
