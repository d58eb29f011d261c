"""TensorRT logic that runs without TensorRT: the per-version build plan, the trtexec command,
the engine and timing cache names, the precision guard and the runtime's version check; then
the builder and the runner against a stand-in TensorRT module (``fake_tensorrt.FakeTensorRT``), the
runner over a stand-in CUDA runtime too (``fake_cudart.FakeCudart``). The real build and run skip
where TensorRT is missing.
"""
from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from fake_cudart import FakeCudart
from fake_cudart import install as install_cudart
from fake_tensorrt import FakeTensorRT

from avsdk.errors import AvsdkError, InputError
from avsdk.export.manifest import Manifest, TensorSpec
from avsdk.export.tensorrt_build import (
    EngineConfig,
    engine_cache_name,
    plan_build,
    profile_shapes,
    tensorrt_generation,
    trtexec_command,
    trtexec_commands,
)
from avsdk.export.tensorrt_runtime import EngineMismatchError, check_engine_manifest


def _onnx_manifest(batch="batch") -> Manifest:
    return Manifest(
        artifact="edge.int8.onnx", kind="onnx", precision="int8",
        inputs=(TensorSpec("frame", (batch, 3, 224, 224), "float32"),
                TensorSpec("log_mel", (batch, 3, 1, 96, 64), "float32")),
        outputs=(TensorSpec("similarity", (batch, 14, 14), "float32"),),
        artifact_sha256="0" * 64,
    )


def _engine_manifest(tensorrt="10.3.0", capability="8.7") -> Manifest:
    return dataclasses.replace(
        _onnx_manifest(), artifact="edge.int8.engine", kind="engine",
        source={"onnx": "edge.int8.onnx"},
        build={"tensorrt": tensorrt, "gpu": "Orin", "compute_capability": capability,
               "trtexec": "trtexec --onnx=edge.int8.onnx --saveEngine=edge.int8.engine --stronglyTyped"},
    )


# -- one builder code path, three TensorRT generations ---------------------------------
@pytest.mark.parametrize("version, generation", [
    ("8.5.2", 8), ("8.6.2.3", 8), ("10.0.1", 10), ("10.3.0", 10), ("10.16.1", 10), ("11.0.0", 11), ("11.4.1", 11),
])
def test_generation(version, generation):
    assert tensorrt_generation(version) == generation


@pytest.mark.parametrize("version", ["8.4.3", "7.2.1", "not-a-version"])
def test_old_or_bad_tensorrt_is_refused(version):
    with pytest.raises(InputError, match="tensorrt version"):
        tensorrt_generation(version)


def test_versions_compare_as_versions_not_strings():
    assert tensorrt_generation("10.0") == 10  # as strings, "10.0" < "8.5"


@pytest.mark.parametrize("precision, flags", [("fp32", ()), ("fp16", ("FP16",)), ("int8", ("INT8",))])
def test_tensorrt_8_is_weakly_typed_with_precision_flags(precision, flags):
    plan = plan_build("8.6.2", precision)
    assert not plan.strongly_typed and plan.network_flags == ("EXPLICIT_BATCH",)
    assert plan.builder_flags == flags


