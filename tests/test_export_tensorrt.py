"""TensorRT logic that runs without TensorRT: the per-version build plan, the trtexec command,
the engine cache name, the precision guard and the runtime's version check. The real build
and run are at the end and skip where TensorRT is missing.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from avsdk.errors import InputError
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


# -- the builder's calls, against a stand-in TensorRT module -----------------------------
class _FakeTensorRT:
    """Records what build_engine asks of the TensorRT Python API (names as in 8.5 .. 11)."""

    def __init__(self, version):
        import enum
        import types

        self.__version__ = version
        self.calls = []
        calls = self.calls
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NDCF", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
        self.BuilderFlag = enum.Enum("BuilderFlag", ["FP16", "INT8", "TF32"])
        self.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])

        class Logger:
            WARNING = 2

            def __init__(self, level):
                pass

        class Parser:
            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                calls.append(("parse_from_file", Path(path).name))
                return True

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

        class Cache:
            def serialize(self):
                return b"timing"

        class Config:
            def set_memory_pool_limit(self, pool, size):
                calls.append(("set_memory_pool_limit", pool.name, size))

            def set_flag(self, flag):
                calls.append(("set_flag", flag.name))

            def add_optimization_profile(self, profile):
                calls.append(("add_optimization_profile",))

            def create_timing_cache(self, data):
                return Cache()

            def set_timing_cache(self, cache, ignore_mismatch):
                calls.append(("set_timing_cache",))

            def get_timing_cache(self):
                return Cache()

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                calls.append(("create_network", flags))
                return types.SimpleNamespace()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                calls.append(("build_serialized_network",))
                return b"plan"

        class Engine:
            num_optimization_profiles = 1

            def get_tensor_profile_shape(self, name, profile):
                rest = (3, 224, 224) if name == "frame" else (3, 1, 96, 64)
                return [(1, *rest), (2, *rest), (16, *rest)]

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                return Engine() if data == b"plan" else None

        self.Logger, self.OnnxParser, self.Builder, self.Runtime = Logger, Parser, Builder, Runtime



@pytest.mark.parametrize("version, precision, flags, builder_flags", [
    ("8.6.2", "int8", 1 << 0, ["INT8"]),
    ("8.6.2", "fp16", 1 << 0, ["FP16"]),
    ("10.3.0", "int8", 1 << 1, []),
    ("10.3.0", "fp16", 1 << 1, []),
    ("11.0.0", "int8", 0, []),
])
def test_build_engine_drives_the_api(tiny_onnx, tmp_path, monkeypatch, version, precision, flags, builder_flags):
    from avsdk.export.manifest import read_manifest
    from avsdk.export.tensorrt_build import build_engine, cached_engine

    fake = _FakeTensorRT(version)
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", fake)
    engine = build_engine(tiny_onnx[precision], tmp_path / "tiny.engine", EngineConfig(precision, max_batch=4))
    assert ("create_network", flags) in fake.calls
    assert [c[1] for c in fake.calls if c[0] == "set_flag"] == builder_flags
    assert ("set_memory_pool_limit", "WORKSPACE", 1024 << 20) in fake.calls
    assert ("set_shape", "frame", (1, 3, 224, 224), (1, 3, 224, 224), (4, 3, 224, 224)) in fake.calls
    assert engine.read_bytes() == b"plan" and (tmp_path / "timing.cache").read_bytes() == b"timing"
    manifest = read_manifest(engine)
    assert manifest.kind == "engine" and manifest.precision == precision
    assert manifest.build["tensorrt"] == version and manifest.versions["tensorrt"] == version
    assert manifest.build["profile"]["frame"][2] == [4, 3, 224, 224]
    check_engine_manifest(manifest, version)

    # The cache builds once per (TensorRT, GPU, precision, ONNX) and reuses after.
    cached = cached_engine(tiny_onnx[precision], tmp_path / "cache", EngineConfig(precision, max_batch=4))
    builds = sum(c[0] == "build_serialized_network" for c in fake.calls)
    assert cached_engine(tiny_onnx[precision], tmp_path / "cache", EngineConfig(precision, max_batch=4)) == cached
    assert sum(c[0] == "build_serialized_network" for c in fake.calls) == builds
    monkeypatch.setattr(fake, "__version__", "99.0.0")  # a JetPack upgrade: a new engine
    assert cached_engine(tiny_onnx[precision], tmp_path / "cache", EngineConfig(precision, max_batch=4)) != cached


def test_adopt_a_trtexec_engine(tiny_onnx, tmp_path, monkeypatch):
    from avsdk.export.manifest import read_manifest
    from avsdk.export.tensorrt_build import TensorRTBuildError, adopt_engine

    monkeypatch.setitem(__import__("sys").modules, "tensorrt", _FakeTensorRT("10.3.0"))
    engine = tmp_path / "tiny.int8.engine"
    engine.write_bytes(b"plan")
    adopt_engine(tiny_onnx["int8"], engine, EngineConfig("int8"))
    manifest = read_manifest(engine)
    assert manifest.build["tensorrt"] == "10.3.0" and manifest.build["profile"]["frame"][2] == [16, 3, 224, 224]
    engine.write_bytes(b"a plan from another TensorRT")
    with pytest.raises(TensorRTBuildError, match="cannot load"):
        adopt_engine(tiny_onnx["int8"], engine, EngineConfig("int8"))
