"""avsdk.export: ONNX, INT8 (Q/DQ) and TensorRT artifacts, each with a sidecar manifest.

    from avsdk.export import export_onnx, quantize_int8, calibration_inputs, OnnxRunner
    fp32 = export_onnx(model, "out/edge.onnx")                       # + out/edge.onnx.json
    int8 = quantize_int8(fp32, "out/edge.int8.onnx", calibration_inputs(bench, 512))
    OnnxRunner(int8).run(frame, log_mel)                               # [B, 14, 14]
    # on the device (TensorRT 8.5 .. 11):
    build_engine(int8, "edge.int8.engine", EngineConfig("int8"))      # or export/build_engine.py
    TensorRTRunner("edge.int8.engine").run(frame, log_mel)

Nothing here imports onnx, onnxruntime or tensorrt until it is used.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "export_onnx": "onnx_export",
    "ExportError": "onnx_export",
    "Manifest": "avsdk.manifest",
    "TensorSpec": "avsdk.manifest",
    "Preprocessing": "avsdk.manifest",
    "read_manifest": "avsdk.manifest",
    "write_manifest": "avsdk.manifest",
    "manifest_path": "avsdk.manifest",
    "quantize_int8": "quantize",
    "calibration_samples": "calibration",
    "calibration_inputs": "calibration",
    "OnnxRunner": "avsdk.onnx_runtime",
    "EngineConfig": "tensorrt_build",
    "build_engine": "tensorrt_build",
    "cached_engine": "tensorrt_build",
    "adopt_engine": "tensorrt_build",
    "engine_cache_name": "tensorrt_build",
    "trtexec_command": "tensorrt_build",
    "TensorRTRunner": "avsdk.tensorrt_runtime",
    "EngineMismatchError": "avsdk.tensorrt_runtime",
    "check_engine_manifest": "avsdk.tensorrt_runtime",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'avsdk.export' has no attribute {name!r}")
    where = module if module.startswith("avsdk.") else f"{__name__}.{module}"  # the runtime lives in avsdk
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