@pytest.mark.parametrize("version", ["10.3.0", "10.16.1"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_10_is_strongly_typed_without_precision_flags(version, precision):
    plan = plan_build(version, precision)
    assert plan.strongly_typed and plan.network_flags == ("STRONGLY_TYPED",)
    assert plan.builder_flags == () and plan.trtexec_flags == ("--stronglyTyped",)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_11_is_always_strongly_typed(precision):
    plan = plan_build("11.0.0", precision)
    assert plan.strongly_typed and plan.network_flags == () and plan.builder_flags == ()
    assert plan.trtexec_flags == ()  # --int8/--fp16 are removed, --stronglyTyped implied


# -- trtexec -------------------------------------------------------------------------
def test_trtexec_command_dynamic_batch():
    config = EngineConfig("int8", workspace_mib=512, min_batch=1, opt_batch=2, max_batch=4)
    command = trtexec_command("edge.int8.onnx", "edge.int8.engine", config, _onnx_manifest(), "10.3.0",
                              "timing.cache")
    assert command == (
        "trtexec --onnx=edge.int8.onnx --saveEngine=edge.int8.engine "
        "--minShapes=frame:1x3x224x224,log_mel:1x3x1x96x64 "
        "--optShapes=frame:2x3x224x224,log_mel:2x3x1x96x64 "
        "--maxShapes=frame:4x3x224x224,log_mel:4x3x1x96x64 "
        "--memPoolSize=workspace:512 --stronglyTyped --timingCacheFile=timing.cache"
    )


def test_trtexec_commands_per_generation():
    commands = trtexec_commands("m.onnx", "m.engine", EngineConfig("int8"), _onnx_manifest())
    first, second, third = commands.values()
    assert "--int8" in first and "--stronglyTyped" not in first
    assert "--stronglyTyped" in second and "--int8" not in second
    assert "--int8" not in third and "--stronglyTyped" not in third


def test_tensorrt_11_is_labelled_for_jetson_from_11_4_1():
    """11.0 to 11.4.0 do not support JetPack; 11.4.1 supports JetPack 7.2.2+ (NVIDIA's Jetson
    migration pages)."""
    labels = list(trtexec_commands("m.onnx", "m.engine", EngineConfig("int8"), _onnx_manifest()))
    assert "11.4.1+" in labels[2] and "JetPack 7.2.2+" in labels[2]


def test_static_batch_has_no_shape_ranges():
    manifest = _onnx_manifest(batch=2)
    assert profile_shapes(manifest, EngineConfig())["frame"] == ((2, 3, 224, 224),) * 3
    command = trtexec_command("m.onnx", "m.engine", EngineConfig(), manifest, "8.6")
    assert "Shapes" not in command


def test_engine_config_is_checked():
    with pytest.raises(InputError, match="precision"):
        EngineConfig("int4")
    with pytest.raises(InputError, match="opt"):
        EngineConfig(min_batch=2, opt_batch=1)
    with pytest.raises(InputError, match="workspace"):
        EngineConfig(workspace_mib=0)


# -- engine cache name ---------------------------------------------------------------
def test_engine_cache_name_holds_every_fact(tmp_path):
    onnx = tmp_path / "edge.int8.onnx"
    name = engine_cache_name(onnx, "int8", "10.3.0", "NVIDIA Jetson AGX Orin", onnx_sha256="f" * 64)
    assert name == "edge.int8.trt10.3.0.nvidia-jetson-agx-orin.ffffffffffff.engine"
    others = {
        engine_cache_name(onnx, "int8", "10.3.1", "NVIDIA Jetson AGX Orin", "f" * 64),
        engine_cache_name(onnx, "int8", "10.3.0", "Orin Nano", "f" * 64),
        engine_cache_name(onnx, "fp16", "10.3.0", "NVIDIA Jetson AGX Orin", "f" * 64),
        engine_cache_name(onnx, "int8", "10.3.0", "NVIDIA Jetson AGX Orin", "e" * 64),
    }
    assert name not in others and len(others) == 4


def test_engine_cache_name_hashes_the_file(tmp_path):
    onnx = tmp_path / "edge.onnx"
    onnx.write_bytes(b"one")
    first = engine_cache_name(onnx, "fp32", "8.6.2", "Orin")
    onnx.write_bytes(b"two")
    assert engine_cache_name(onnx, "fp32", "8.6.2", "Orin") != first


# -- runtime refusal -----------------------------------------------------------------
def test_matching_engine_is_accepted():
    check_engine_manifest(_engine_manifest("10.3.0"), "10.3.0", "8.7")
    check_engine_manifest(_engine_manifest("10.3.0"), "10.3.0.26", None)  # build number ignored


@pytest.mark.parametrize("installed", ["10.3.1", "10.4.0", "8.6.2", "11.0.0"])
def test_other_tensorrt_version_is_refused_clearly(installed):
    with pytest.raises(EngineMismatchError) as info:
        check_engine_manifest(_engine_manifest("10.3.0"), installed)
    message = str(info.value)
    assert "built with TensorRT 10.3.0" in message and f"has TensorRT {installed}" in message
    assert "not portable" in message and "build_engine.py --onnx edge.int8.onnx --int8" in message


def test_other_gpu_architecture_is_refused():
    with pytest.raises(EngineMismatchError, match="compute capability 8.7"):
        check_engine_manifest(_engine_manifest(capability="8.7"), "10.3.0", "9.0")


def test_manifest_without_tensorrt_version_is_refused():
    manifest = dataclasses.replace(_engine_manifest(), build={})
    with pytest.raises(EngineMismatchError, match="does not name the TensorRT version"):
        check_engine_manifest(manifest, "10.3.0")


def test_missing_tensorrt_says_where_it_comes_from(monkeypatch):
    """No pip extra installs TensorRT: the error must not send the user to one."""
    import sys

    from avsdk.errors import MissingDependencyError, require

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails, installed or not
    with pytest.raises(MissingDependencyError, match="JetPack") as caught:
        require("tensorrt", "export", "running TensorRT engines")
    assert "pip install" not in str(caught.value)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'avsdk\[export\]'"):
        require("onnxruntime", "export")


def test_onnx_manifest_is_not_an_engine():
    with pytest.raises(EngineMismatchError, match="not a TensorRT engine"):
        check_engine_manifest(_onnx_manifest(), "10.3.0")


# -- the precision guard (needs onnx, not TensorRT) -----------------------------------
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = nn.Conv2d(3, 8, 16, stride=16)
        self.audio = nn.Linear(96 * 64, 8)

    def forward(self, frame, log_mel):
        from avsdk.kernels.reference import av_similarity

        return av_similarity(self.visual(frame), self.audio(log_mel.flatten(2)).mean(1))[0]


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from avsdk.export.onnx_export import example_inputs, export_onnx
    from avsdk.export.quantize import quantize_int8

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny")
    model = _Tiny().eval()
    fp32 = export_onnx(model, out / "tiny.onnx")
    fp16 = export_onnx(model, out / "tiny.fp16.onnx", precision="fp16")
    frames, mels = example_inputs(4)
    int8 = quantize_int8(fp32, out / "tiny.int8.onnx", [{"frame": frames.numpy(), "log_mel": mels.numpy()}],
                         method="minmax")
    return {"fp32": fp32, "fp16": fp16, "int8": int8}


def test_onnx_precision_is_read_from_the_graph(tiny_onnx):
    from avsdk.export.tensorrt_build import onnx_precision

    assert {k: onnx_precision(v) for k, v in tiny_onnx.items()} == {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}


@pytest.mark.parametrize("asked, given", [("int8", "fp32"), ("fp16", "fp32"), ("fp32", "int8"), ("fp32", "fp16")])
def test_never_builds_another_precision_than_asked(tiny_onnx, asked, given):
    from avsdk.export.tensorrt_build import check_precision

    with pytest.raises(InputError, match="never built at another precision"):
        check_precision(tiny_onnx[given], asked)


def test_dynamo_exporter_gives_opset_18(tmp_path):
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    import onnx

    from avsdk.export.onnx_export import export_onnx

    path = export_onnx(_Tiny().eval(), tmp_path / "tiny18.onnx", opset=18)
    assert [o.version for o in onnx.load(str(path)).opset_import if o.domain == ""] == [18]


# -- with TensorRT (a Jetson or a GPU machine) -----------------------------------------
def test_build_and_run_engine(tiny_onnx, tmp_path):
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed on this machine")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT inference needs a CUDA device")
    from avsdk.errors import MissingDependencyError
    from avsdk.tensorrt_runtime import _cuda_runtime

    try:
        _cuda_runtime()
    except MissingDependencyError:
        pytest.skip("the TensorRT runner's device buffers need cuda-python, which is not installed")
    import numpy as np

    from avsdk.export.onnx_export import example_inputs
    from avsdk.export.onnx_runtime import OnnxRunner
    from avsdk.export.tensorrt_build import cached_engine
    from avsdk.export.tensorrt_runtime import TensorRTRunner

    frames, mels = example_inputs(3, seed=3)
    for precision, atol in (("fp32", 1e-3), ("fp16", 3e-2), ("int8", 5e-2)):
        engine = cached_engine(tiny_onnx[precision], tmp_path, EngineConfig(precision, max_batch=4))
        assert f"trt{trt.__version__}" in engine.name
        assert cached_engine(tiny_onnx[precision], tmp_path, EngineConfig(precision, max_batch=4)) == engine
        got = TensorRTRunner(engine).run(frames, mels)
        want = OnnxRunner(tiny_onnx[precision]).run(frames, mels)
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)

    # 6 frames on an engine that takes batches of 4 only: 4, then 2 padded to 4
    from avsdk.export.tensorrt_build import build_engine

    engine = build_engine(tiny_onnx["fp32"], tmp_path / "tiny.b4.engine",
                          EngineConfig("fp32", min_batch=4, opt_batch=4, max_batch=4))
    frames, mels = example_inputs(6, seed=4)
    np.testing.assert_allclose(TensorRTRunner(engine).run(frames, mels),
                               OnnxRunner(tiny_onnx["fp32"]).run(frames, mels), atol=1e-3, rtol=0)


