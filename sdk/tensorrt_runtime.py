"""Run a serialized avsdk TensorRT engine: the same inputs and outputs as ``OnnxRunner``.

Before TensorRT is asked to deserialize an engine, its sidecar manifest is checked: an
engine built by another TensorRT version (or for another GPU architecture) is refused with
a message that says how to rebuild it, instead of TensorRT's "engine plan file is not
compatible with this version of TensorRT". ``check_engine_manifest`` is that check, usable
without TensorRT.

Device buffers are torch CUDA tensors (JetPack's PyTorch wheels are CUDA builds), bound by
name with the tensor-address API (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``), which exists from TensorRT 8.5 through 11. A batch runs in chunks that
fit the engine's optimization profile (``_chunks``): at most its largest batch, a short last
chunk padded up to its smallest.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avsdk.errors import AvsdkError, MissingDependencyError, bad_input, require

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


# Types bound to torch buffers, by the name both modules give them: bfloat16 and int64 exist
# from TensorRT 9/10 on.
_DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")


def _dtype_table(trt, torch) -> dict:
    """{TensorRT DataType: torch dtype} for the types this TensorRT has."""
    return {getattr(trt, name): getattr(torch, name) for name in _DTYPES if hasattr(trt, name)}


def _chunks(n: int, min_batch: int, max_batch: int) -> list:
    """``(start, stop, run_size)`` per run of ``n`` items on an engine whose profile takes
    batches of ``min_batch`` to ``max_batch``: items ``[start, stop)`` run as a batch of
    ``run_size``, the last ``run_size - (stop - start)`` of it padding (a short last chunk).
    """
    return [(start, min(start + max_batch, n), max(min(max_batch, n - start), min_batch))
            for start in range(0, n, max_batch)]


def _padded(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` [b, ...] -> [size, ...] by repeating its last item (b <= size)."""
    if len(array) == size:
        return array
    return np.concatenate([array, np.repeat(array[-1:], size - len(array), axis=0)])


class TensorRTRunner:
    """``TensorRTRunner("model.int8.engine").run(frame, log_mel) -> similarity [B, h, w]``.

    Raises:
        MissingDependencyError: TensorRT (or a CUDA build of torch) is not installed.
        EngineMismatchError: the engine's manifest names another TensorRT version or GPU.
        InputError: no manifest beside the engine, or the engine file is not the one it names.
        AvsdkError: an engine tensor of a type avsdk cannot bind (not an avsdk engine).
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

        self._torch = torch
        self._gpu = device
        self.device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        # The engine, its context and its stream belong to the current CUDA device: make it ours.
        with torch.cuda.device(self._gpu):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise EngineMismatchError(f"TensorRT could not deserialize {self.path}. {_rebuild_hint(self.manifest)}")
            self.context = self.engine.create_execution_context()
            self._stream = torch.cuda.Stream(device=self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [o.name for o in self.manifest.outputs if o.name in names]
        self._dtypes = self._torch_dtypes(trt, names)
        self.image_size = self.manifest.preprocessing.image_size
        self.examples = self.manifest.preprocessing.examples
        audio = self.manifest.inputs[1] if len(self.manifest.inputs) > 1 else None
        self.audio_name = audio.name if audio is not None else "log_mel"
        self.audio_shape = tuple(d if isinstance(d, int) else None for d in audio.shape[1:]) if audio else None
        profile = self.manifest.build.get("profile", {}).get("frame")  # [min, opt, max] shapes
        self.min_batch = int(profile[0][0]) if profile else 1
        self.max_batch = int(profile[2][0]) if profile else None  # larger batches run in chunks

    def _torch_dtypes(self, trt, names) -> dict:
        table = _dtype_table(trt, self._torch)
        dtypes = {}
        for name in names:
            found = self.engine.get_tensor_dtype(name)
            if found not in table:
                raise AvsdkError(
                    f"{self.path.name}: tensor {name!r} has TensorRT type {found}, which avsdk cannot "
                    f"bind to a torch buffer (it binds {', '.join(map(str, table))}); the engine was "
                    "not built from an avsdk ONNX file"
                )
            dtypes[name] = table[found]
        return dtypes

    def run_all(self, frame, log_mel) -> dict:
        """All outputs by name, as float32 numpy arrays (see ``OnnxRunner.run_all``).

        Raises:
            InputError: bad inputs, or TensorRT refused a batch shape (an engine whose
                manifest does not describe its optimization profile).
        """
        frame, log_mel = graph_inputs(frame, log_mel, self.image_size, self.examples, self.audio_name,
                                      self.audio_shape)
        parts = []
        with self._torch.cuda.device(self._gpu):
            for start, stop, size in _chunks(len(frame), self.min_batch, self.max_batch or len(frame)):
                out = self._run_batch(_padded(frame[start:stop], size), _padded(log_mel[start:stop], size))
                parts.append({name: value[: stop - start] for name, value in out.items()})
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _run_batch(self, frame: np.ndarray, log_mel: np.ndarray) -> dict:
        torch = self._torch
        feeds = {"frame": frame, self.audio_name: log_mel}
        keep, outputs = [], {}
        # Copies, allocations and the engine all on one stream: no cross-stream races.
        with torch.cuda.stream(self._stream):
            for name in self.input_names:
                tensor = torch.from_numpy(feeds[name]).to(self.device, self._dtypes[name]).contiguous()
                keep.append(tensor)
                # False (not an exception) for a shape outside the optimization profile
                if not self.context.set_input_shape(name, tuple(tensor.shape)):
                    allowed = (f"{self.min_batch} to {self.max_batch}" if self.max_batch
                               else f"at least {self.min_batch}")
                    raise bad_input(
                        name, f"a batch of {allowed} for {self.path.name} (its optimization profile)",
                        f"batch {tensor.shape[0]} (shape {tuple(tensor.shape)}) refused by TensorRT",
                        described=True,
                    )
                self.context.set_tensor_address(name, tensor.data_ptr())
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                self.context.set_tensor_address(name, outputs[name].data_ptr())
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise AvsdkError(f"TensorRT failed to run {self.path.name}")
        self._stream.synchronize()
        return {k: v.float().cpu().numpy().astype(np.float32) for k, v in outputs.items()}

    def run(self, frame, log_mel) -> np.ndarray:
        """frame [B, 3, 224, 224], log_mel [B, N, 1, 96, 64] -> similarity [B, h, w] float32."""
        return self.run_all(frame, log_mel)["similarity"]

    __call__ = run
