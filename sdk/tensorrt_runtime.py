"""Run a serialized avsdk TensorRT engine: the same inputs and outputs as ``OnnxRunner``.

Before TensorRT is asked to deserialize an engine, its sidecar manifest is checked: an
engine built by another TensorRT version (or for another GPU architecture) is refused with
a message that says how to rebuild it, instead of TensorRT's "engine plan file is not
compatible with this version of TensorRT". ``check_engine_manifest`` is that check, usable
without TensorRT.

The runner needs no PyTorch: its device buffers come from CUDA's own Python bindings,
cuda-python (``cudaMalloc``, ``cudaMemcpyAsync`` from and into numpy arrays, one
``cudaStream``), one per engine tensor, grown when a larger batch needs more and freed by
``close()``. They are bound by name with the tensor-address API (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``), which exists from TensorRT 8.5 through 11. A
batch runs in chunks that fit the engine's optimization profile (``_chunks``): at most its
largest batch, a short last chunk padded up to its smallest.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from avsdk.errors import AvsdkError, bad_input, require

from avsdk.manifest import Manifest, read_manifest, verify_artifact
from avsdk.runner_inputs import graph_inputs


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


# Types bound to numpy buffers, by the name both modules give them (int64 exists from TensorRT
# 10 on). bfloat16, fp8 and int4 have no numpy type: an engine that uses them is refused at load.
_DTYPES = ("float32", "float16", "int64", "int32", "int8", "uint8", "bool")


def _dtype_table(trt) -> dict:
    """{TensorRT DataType: numpy dtype} for the types this TensorRT has."""
    return {getattr(trt, name): np.dtype(name) for name in _DTYPES if hasattr(trt, name)}


def _cuda_runtime():
    """CUDA's runtime API from cuda-python: ``cuda.bindings.runtime`` from 12.6 on,
    ``cuda.cudart`` before (11.8.x, the release for JetPack 5's CUDA 11.4)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return require("cuda.cudart", "export", "TensorRT's device buffers")
    return runtime


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

    It holds device memory until ``close()`` (or ``with TensorRTRunner(...) as runner:``).

    Raises:
        MissingDependencyError: TensorRT or cuda-python is not installed.
        EngineMismatchError: the engine's manifest names another TensorRT version or GPU.
        InputError: no manifest beside the engine, or the engine file is not the one it names.
        AvsdkError: an engine tensor of a type avsdk cannot bind (not an avsdk engine), or a
            CUDA call failed (no such device, out of memory): the message names the call.
    """

    backend = "tensorrt"

    def __init__(self, path: str | os.PathLike, device: int = 0):
        trt = require("tensorrt", "export", "running TensorRT engines")
        self._cudart = _cuda_runtime()
        self.device = device  # the CUDA device index: engine, context, stream and buffers live there
        self._buffers = {}  # tensor name -> (device address, bytes)
        self._stream = None
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        gpu = self._cuda("cudaGetDeviceProperties", device)
        check_engine_manifest(self.manifest, trt.__version__, f"{gpu.major}.{gpu.minor}")
        verify_artifact(self.manifest, self.path)

        self._logger = trt.Logger(trt.Logger.WARNING)
        with self._on_device():
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise EngineMismatchError(f"TensorRT could not deserialize {self.path}. {_rebuild_hint(self.manifest)}")
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            self._dtypes = self._numpy_dtypes(trt, names)
            self.context = self.engine.create_execution_context()
            self._stream = self._cuda("cudaStreamCreate")
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [o.name for o in self.manifest.outputs if o.name in names]
        self.image_size = self.manifest.preprocessing.image_size
        self.examples = self.manifest.preprocessing.examples
        audio = self.manifest.inputs[1] if len(self.manifest.inputs) > 1 else None
        self.audio_name = audio.name if audio is not None else "log_mel"
        self.audio_shape = tuple(d if isinstance(d, int) else None for d in audio.shape[1:]) if audio else None
        profile = self.manifest.build.get("profile", {}).get("frame")  # [min, opt, max] shapes
        self.min_batch = int(profile[0][0]) if profile else 1
        self.max_batch = int(profile[2][0]) if profile else None  # larger batches run in chunks

    def _numpy_dtypes(self, trt, names) -> dict:
        table = _dtype_table(trt)
        dtypes = {}
        for name in names:
            found = self.engine.get_tensor_dtype(name)
            if found not in table:
                raise AvsdkError(
                    f"{self.path.name}: tensor {name!r} has TensorRT type {found}, which avsdk cannot "
                    f"bind to a numpy buffer (it binds {', '.join(map(str, table))}); the engine was "
                    "not built from an avsdk ONNX file"
                )
            dtypes[name] = table[found]
        return dtypes

    # -- CUDA through cuda-python ---------------------------------------------------------
    def _cuda(self, call: str, *args):
        """``cudart.<call>(*args)``: every call returns (cudaError_t, *values); a failure is an
        AvsdkError naming the call and CUDA's own description of the error."""
        cudart = self._cudart
        error, *values = getattr(cudart, call)(*args)
        if int(error):
            text = cudart.cudaGetErrorString(error)[1]
            text = text.decode() if isinstance(text, bytes) else str(text)
            raise AvsdkError(f"{call} failed on CUDA device {self.device}: {text} (cudaError_t {int(error)})")
        return values[0] if len(values) == 1 else None

    @contextmanager
    def _on_device(self):
        """Make this runner's GPU the calling thread's current device, and give the previous one back."""
        previous = self._cuda("cudaGetDevice")
        self._cuda("cudaSetDevice", self.device)
        try:
            yield
        finally:
            if previous != self.device:
                self._cuda("cudaSetDevice", previous)

    def _buffer(self, name: str, nbytes: int) -> int:
        """The device address of tensor ``name``'s buffer, of at least ``nbytes``: allocated on
        first use and grown (never shrunk) when a larger batch needs more."""
        address, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if self._buffers.pop(name, None):
                self._cuda("cudaFree", address)
            address = self._cuda("cudaMalloc", nbytes)
            self._buffers[name] = (address, nbytes)
        return address

    def close(self) -> None:
        """Free the device buffers, the stream, the execution context and the engine. The runner
        cannot run after; closing again does nothing."""
        if getattr(self, "_cudart", None) is None or (self._stream is None and not self._buffers):
            return  # closed, or __init__ stopped before it held anything
        buffers, self._buffers = self._buffers, {}
        stream, self._stream = self._stream, None
        with self._on_device():
            for address, _ in buffers.values():
                self._cuda("cudaFree", address)
            if stream is not None:
                self._cuda("cudaStreamDestroy", stream)
            self.context = self.engine = None  # the context before the engine that made it

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit CUDA may already be unloaded: nothing left to free
            pass

    def __enter__(self) -> "TensorRTRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- inference --------------------------------------------------------------------------
    def run_all(self, frame, log_mel) -> dict:
        """All outputs by name, as float32 numpy arrays (see ``OnnxRunner.run_all``).

        Raises:
            InputError: bad inputs, or TensorRT refused a batch shape (an engine whose
                manifest does not describe its optimization profile).
            AvsdkError: the runner is closed, or a CUDA call or TensorRT failed.
        """
        if self._stream is None:
            raise AvsdkError(f"the TensorRT runner of {self.path.name} is closed")
        frame, log_mel = graph_inputs(frame, log_mel, self.image_size, self.examples, self.audio_name,
                                      self.audio_shape)
        parts = []
        with self._on_device():
            for start, stop, size in _chunks(len(frame), self.min_batch, self.max_batch or len(frame)):
                out = self._run_batch(_padded(frame[start:stop], size), _padded(log_mel[start:stop], size))
                parts.append({name: value[: stop - start] for name, value in out.items()})
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _run_batch(self, frame: np.ndarray, log_mel: np.ndarray) -> dict:
        kind = self._cudart.cudaMemcpyKind
        feeds = {"frame": frame, self.audio_name: log_mel}
        # Copies and the engine all on one stream: no cross-stream races. The host arrays stay
        # referenced until the stream is synchronized.
        hosts, outputs = [], {}
        for name in self.input_names:
            host = np.ascontiguousarray(feeds[name], dtype=self._dtypes[name])
            # False (not an exception) for a shape outside the optimization profile
            if not self.context.set_input_shape(name, host.shape):
                allowed = (f"{self.min_batch} to {self.max_batch}" if self.max_batch
                           else f"at least {self.min_batch}")
                raise bad_input(
                    name, f"a batch of {allowed} for {self.path.name} (its optimization profile)",
                    f"batch {host.shape[0]} (shape {host.shape}) refused by TensorRT",
                    described=True,
                )
            address = self._buffer(name, host.nbytes)
            self._cuda("cudaMemcpyAsync", address, host.ctypes.data, host.nbytes, kind.cudaMemcpyHostToDevice,
                       self._stream)
            self.context.set_tensor_address(name, address)
            hosts.append(host)
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise AvsdkError(f"{self.path.name}: TensorRT left the shape of output {name!r} unresolved: {shape}")
            outputs[name] = np.empty(shape, self._dtypes[name])
            self.context.set_tensor_address(name, self._buffer(name, outputs[name].nbytes))
        if not self.context.execute_async_v3(int(self._stream)):
            raise AvsdkError(f"TensorRT failed to run {self.path.name}")
        for name, host in outputs.items():
            self._cuda("cudaMemcpyAsync", host.ctypes.data, self._buffers[name][0], host.nbytes,
                       kind.cudaMemcpyDeviceToHost, self._stream)
        self._cuda("cudaStreamSynchronize", self._stream)
        return {name: host.astype(np.float32, copy=False) for name, host in outputs.items()}

    def run(self, frame, log_mel) -> np.ndarray:
        """frame [B, 3, 224, 224], log_mel [B, N, 1, 96, 64] -> similarity [B, h, w] float32."""
        return self.run_all(frame, log_mel)["similarity"]

    __call__ = run
