"""Build a serialized TensorRT engine from an avsdk ONNX file, one code path for 8.5 .. 11.x.

Precision comes from the ONNX file, never from a default:
    fp32 -> the fp32 ONNX;  fp16 -> the FP16-typed ONNX;  int8 -> the Q/DQ ONNX.
The ONNX's own precision is read and must equal the one asked for, so an engine is never
built at a lower (or different) precision than asked, silently or not.

How each TensorRT generation is driven (``plan_build``):
  - 8.5 / 8.6 (JetPack 5.1 / 6.0): explicit-batch network, weakly typed; the Q/DQ graph needs
    ``BuilderFlag.INT8``, the FP16 graph ``BuilderFlag.FP16`` (else its layers may run fp32).
  - 10.x (JetPack 6.1+, 7.x): ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, no precision
    flags: tensor types follow the graph (docs.nvidia.com/deeplearning/tensorrt, Python API,
    "Builder": NetworkDefinitionCreationFlag.STRONGLY_TYPED). EXPLICIT_BATCH is deprecated
    and ignored there, so it is not set.
  - 11.x (on Jetson from 11.4.1, JetPack 7.2.2+; 11.0-11.4.0 do not support JetPack): networks
    are strongly typed by default and weak typing is gone (11.0 release notes). No creation
    flag is set: EXPLICIT_BATCH no longer exists and STRONGLY_TYPED is kept only for API
    compatibility, ignored (11.0 Python API, "Builder"). The FP16/INT8 builder flags and the
    calibrators are removed (TensorRT "Migrating from 10.x to 11.x", Python "Removed APIs
    and Replacements").
Common to all: ``OnnxParser.parse_from_file``, ``IBuilderConfig.set_memory_pool_limit
(MemoryPoolType.WORKSPACE, bytes)`` (8.4+), one optimization profile over the batch axis,
a timing cache beside the engine, named after the TensorRT version and the GPU like the
engine (``timing_cache_name``) and loaded only if TensorRT accepts it for this device,
``build_serialized_network``.
TF32 is left at TensorRT's default for fp32 (as trtexec does).

Engines are tied to the TensorRT version and the GPU they were built with. Cached engines
are named after both, plus the precision and the ONNX hash (as jetson-inference does), so a
JetPack upgrade or a new model builds a new engine instead of failing to deserialize.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from avsdk.errors import AvsdkError, bad_input, require

from avsdk.manifest import (
    Manifest,
    PRECISIONS,
    manifest_path,
    read_manifest,
    sha256_file,
    tool_versions,
    write_atomic,
    write_manifest,
)

MIN_TENSORRT = "8.5"

log = logging.getLogger(__name__)


class TensorRTBuildError(AvsdkError):
    """TensorRT could not parse or build the network."""


@dataclass(frozen=True)
class EngineConfig:
    """Settings of one engine build. The batch range is the optimization profile's."""

    precision: str = "fp32"  # must match the ONNX file's precision
    workspace_mib: int = 1024  # builder scratch memory; Jetson Orin Nano has 8 GB in all
    min_batch: int = 1
    opt_batch: int = 1  # the batch TensorRT tunes its kernels for
    max_batch: int = 8

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise bad_input("precision", f"one of {PRECISIONS}", self.precision)
        if not isinstance(self.workspace_mib, int) or self.workspace_mib < 16:
            raise bad_input("workspace_mib", "an int >= 16 (MiB)", self.workspace_mib)
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise bad_input(
                "min_batch/opt_batch/max_batch", "1 <= min <= opt <= max",
                (self.min_batch, self.opt_batch, self.max_batch),
            )


@dataclass(frozen=True)
class BuildPlan:
    """What the builder is told for one TensorRT version and precision (no TensorRT needed)."""

    tensorrt: str
    strongly_typed: bool  # network creation flag STRONGLY_TYPED (implicit on 11.x)
    network_flags: tuple  # NetworkDefinitionCreationFlag names to set
    builder_flags: tuple  # BuilderFlag names to set
    trtexec_flags: tuple  # the same choices, as trtexec options


def tensorrt_generation(version: str) -> int:
    """8 for 8.5/8.6, 10 for 10.x, 11 for 11.x and later.

    Raises:
        InputError: TensorRT older than 8.5 (no name-based I/O API, opset 17 parsing).
    """
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(str(version))
    except InvalidVersion as exc:
        raise bad_input("tensorrt version", "a version such as '10.3.0'", version) from exc
    if parsed < Version(MIN_TENSORRT):
        raise bad_input("tensorrt version", f">= {MIN_TENSORRT} (JetPack 5.1 or newer)", version)
    if parsed.major < 10:
        return 8  # 9.x was never shipped on a Jetson; it takes the same flags as 8.6
    return 10 if parsed.major == 10 else 11


