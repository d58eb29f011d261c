"""Run a serialized avsdk TensorRT engine: the same inputs and outputs as ``OnnxRunner``.

Before TensorRT is asked to deserialize an engine, its sidecar manifest is checked: an
engine built by another TensorRT version (or for another GPU architecture) is refused with
a message that says how to rebuild it, instead of TensorRT's "engine plan file is not
compatible with this version of TensorRT". ``check_engine_manifest`` is that check, usable
without TensorRT.

Device buffers are torch CUDA tensors (JetPack's PyTorch wheels are CUDA builds), bound by
name with the tensor-address API (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``), which exists from TensorRT 8.5 through 11.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avsdk.errors import AvsdkError, MissingDependencyError, require

from .manifest import Manifest, read_manifest, verify_artifact
from .runner_inputs import graph_inputs


class EngineMismatchError(AvsdkError):
    """The engine was built for another TensorRT version or GPU than this machine's."""


def _rebuild_hint(manifest: Manifest) -> str:
    onnx = manifest.source.get("onnx") or "model.onnx"
    flag = "--" + manifest.precision
    return (
        "TensorRT engines are not portable across TensorRT versions or GPUs; rebuild it on this "
        f"device from its ONNX file: python export/build_engine.py --onnx {onnx} {flag}"
        + (f"  (or: {manifest.build['trtexec']})" if manifest.build.get("trtexec") else "")
    )


def check_engine_manifest(manifest: Manifest, tensorrt_version: str,
                          compute_capability: str | None = None) -> None:
    """Raise EngineMismatchError unless ``manifest`` describes an engine this machine can load.

    The TensorRT version must match exactly (major.minor.patch: plans are not compatible
    across any of them by default); the GPU's compute capability must match where both are
    known.
    """
    from packaging.version import InvalidVersion, Version

    if manifest.kind != "engine":
        raise EngineMismatchError(f"{manifest.artifact} is a {manifest.kind} artifact, not a TensorRT engine")
    built = manifest.build.get("tensorrt") or manifest.versions.get("tensorrt")
    if not built:
        raise EngineMismatchError(
            f"the manifest of {manifest.artifact} does not name the TensorRT version it was "
            f"built with. {_rebuild_hint(manifest)}"
        )
    try:
        same = Version(str(built)).release[:3] == Version(str(tensorrt_version)).release[:3]
    except InvalidVersion:
        same = str(built) == str(tensorrt_version)
    if not same:
        raise EngineMismatchError(
            f"{manifest.artifact} was built with TensorRT {built} but this machine has TensorRT "
            f"{tensorrt_version}. {_rebuild_hint(manifest)}"
        )
    wanted = manifest.build.get("compute_capability")
    if wanted and compute_capability and str(wanted) != str(compute_capability):
        raise EngineMismatchError(
            f"{manifest.artifact} was built for a GPU of compute capability {wanted} "
            f"({manifest.build.get('gpu', 'unknown')}) but this one is {compute_capability}. "
            f"{_rebuild_hint(manifest)}"
        )


class TensorRTRunner:
    """``TensorRTRunner("model.int8.engine").run(frame, log_mel) -> similarity [B, h, w]``.

    Raises:
        MissingDependencyError: TensorRT (or a CUDA build of torch) is not installed.
        EngineMismatchError: the engine's manifest names another TensorRT version or GPU.
        InputError: no manifest beside the engine, or the engine file is not the one it names.
    """

    backend = "tensorrt"

    def __init__(self, path: str | os.PathLike, device: int = 0):
        trt = require("tensorrt", "export", "running TensorRT engines")
        import torch

        if not torch.cuda.is_available():
            raise MissingDependencyError(
                "TensorRT inference needs a CUDA device and a CUDA build of torch for its "
                "buffers (on a Jetson: NVIDIA's PyTorch wheel for your JetPack)"
            )
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        major, minor = torch.cuda.get_device_capability(device)
        check_engine_manifest(self.manifest, trt.__version__, f"{major}.{minor}")
        verify_artifact(self.manifest, self.path)

        self._trt, self._torch = trt, torch
        self.device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineMismatchError(f"TensorRT could not deserialize {self.path}. {_rebuild_hint(self.manifest)}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [o.name for o in self.manifest.outputs if o.name in names]
        self.image_size = self.manifest.preprocessing.image_size
        self.examples = self.manifest.preprocessing.examples
        self._stream = torch.cuda.Stream(device=self.device)
        profile = self.manifest.build.get("profile", {}).get("frame")
        self.max_batch = int(profile[2][0]) if profile else None  # larger batches run in chunks

    def _torch_dtype(self, name):
        trt, torch = self._trt, self._torch
        table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
                 trt.int8: torch.int8, trt.bool: torch.bool}
        return table[self.engine.get_tensor_dtype(name)]

    def run_all(self, frame, log_mel) -> dict:
        """All outputs by name, as float32 numpy arrays (see ``OnnxRunner.run_all``)."""
        frame, log_mel = graph_inputs(frame, log_mel, self.image_size, self.examples)
        step = self.max_batch or len(frame)
        parts = [self._run_batch(frame[i : i + step], log_mel[i : i + step])
                 for i in range(0, len(frame), step)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _run_batch(self, frame: np.ndarray, log_mel: np.ndarray) -> dict:
        torch = self._torch
        feeds = {"frame": frame, "log_mel": log_mel}
        keep, outputs = [], {}
        # Copies, allocations and the engine all on one stream: no cross-stream races.
        with torch.cuda.stream(self._stream):
            for name in self.input_names:
                tensor = torch.from_numpy(feeds[name]).to(self.device, self._torch_dtype(name)).contiguous()
                keep.append(tensor)
                self.context.set_input_shape(name, tuple(tensor.shape))
                self.context.set_tensor_address(name, tensor.data_ptr())
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self._torch_dtype(name), device=self.device)
                self.context.set_tensor_address(name, outputs[name].data_ptr())
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise AvsdkError(f"TensorRT failed to run {self.path.name}")
        self._stream.synchronize()
        return {k: v.float().cpu().numpy().astype(np.float32) for k, v in outputs.items()}

    def run(self, frame, log_mel) -> np.ndarray:
        """frame [B, 3, 224, 224], log_mel [B, N, 1, 96, 64] -> similarity [B, h, w] float32."""
        return self.run_all(frame, log_mel)["similarity"]

    __call__ = run
