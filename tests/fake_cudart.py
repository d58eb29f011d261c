"""A stand-in for cuda-python's CUDA runtime module (``cuda.bindings.runtime``, formerly
``cuda.cudart``), for the TensorRT runner's tests on a machine without a GPU.

It implements the calls the runner makes, with cuda-python's convention (every call returns a
tuple whose first item is the cudaError_t), over host memory: "device" addresses are those of
numpy buffers it keeps, so a stand-in TensorRT can read and write them. It refuses what CUDA
refuses (copies past an allocation, frees of unknown addresses, unknown streams) with an error
code, so a runner that miscounts bytes or frees twice fails here too.
"""
from __future__ import annotations

import ctypes
import enum
import sys
import types

import numpy as np

SUCCESS, INVALID_VALUE, MEMORY_ALLOCATION, INVALID_DEVICE = 0, 1, 2, 101
_MESSAGES = {SUCCESS: b"no error", INVALID_VALUE: b"invalid argument", MEMORY_ALLOCATION: b"out of memory",
             INVALID_DEVICE: b"invalid device ordinal"}


class FakeCudart(types.ModuleType):
    """devices: how many GPUs there are. capability: (major, minor) of each.
    fail: "cudaMalloc" or "cudaStreamCreate" -> the error code that call returns (doing nothing).

    ``calls`` records (call, current device, ...) for the calls that touch a device;
    ``memory`` maps each live allocation's address to its bytes; ``freed`` lists addresses
    in the order they were freed.
    """

    def __init__(self, devices=2, capability=(8, 7), fail=None):
        super().__init__("cuda.bindings.runtime")
        self.devices, self.capability, self.fail = devices, capability, dict(fail or {})
        self.current = 0  # the calling thread's current device (cudaSetDevice)
        self.calls, self.memory, self.freed, self.streams = [], {}, [], set()
        self.cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", {
            "cudaMemcpyHostToHost": 0, "cudaMemcpyHostToDevice": 1, "cudaMemcpyDeviceToHost": 2,
            "cudaMemcpyDeviceToDevice": 3, "cudaMemcpyDefault": 4})

    def _failed(self, call):
        return self.fail.get(call, SUCCESS)

    def cudaGetErrorString(self, error):
        return SUCCESS, _MESSAGES.get(int(error), b"unrecognized error code")

    def cudaGetDevice(self):
        return SUCCESS, self.current

    def cudaSetDevice(self, device):
        if not 0 <= device < self.devices:
            return (INVALID_DEVICE,)
        self.current = device
        return (SUCCESS,)

    def cudaGetDeviceProperties(self, device):
        if not 0 <= device < self.devices:
            return INVALID_DEVICE, None
        major, minor = self.capability
        return SUCCESS, types.SimpleNamespace(major=major, minor=minor, name=f"stand-in GPU {device}")

    def cudaStreamCreate(self):
        if self._failed("cudaStreamCreate"):
            return self._failed("cudaStreamCreate"), None
        stream = 0x5000 + len(self.calls)  # an opaque handle, like cudaStream_t (int() gives it)
        self.streams.add(stream)
        self.calls.append(("cudaStreamCreate", self.current))
        return SUCCESS, stream

    def cudaStreamSynchronize(self, stream):
        return (SUCCESS if stream in self.streams else INVALID_VALUE,)

    def cudaStreamDestroy(self, stream):
        if stream not in self.streams:
            return (INVALID_VALUE,)
        self.streams.remove(stream)
        self.calls.append(("cudaStreamDestroy", self.current))
        return (SUCCESS,)

    def cudaMalloc(self, size):
        if self._failed("cudaMalloc"):
            return self._failed("cudaMalloc"), 0
        block = np.full(max(size, 1), 0xFF, np.uint8)  # NaN as float32: unwritten memory shows
        address = block.ctypes.data
        self.memory[address] = block
        self.calls.append(("cudaMalloc", self.current, size))
        return SUCCESS, address

    def cudaFree(self, address):
        if self.memory.pop(address, None) is None:
            return (INVALID_VALUE,)
        self.freed.append(address)
        self.calls.append(("cudaFree", self.current, address))
        return (SUCCESS,)

    def _owns(self, address, count):
        block = self.memory.get(address)
        return block is not None and count <= block.nbytes

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        device = {self.cudaMemcpyKind.cudaMemcpyHostToDevice: dst,
                  self.cudaMemcpyKind.cudaMemcpyDeviceToHost: src}.get(kind)
        if device is None or stream not in self.streams or not self._owns(device, count):
            return (INVALID_VALUE,)
        ctypes.memmove(dst, src, count)
        self.calls.append(("cudaMemcpyAsync", self.current, kind.name, count))
        return (SUCCESS,)


def install(monkeypatch, cudart: FakeCudart, legacy: bool = False) -> None:
    """Make ``cudart`` what ``from cuda.bindings import runtime`` imports (cuda-python >= 12.6),
    or with ``legacy`` what only ``from cuda import cudart`` finds (older releases)."""
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []  # a package
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    if legacy:
        cuda.cudart = cudart
        monkeypatch.setitem(sys.modules, "cuda.cudart", cudart)
        for absent in ("cuda.bindings", "cuda.bindings.runtime"):  # not in those releases
            monkeypatch.setitem(sys.modules, absent, None)
        return
    bindings = types.ModuleType("cuda.bindings")
    bindings.__path__, bindings.runtime, cuda.bindings = [], cudart, bindings
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