def plan_build(tensorrt_version: str, precision: str) -> BuildPlan:
    """The network and builder flags for ``precision`` on ``tensorrt_version``."""
    if precision not in PRECISIONS:
        raise bad_input("precision", f"one of {PRECISIONS}", precision)
    generation = tensorrt_generation(tensorrt_version)
    if generation == 8:
        flag = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8",)}[precision]
        return BuildPlan(str(tensorrt_version), False, ("EXPLICIT_BATCH",), flag,
                         tuple("--" + f.lower() for f in flag))
    if generation == 10:
        return BuildPlan(str(tensorrt_version), True, ("STRONGLY_TYPED",), (), ("--stronglyTyped",))
    return BuildPlan(str(tensorrt_version), True, (), (), ())


def onnx_precision(path: str | os.PathLike) -> str:
    """The precision an avsdk ONNX file carries: "int8" (Q/DQ nodes), "fp16" (float16
    weights) or "fp32"."""
    onnx = require("onnx", "export", "reading ONNX files")
    model = onnx.load(str(path), load_external_data=False)
    ops = {node.op_type for node in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def check_precision(onnx_path: str | os.PathLike, precision: str) -> None:
    """Refuse to build ``precision`` from an ONNX file of another precision.

    The manifest's precision is checked always; the graph itself too where the ``onnx``
    package is installed (a Jetson may have only TensorRT and avsdk).
    """
    manifest = read_manifest(onnx_path)
    found = manifest.precision
    target = manifest.build.get("target", "tensorrt")  # avsdk.export.quantize's int8 target
    if target != "tensorrt":
        raise bad_input("onnx_path", "an ONNX file for TensorRT", f"{Path(onnx_path).name}, quantized for "
                        f"ONNX Runtime (int8 target {target!r}: uint8 activations, which TensorRT does not "
                        "take); quantize the fp32 ONNX with --int8-target tensorrt", described=True)
    import importlib.util

    if found == precision and importlib.util.find_spec("onnx") is not None:
        found = onnx_precision(onnx_path)
    if found != precision:
        how = {
            "fp32": "export the fp32 ONNX (build_engine.py --checkpoint ... --fp32)",
            "fp16": "export an FP16-typed ONNX (build_engine.py --checkpoint ... --fp16)",
            "int8": "quantize to Q/DQ first (build_engine.py --onnx model.onnx --int8 --calib-data ROOT)",
        }[precision]
        raise bad_input(
            "precision", f"{precision}, the precision of the ONNX file", f"a {found} ONNX file "
            f"({Path(onnx_path).name}); an engine is never built at another precision than "
            f"asked: {how}", described=True,
        )


def profile_shapes(manifest: Manifest, config: EngineConfig) -> dict:
    """name -> (min, opt, max) shapes for every input, from the ONNX manifest."""
    shapes = {}
    for spec in manifest.inputs:
        rest = tuple(int(d) for d in spec.shape[1:])
        if isinstance(spec.shape[0], int):  # static batch: min = opt = max
            fixed = (spec.shape[0], *rest)
            shapes[spec.name] = (fixed, fixed, fixed)
        else:
            shapes[spec.name] = tuple(
                (b, *rest) for b in (config.min_batch, config.opt_batch, config.max_batch)
            )
    return shapes


def trtexec_command(onnx_path, engine_path, config: EngineConfig, manifest: Manifest,
                    tensorrt_version: str, timing_cache=None) -> str:
    """The trtexec command line that builds the same engine on a device (shell-quoted)."""
    plan = plan_build(tensorrt_version, config.precision)
    shapes = profile_shapes(manifest, config)

    def spec(index):
        return ",".join(f"{name}:{'x'.join(map(str, s[index]))}" for name, s in shapes.items())

    args = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    if any(isinstance(s.shape[0], str) for s in manifest.inputs):
        args += [f"--minShapes={spec(0)}", f"--optShapes={spec(1)}", f"--maxShapes={spec(2)}"]
    args += [f"--memPoolSize=workspace:{config.workspace_mib}", *plan.trtexec_flags]
    if timing_cache is not None:
        args.append(f"--timingCacheFile={timing_cache}")
    return " ".join(shlex.quote(a) for a in args)


def trtexec_commands(onnx_path, engine_path, config: EngineConfig, manifest: Manifest,
                     timing_cache=None) -> dict:
    """The command for each supported TensorRT generation, for a machine without TensorRT."""
    generations = {
        "TensorRT 8.5/8.6 (JetPack 5.1, 6.0)": "8.6",
        "TensorRT 10.x (JetPack 6.1+, 7.x)": "10.3",
        # 11.0-11.4.0 do not support JetPack (NVIDIA's "Migrating ... on Jetson/JetPack" pages)
        "TensorRT 11.x (on Jetson: 11.4.1+, JetPack 7.2.2+)": "11.4.1",
    }
    return {label: trtexec_command(onnx_path, engine_path, config, manifest, version, timing_cache)
            for label, version in generations.items()}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _device_tag(tensorrt_version: str, gpu: str) -> str:
    """``trt<version>.<gpu>``: what ties engines and timing caches to one machine."""
    return f"trt{tensorrt_version}.{_slug(gpu)}"


def engine_cache_name(onnx_path: str | os.PathLike, precision: str, tensorrt_version: str,
                      gpu: str, onnx_sha256: str | None = None) -> str:
    """``<stem>.<precision>.trt<version>.<gpu>.<onnx sha256[:12]>.engine``.

    Every fact that makes an engine unusable elsewhere is in the name, so a cached engine
    is reused only where it can run, and anything else builds a new one.
    """
    onnx_path = Path(onnx_path)
    stem = onnx_path.stem
    for suffix in PRECISIONS:
        if stem.endswith("." + suffix):
            stem = stem[: -len(suffix) - 1]
    digest = (onnx_sha256 or sha256_file(onnx_path))[:12]
    return f"{stem}.{precision}.{_device_tag(tensorrt_version, gpu)}.{digest}.engine"


def timing_cache_name(tensorrt_version: str, gpu: str) -> str:
    """``timing.trt<version>.<gpu>.cache``: one timing cache per TensorRT version and GPU, so
    a folder copied to another board or kept across a JetPack upgrade starts a new one."""
    return f"timing.{_device_tag(tensorrt_version, gpu)}.cache"


def gpu_identity() -> dict:
    """{"gpu": name, "compute_capability": "8.7" or None} of the device engines are built on."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"gpu": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}
    except Exception:  # torch without CUDA (a CPU wheel on a Jetson): ask the platform
        pass
    model = Path("/proc/device-tree/model")  # Jetson: "NVIDIA Jetson AGX Orin Developer Kit"
    if model.is_file():
        return {"gpu": model.read_text(errors="ignore").strip("\x00 \n"), "compute_capability": None}
    try:
        import subprocess

        name = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.splitlines()[0].strip()
        return {"gpu": name, "compute_capability": None}
    except Exception:
        return {"gpu": "unknown-gpu", "compute_capability": None}


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike,
                 config: EngineConfig = EngineConfig(),
                 timing_cache: str | os.PathLike | None = None) -> Path:
    """Build ``engine_path`` from ``onnx_path`` with the TensorRT Python API, and its manifest.

    ``timing_cache`` defaults to ``timing_cache_name(TensorRT version, GPU)`` beside the engine;
    a cache TensorRT refuses for this device is replaced by an empty one (logged).

    Raises:
        MissingDependencyError: TensorRT is not importable here.
        InputError: the ONNX precision differs from ``config.precision``; unsupported TensorRT.
        TensorRTBuildError: the parser or the builder failed (their messages included).
    """
    trt = require("tensorrt", "export", "building TensorRT engines")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    source = read_manifest(onnx_path)
    check_precision(onnx_path, config.precision)
    plan = plan_build(trt.__version__, config.precision)
    identity = gpu_identity()
    timing_cache = (Path(timing_cache) if timing_cache
                    else engine_path.with_name(timing_cache_name(trt.__version__, identity["gpu"])))

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTBuildError(f"TensorRT {trt.__version__} could not parse {onnx_path.name}: {errors}")

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
    for name in plan.builder_flags:
        builder_config.set_flag(getattr(trt.BuilderFlag, name))
    shapes = profile_shapes(source, config)
    if any(isinstance(spec.shape[0], str) for spec in source.inputs):  # dynamic batch axis
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        builder_config.add_optimization_profile(profile)
    _attach_timing_cache(builder_config, timing_cache)

    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise TensorRTBuildError(
            f"TensorRT {trt.__version__} failed to build {onnx_path.name} at {config.precision}; "
            "rerun with a larger --workspace or read the TensorRT log above"
        )
    write_atomic(engine_path, bytes(memoryview(serialized)))
    write_atomic(timing_cache, bytes(memoryview(builder_config.get_timing_cache().serialize())))

    how = {
        "strongly_typed": plan.strongly_typed,
        "builder_flags": list(plan.builder_flags),
        "workspace_mib": config.workspace_mib,
        "timing_cache": timing_cache.name,
    }
    write_manifest(_engine_manifest(source, onnx_path, engine_path, config, trt.__version__, identity,
                                    shapes, how), engine_path)
    return engine_path


def _attach_timing_cache(builder_config, path: Path) -> None:
    """Give the build the timing cache in ``path`` if TensorRT accepts it here, else an empty one.

    ``ignore_mismatch=False``: a cache made on another device is refused rather than used (the
    ITimingCache documentation warns that using one may cause functional bugs, not just a
    slower build); ``set_timing_cache`` then returns False.
    """
    data = path.read_bytes() if path.is_file() else b""
    if data:
        cache = builder_config.create_timing_cache(data)
        if cache is not None and builder_config.set_timing_cache(cache, ignore_mismatch=False):
            return
        log.warning("TensorRT refused the timing cache %s (made by another TensorRT version or "
                    "device); starting from an empty one, which it will replace", path)
    builder_config.set_timing_cache(builder_config.create_timing_cache(b""), ignore_mismatch=False)


def _engine_manifest(source: Manifest, onnx_path: Path, engine_path: Path, config: EngineConfig,
                     version: str, identity: dict, shapes: dict, how: dict) -> Manifest:
    return dataclasses.replace(
        source,
        artifact=engine_path.name,
        kind="engine",
        precision=config.precision,
        artifact_sha256=sha256_file(engine_path),
        versions={**tool_versions(), "tensorrt": version},
        source={**source.source, "onnx": onnx_path.name, "onnx_sha256": sha256_file(onnx_path)},
        build={
            "tensorrt": version,
            **identity,
            **how,
            "profile": {k: [list(s) for s in v] for k, v in shapes.items()},
            "trtexec": trtexec_command(onnx_path.name, engine_path.name, config, source, version,
                                       how.get("timing_cache")),
            "onnx_build": source.build,
        },
    )


def adopt_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike,
                 config: EngineConfig = EngineConfig()) -> Path:
    """Write the manifest of an engine built outside avsdk (e.g. by the printed trtexec
    command) from ``onnx_path``, so that avsdk's runtime will load it.

    The engine is deserialized first: only an engine this machine's TensorRT can load is
    adopted, and its optimization profile is read from the engine itself.

    Raises:
        MissingDependencyError: TensorRT is not importable here.
        InputError: the ONNX precision differs from ``config.precision``.
        TensorRTBuildError: this TensorRT cannot deserialize the engine.
    """
    trt = require("tensorrt", "export", "reading TensorRT engines")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    source = read_manifest(onnx_path)
    check_precision(onnx_path, config.precision)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise TensorRTBuildError(
            f"TensorRT {trt.__version__} cannot load {engine_path.name}: it was built by another "
            "TensorRT version or for another GPU; rebuild it here"
        )
    shapes = profile_shapes(source, config)
    if engine.num_optimization_profiles > 0:
        shapes = {name: tuple(tuple(s) for s in engine.get_tensor_profile_shape(name, 0)) for name in shapes}
    how = {"built_by": "adopted (built outside avsdk)", "strongly_typed": None, "builder_flags": None}
    write_manifest(_engine_manifest(source, onnx_path, engine_path, config, trt.__version__, gpu_identity(),
                                    shapes, how), engine_path)
    return engine_path


def cached_engine(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike,
                  config: EngineConfig = EngineConfig()) -> Path:
    """The engine for ``onnx_path`` on this device, built on first use and reused after.

    A cached file is reused only if its manifest names this TensorRT version, this GPU and
    this ONNX file; otherwise (JetPack upgrade, other board, new model) it is rebuilt.
    """
    trt = require("tensorrt", "export", "building TensorRT engines")
    onnx_path, cache_dir = Path(onnx_path), Path(cache_dir)
    onnx_sha = sha256_file(onnx_path)
    identity = gpu_identity()
    name = engine_cache_name(onnx_path, config.precision, trt.__version__, identity["gpu"], onnx_sha)
    engine = cache_dir / name
    if engine.is_file() and manifest_path(engine).is_file():
        try:
            found = read_manifest(engine)
            if (found.build.get("tensorrt") == trt.__version__
                    and found.source.get("onnx_sha256") == onnx_sha
                    and found.artifact_sha256 == sha256_file(engine)):
                return engine
        except AvsdkError:
            pass  # unreadable manifest: rebuild
    return build_engine(onnx_path, engine, config)  # timing cache beside it, per TensorRT and GPU