def test_graph_is_checked_beside_the_manifest(tiny_onnx, tmp_path):
    """A manifest that claims int8 for an fp32 graph does not make an int8 engine of it."""
    import shutil

    from avsdk.export.manifest import read_manifest, write_manifest
    from avsdk.export.tensorrt_build import check_precision

    fake = tmp_path / "fake.int8.onnx"
    shutil.copy(tiny_onnx["fp32"], fake)
    write_manifest(dataclasses.replace(read_manifest(tiny_onnx["fp32"]), artifact=fake.name, precision="int8"), fake)
    with pytest.raises(InputError, match="a fp32 ONNX file"):
        check_precision(fake, "int8")


def test_torchscript_exporter_is_still_available(tmp_path):
    import onnx

    from avsdk.export.manifest import read_manifest
    from avsdk.export.onnx_export import export_onnx

    torch.manual_seed(0)
    path = export_onnx(_Tiny().eval(), tmp_path / "ts.onnx", exporter="torchscript")  # verified vs torch
    assert [o.version for o in onnx.load(str(path)).opset_import if o.domain == ""] == [17]
    assert read_manifest(path).build["exporter"] == "torchscript"


def test_stand_in_is_as_strict_as_tensorrt():
    """The stand-in refuses what TensorRT refuses, so the tests below would catch such calls."""
    fake = FakeTensorRT("11.4.1")
    assert not hasattr(fake.BuilderFlag, "FP16") and not hasattr(fake.BuilderFlag, "INT8")
    assert not hasattr(fake.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    assert not hasattr(FakeTensorRT("8.6.2").NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    assert not hasattr(FakeTensorRT("8.6.2"), "bfloat16")
    builder = fake.Builder(None)
    profile = builder.create_optimization_profile()
    with pytest.raises(RuntimeError, match="min"):
        profile.set_shape("frame", (4, 3, 224, 224), (1, 3, 224, 224), (8, 3, 224, 224))
    with pytest.raises(RuntimeError, match="opt"):
        profile.set_shape("frame", (1, 3, 224, 224), (8, 3, 224, 224), (4, 3, 224, 224))
    config = builder.create_builder_config()
    profile.set_shape("image", (1, 3, 224, 224), (1, 3, 224, 224), (4, 3, 224, 224))  # no such input
    config.add_optimization_profile(profile)
    network = builder.create_network(0)
    assert fake.OnnxParser(network, None).parse_from_file("m.onnx")
    assert builder.build_serialized_network(network, config) is None


# -- the builder's calls -------------------------------------------------------------------
_GPU = {"gpu": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7"}


@pytest.fixture
def fake_gpu(monkeypatch):
    """gpu_identity() names an Orin: cache names do not depend on this machine."""
    import avsdk.export.tensorrt_build as build

    monkeypatch.setattr(build, "gpu_identity", lambda: dict(_GPU))


@pytest.mark.parametrize("version, precision, flags, builder_flags", [
    ("8.6.2", "fp32", 1 << 0, []),
    ("8.6.2", "int8", 1 << 0, ["INT8"]),
    ("8.6.2", "fp16", 1 << 0, ["FP16"]),
    ("10.3.0", "fp32", 1 << 1, []),
    ("10.3.0", "int8", 1 << 1, []),
    ("10.3.0", "fp16", 1 << 1, []),
    ("11.4.1", "fp32", 0, []),
    ("11.4.1", "int8", 0, []),
    ("11.4.1", "fp16", 0, []),
])
def test_build_engine_drives_the_api(tiny_onnx, tmp_path, monkeypatch, fake_gpu, version, precision, flags,
                                     builder_flags):
    from avsdk.export.manifest import read_manifest
    from avsdk.export.tensorrt_build import build_engine, cached_engine, timing_cache_name

    fake = FakeTensorRT(version)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    engine = build_engine(tiny_onnx[precision], tmp_path / "tiny.engine", EngineConfig(precision, max_batch=4))
    assert ("create_network", flags) in fake.calls
    assert [c[1] for c in fake.calls if c[0] == "set_flag"] == builder_flags
    assert ("set_memory_pool_limit", "WORKSPACE", 1024 << 20) in fake.calls
    assert ("set_shape", "frame", (1, 3, 224, 224), (1, 3, 224, 224), (4, 3, 224, 224)) in fake.calls
    assert [c for c in fake.calls if c[0] == "set_timing_cache"] == [("set_timing_cache", b"", False)]
    cache = tmp_path / timing_cache_name(version, _GPU["gpu"])
    assert engine.read_bytes() == b"plan" and cache.read_bytes() == b"timing:gpu-a"
    manifest = read_manifest(engine)
    assert manifest.kind == "engine" and manifest.precision == precision
    assert manifest.build["tensorrt"] == version and manifest.versions["tensorrt"] == version
    assert manifest.build["profile"]["frame"][2] == [4, 3, 224, 224]
    assert manifest.build["timing_cache"] == cache.name
    assert f"--timingCacheFile={cache.name}" in manifest.build["trtexec"]
    check_engine_manifest(manifest, version)

    # The cache builds once per (TensorRT, GPU, precision, ONNX) and reuses after.
    cached = cached_engine(tiny_onnx[precision], tmp_path / "cache", EngineConfig(precision, max_batch=4))
    builds = sum(c[0] == "build_serialized_network" for c in fake.calls)
    assert cached_engine(tiny_onnx[precision], tmp_path / "cache", EngineConfig(precision, max_batch=4)) == cached
    assert sum(c[0] == "build_serialized_network" for c in fake.calls) == builds
    monkeypatch.setattr(fake, "__version__", "99.0.0")  # a JetPack upgrade: a new engine
    assert cached_engine(tiny_onnx[precision], tmp_path / "cache", EngineConfig(precision, max_batch=4)) != cached
    assert (tmp_path / "cache" / timing_cache_name("99.0.0", _GPU["gpu"])).is_file()  # and a new timing cache


def test_timing_cache_name_holds_tensorrt_and_gpu():
    from avsdk.export.tensorrt_build import timing_cache_name

    assert timing_cache_name("10.3.0", "NVIDIA Jetson AGX Orin") == "timing.trt10.3.0.nvidia-jetson-agx-orin.cache"
    assert len({timing_cache_name("10.3.0", "Orin"), timing_cache_name("10.3.1", "Orin"),
                timing_cache_name("10.3.0", "Thor")}) == 3


@pytest.mark.parametrize("made_on, accepted", [("gpu-a", True), ("gpu-b", False)])
def test_timing_cache_from_another_device_is_not_used(tiny_onnx, tmp_path, monkeypatch, fake_gpu, caplog,
                                                      made_on, accepted):
    """ignore_mismatch=False, and a refused cache is replaced by an empty one, not forced in."""
    from avsdk.export.tensorrt_build import build_engine, timing_cache_name

    fake = FakeTensorRT("10.3.0", device="gpu-a")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    cache = tmp_path / timing_cache_name("10.3.0", _GPU["gpu"])
    cache.write_bytes(b"timing:" + made_on.encode())
    with caplog.at_level(logging.WARNING, logger="avsdk.export.tensorrt_build"):
        build_engine(tiny_onnx["int8"], tmp_path / "tiny.engine", EngineConfig("int8", max_batch=4))
    attached = [c[1:] for c in fake.calls if c[0] == "set_timing_cache"]
    if accepted:
        assert attached == [(b"timing:gpu-a", False)] and not caplog.records
    else:
        assert attached == [(b"timing:gpu-b", False), (b"", False)]
        assert "refused the timing cache" in caplog.text
    assert cache.read_bytes() == b"timing:gpu-a"


def test_parse_errors_are_reported(tiny_onnx, tmp_path, monkeypatch, fake_gpu):
    from avsdk.export.tensorrt_build import TensorRTBuildError, build_engine

    errors = ["In node 3 (Conv): UNSUPPORTED_NODE", "In node 7 (Resize): bad mode"]
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT("10.3.0", parse_errors=errors))
    with pytest.raises(TensorRTBuildError, match="could not parse tiny.int8.onnx") as caught:
        build_engine(tiny_onnx["int8"], tmp_path / "tiny.engine", EngineConfig("int8"))
    assert all(e in str(caught.value) for e in errors)
    assert not (tmp_path / "tiny.engine").exists()


def test_adopt_a_trtexec_engine(tiny_onnx, tmp_path, monkeypatch):
    from avsdk.export.manifest import read_manifest
    from avsdk.export.tensorrt_build import TensorRTBuildError, adopt_engine

    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT("10.3.0"))
    engine = tmp_path / "tiny.int8.engine"
    engine.write_bytes(b"plan")
    adopt_engine(tiny_onnx["int8"], engine, EngineConfig("int8"))
    manifest = read_manifest(engine)
    assert manifest.build["tensorrt"] == "10.3.0" and manifest.build["profile"]["frame"][2] == [16, 3, 224, 224]
    engine.write_bytes(b"a plan from another TensorRT")
    with pytest.raises(TensorRTBuildError, match="cannot load"):
        adopt_engine(tiny_onnx["int8"], engine, EngineConfig("int8"))


# -- the runtime: batches against the profile, the device, tensor types ------------------------
@pytest.mark.parametrize("n, min_batch, max_batch, chunks", [
    (6, 4, 4, [(0, 4, 4), (4, 6, 4)]),  # a --batch 4 engine: the last 2 padded to 4
    (6, 1, 4, [(0, 4, 4), (4, 6, 2)]),
    (1, 4, 4, [(0, 1, 4)]),
    (9, 3, 4, [(0, 4, 4), (4, 8, 4), (8, 9, 3)]),
    (3, 1, 8, [(0, 3, 3)]),
    (8, 1, 8, [(0, 8, 8)]),
], ids=lambda v: str(v) if not isinstance(v, list) else "")
def test_chunks_fit_the_profile(n, min_batch, max_batch, chunks):
    from avsdk.export.tensorrt_runtime import _chunks

    assert _chunks(n, min_batch, max_batch) == chunks


def test_chunks_cover_every_item_once_within_the_profile():
    from avsdk.export.tensorrt_runtime import _chunks

    for n in range(1, 20):
        for lo in range(1, 6):
            for hi in range(lo, 7):
                chunks = _chunks(n, lo, hi)
                assert [c[0] for c in chunks] == [0] + [c[1] for c in chunks[:-1]] and chunks[-1][1] == n
                assert all(lo <= size <= hi and stop - start <= size for start, stop, size in chunks)


@pytest.fixture
def fake_cudart(monkeypatch):
    """cuda-python's runtime module, stood in for over host memory (``fake_cudart.FakeCudart``):
    two GPUs of compute capability 8.7, device 0 current."""
    cudart = FakeCudart(devices=2, capability=(8, 7))
    install_cudart(monkeypatch, cudart)
    return cudart


@pytest.fixture
def fake_runner(tmp_path, monkeypatch, fake_cudart):
    """``make(batch_range, device=0, manifest_range=None, **stand_in) -> (runner, stand-in)``:
    a TensorRTRunner over the stand-in TensorRT, whose manifest gives the profile
    ``manifest_range`` (default: the engine's), and the stand-in CUDA runtime (no GPU here)."""
    from avsdk.export.manifest import sha256_file, write_manifest
    from avsdk.export.tensorrt_runtime import TensorRTRunner

    def make(batch_range, device=0, manifest_range=None, **stand_in):
        fake = FakeTensorRT("10.3.0", batch_range=batch_range, **stand_in)
        fake.current_device = lambda: fake_cudart.current
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        engine = tmp_path / "edge.int8.engine"
        engine.write_bytes(b"plan")
        lo, hi = manifest_range or batch_range
        profile = {name: [[b, *rest] for b in (lo, lo, hi)]
                   for name, rest in (("frame", (3, 224, 224)), ("log_mel", (3, 1, 96, 64)))}
        base = _engine_manifest("10.3.0", "8.7")
        write_manifest(dataclasses.replace(base, artifact_sha256=sha256_file(engine),
                                           build={**base.build, "profile": profile}), engine)
        return TensorRTRunner(engine, device=device), fake

    return make


def _inputs(n):
    generator = np.random.default_rng(n)
    return (generator.standard_normal((n, 3, 224, 224), np.float32),
            generator.standard_normal((n, 3, 1, 96, 64), np.float32))


def _traced(frames):
    """What the stand-in engine computes: each frame's mean, over a [B, 14, 14] map."""
    return frames.mean(axis=(1, 2, 3))[:, None, None] * np.ones((1, 14, 14), np.float32)


@pytest.mark.parametrize("batch_range, n", [((4, 4), 6), ((4, 4), 1), ((2, 4), 5), ((1, 4), 6)])
def test_short_last_chunk_is_padded_to_the_profile_min(fake_runner, batch_range, n):
    """A --batch 4 engine (min = max = 4) runs 6 frames as 4 + (2 padded to 4)."""
    runner, fake = fake_runner(batch_range)
    frames, mels = _inputs(n)
    got = runner.run(frames, mels)
    np.testing.assert_allclose(got, _traced(frames), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32 and got.shape == (n, 14, 14)
    ran = [c[2] for c in fake.calls if c[:2] == ("set_input_shape", "frame")]
    assert all(batch_range[0] <= b <= batch_range[1] for b in ran), ran


def test_batch_refused_by_tensorrt_is_an_input_error(fake_runner):
    """set_input_shape returns False, it does not raise: the runner must look."""
    runner, _ = fake_runner((2, 4), manifest_range=(1, 4))  # a manifest that says 1, an engine that says 2
    with pytest.raises(InputError, match=r"frame: expected a batch of 1 to 4 .* received batch 1"):
        runner.run(*_inputs(1))


def test_engine_lives_on_the_asked_gpu(fake_runner, fake_cudart):
    runner, fake = fake_runner((1, 4), device=1)
    runner.run(*_inputs(2))
    on = {c[0]: c[1] for c in fake.calls if c[0] in ("deserialize_cuda_engine", "create_execution_context",
                                                     "execute_async_v3")}
    assert on == {"deserialize_cuda_engine": 1, "create_execution_context": 1, "execute_async_v3": 1}
    assert {c[1] for c in fake_cudart.calls} == {1}  # the stream, every buffer and copy too
    assert fake_cudart.current == 0  # and the caller's device is given back


def test_runtime_binds_every_type_numpy_has():
    from avsdk.export.tensorrt_runtime import _dtype_table

    fake = FakeTensorRT("10.3.0")
    table = _dtype_table(fake)
    assert table[fake.float32] == np.float32 and table[fake.float16] == np.float16
    assert table[fake.int64] == np.int64 and table[fake.uint8] == np.uint8 and table[fake.bool] == np.bool_
    assert fake.bfloat16 not in table and fake.fp8 not in table  # no numpy type for them
    assert len(table) == 7
    assert len(_dtype_table(FakeTensorRT("8.6.2"))) == 6  # no int64 before 10


@pytest.mark.parametrize("tensor, dtype, shown", [("similarity", "fp8", "FP8"), ("frame", "bfloat16", "BF16")])
def test_tensor_type_it_cannot_bind_is_refused_at_load(fake_runner, fake_cudart, tensor, dtype, shown):
    with pytest.raises(AvsdkError, match=f"{tensor!r} has TensorRT type DataType.{shown}, which avsdk cannot "
                                         "bind to a numpy buffer"):
        fake_runner((1, 4), io_dtypes={tensor: dtype})
    assert not fake_cudart.streams and not fake_cudart.memory  # refused before holding anything


def test_runner_needs_no_torch(fake_runner, monkeypatch):
    """A device runs engines without PyTorch installed: the runner needs numpy and TensorRT only."""
    frames, mels = _inputs(3)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails, installed or not
    runner, _ = fake_runner((1, 4))
    np.testing.assert_allclose(runner.run(frames, mels), _traced(frames), rtol=1e-5, atol=1e-6)
    runner.close()


def test_runner_module_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; "
            "import avsdk.tensorrt_runtime, avsdk.export.tensorrt_runtime; "
            "assert not any(m.startswith('torch') for m in sys.modules if sys.modules[m] is not None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_missing_cuda_python_says_pip_install(fake_runner, monkeypatch):
    from avsdk.errors import MissingDependencyError

    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails, installed or not
    with pytest.raises(MissingDependencyError, match="pip install cuda-python") as caught:
        fake_runner((1, 4))
    assert "JetPack 5" in str(caught.value) and "11.8" in str(caught.value)


def test_cuda_python_before_12_6_is_used(fake_runner, monkeypatch):
    """Older cuda-python (11.8.x, JetPack 5's) has ``cuda.cudart`` and no ``cuda.bindings``."""
    legacy = FakeCudart()
    install_cudart(monkeypatch, legacy, legacy=True)
    runner, _ = fake_runner((1, 4))
    frames, mels = _inputs(2)
    np.testing.assert_allclose(runner.run(frames, mels), _traced(frames), rtol=1e-5, atol=1e-6)
    assert any(c[0] == "cudaMalloc" for c in legacy.calls)


def test_buffers_grow_only_for_a_larger_batch(fake_runner, fake_cudart):
    runner, _ = fake_runner((1, 4))

    def allocated(n):
        before = [c for c in fake_cudart.calls if c[0] == "cudaMalloc"]
        frames, mels = _inputs(n)
        np.testing.assert_allclose(runner.run(frames, mels), _traced(frames), rtol=1e-5, atol=1e-6)
        return [c[2] for c in fake_cudart.calls if c[0] == "cudaMalloc"][len(before):]

    per_item = 4 * np.array([3 * 224 * 224, 3 * 96 * 64, 14 * 14])  # frame, log_mel, similarity bytes
    assert allocated(2) == list(2 * per_item)
    assert allocated(1) == [] and allocated(2) == []  # the batch-2 buffers serve
    assert allocated(3) == list(3 * per_item)
    assert len(fake_cudart.freed) == 3 and len(fake_cudart.memory) == 3  # the batch-2 ones, replaced


def test_close_frees_every_buffer_once(fake_runner, fake_cudart):
    runner, _ = fake_runner((1, 4))
    runner.run(*_inputs(2))
    runner.run(*_inputs(4))
    assert sum(c[0] == "cudaMalloc" for c in fake_cudart.calls) == 6  # 3 buffers, grown once
    runner.close()
    assert not fake_cudart.memory and not fake_cudart.streams
    assert len(fake_cudart.freed) == len(set(fake_cudart.freed)) == 6  # each allocation freed once
    calls = len(fake_cudart.calls)
    runner.close()  # idempotent
    del runner  # and __del__ after close frees nothing twice
    assert len(fake_cudart.calls) == calls


def test_dropped_runner_frees_its_memory(fake_runner, fake_cudart):
    runner, _ = fake_runner((1, 4))
    runner.run(*_inputs(1))
    del runner  # no close(): __del__ frees
    assert not fake_cudart.memory and not fake_cudart.streams


def test_closed_runner_refuses_to_run(fake_runner):
    with fake_runner((1, 4))[0] as runner:
        runner.run(*_inputs(1))
    with pytest.raises(AvsdkError, match="is closed"):
        runner.run(*_inputs(1))


def test_cuda_error_names_the_call(fake_runner, monkeypatch, fake_cudart):
    from fake_cudart import MEMORY_ALLOCATION

    runner, _ = fake_runner((1, 4), device=1)
    monkeypatch.setitem(fake_cudart.fail, "cudaMalloc", MEMORY_ALLOCATION)
    with pytest.raises(AvsdkError, match=r"cudaMalloc failed on CUDA device 1: out of memory \(cudaError_t 2\)"):
        runner.run(*_inputs(1))
    assert fake_cudart.current == 0


def test_missing_gpu_is_a_cuda_error(fake_runner):
    with pytest.raises(AvsdkError, match="cudaGetDeviceProperties failed on CUDA device 5: invalid device ordinal"):
        fake_runner((1, 4), device=5)
