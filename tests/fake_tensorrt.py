"""A stand-in for the TensorRT Python module (8.5 .. 11), for the tests that run without it.

It follows the API of the version it is given (creation flags, builder flags, data types),
records what the builder asks of it, and refuses what TensorRT refuses (inconsistent profile
shapes, another device's timing cache, shapes outside the profile), so that a call the real
module would reject fails here too.
"""
from __future__ import annotations

import ctypes
import enum
import types
from pathlib import Path

import numpy as np

def _host_array(address: int, shape: tuple) -> np.ndarray:
    """The float32 buffer at ``address`` (host memory standing in for a device buffer) as a numpy view."""
    count = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(address)).reshape(shape)


class FakeTensorRT:
    """Records what avsdk asks of the TensorRT Python API, with the names each version has
    (8.5/8.6, 10.x, 11.x) and the behaviour the bindings document (pyCore.cpp, pyCoreDoc.h).

    parse_errors: what the ONNX parser reports (then ``parse_from_file`` returns False).
    device: the GPU it runs on; ``set_timing_cache`` returns False for a cache serialized on
        another one unless ``ignore_mismatch=True``.
    batch_range: the batches the engine's optimization profile takes (min, max).
    io_dtypes: engine tensor name -> DataType alias ("float32", "int64", "fp8", ...).
    """

    input_names = ("frame", "log_mel")

    def __init__(self, version, parse_errors=(), device="gpu-a", batch_range=(1, 16), io_dtypes=None):
        major = int(version.split(".")[0])
        generation = 8 if major < 10 else min(major, 11)
        self.__version__ = version
        self.calls = calls = []
        self.current_device = lambda: 0  # the CUDA device in use; the runner's tests read the stand-in cudart's
        fake = self

        # EXPLICIT_BATCH: deprecated and ignored in 10, gone in 11; STRONGLY_TYPED: new in 9/10,
        # deprecated and ignored in 11 (always strongly typed). Values are the stand-in's own.
        creation = {8: ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"],
                    10: ["EXPLICIT_BATCH", "STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"],
                    11: ["STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"]}[generation]
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                          {name: i for i, name in enumerate(creation)})
        # 11 removed every precision flag (FP16, INT8, BF16, FP8, ...)
        self.BuilderFlag = enum.Enum("BuilderFlag", ["TF32", "REFIT"] + ([] if generation == 11 else ["FP16", "INT8"]))
        self.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
        self.TensorIOMode = enum.Enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
        aliases = {"float32": "FLOAT", "float16": "HALF", "int8": "INT8", "int32": "INT32", "bool": "BOOL",
                   "uint8": "UINT8"}
        if generation >= 10:  # BF16, INT64, FP8, INT4 are not in 8.x
            aliases |= {"bfloat16": "BF16", "int64": "INT64", "fp8": "FP8", "int4": "INT4"}
        self.DataType = enum.Enum("DataType", sorted(aliases.values()))
        for alias, name in aliases.items():
            setattr(self, alias, self.DataType[name])
        io = {"frame": "float32", "log_mel": "float32", "similarity": "float32"} | dict(io_dtypes or {})
        lo, hi = batch_range

        class Logger:
            WARNING = 2

            def __init__(self, level):
                pass

        class ParserError:
            def __init__(self, text):
                self.text = text

            def __str__(self):
                return self.text

        class Parser:
            def __init__(self, network, logger):
                self.network = network

            @property
            def num_errors(self):
                return len(parse_errors)

            def get_error(self, index):
                return ParserError(parse_errors[index])

            def parse_from_file(self, path):
                calls.append(("parse_from_file", Path(path).name))
                if parse_errors:
                    return False
                self.network.inputs = fake.input_names
                return True

        class Profile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, lo, opt, hi):  # pyCore.cpp: RuntimeError, not a False return
                calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))
                for which, (a, b) in (("min", (lo, opt)), ("opt", (opt, hi))):
                    if len(a) != len(b) or any(x > y for x, y in zip(a, b)):
                        raise RuntimeError(f"Shape provided for {which} is inconsistent with other shapes.")
                self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

        class Cache:
            def __init__(self, data):
                self.data = bytes(data)

            def serialize(self):
                return self.data

        class Config:
            def __init__(self):
                self.profiles, self.cache = [], None

            def set_memory_pool_limit(self, pool, size):
                calls.append(("set_memory_pool_limit", pool.name, size))

            def set_flag(self, flag):
                calls.append(("set_flag", flag.name))

            def add_optimization_profile(self, profile):
                calls.append(("add_optimization_profile",))
                self.profiles.append(profile)
                return len(self.profiles) - 1

            def create_timing_cache(self, data):
                return Cache(data)

            def set_timing_cache(self, cache, ignore_mismatch):
                calls.append(("set_timing_cache", cache.data, ignore_mismatch))
                ok = ignore_mismatch or cache.data in (b"", b"timing:" + device.encode())
                if ok:
                    self.cache = cache
                return ok

            def get_timing_cache(self):  # after a build: tuned on this device
                return Cache(b"timing:" + device.encode()) if self.cache is not None else None

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                calls.append(("create_network", flags))
                if flags >> len(fake.NetworkDefinitionCreationFlag):
                    raise TypeError(f"no NetworkDefinitionCreationFlag for bits {flags:b}")
                return types.SimpleNamespace(inputs=())

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                calls.append(("build_serialized_network",))
                if any(set(p.shapes) != set(network.inputs) for p in config.profiles):
                    return None  # TensorRT logs the profile error and returns None
                return b"plan"

        class Context:
            def __init__(self):
                self.shapes, self.addresses = {}, {}

            def set_input_shape(self, name, shape):  # False (no exception) outside the profile
                ok = name in fake.input_names and lo <= shape[0] <= hi
                calls.append(("set_input_shape", name, shape[0], ok))
                if ok:
                    self.shapes[name] = tuple(shape)
                else:
                    self.shapes.pop(name, None)
                return ok

            def set_tensor_address(self, name, address):
                self.addresses[name] = address

            def get_tensor_shape(self, name):
                return (self.shapes.get("frame", (-1,))[0], 14, 14)  # -1: input shapes not set

            def execute_async_v3(self, stream):
                calls.append(("execute_async_v3", fake.current_device()))
                if set(self.shapes) != set(fake.input_names):
                    return False
                frame = _host_array(self.addresses["frame"], self.shapes["frame"])
                out = _host_array(self.addresses["similarity"], self.get_tensor_shape("similarity"))
                out[:] = frame.mean(axis=(1, 2, 3))[:, None, None]  # one value per item, to trace it
                return True

        class Engine:
            num_optimization_profiles = 1
            num_io_tensors = len(io)

            def get_tensor_name(self, index):
                return list(io)[index]

            def get_tensor_mode(self, name):
                return fake.TensorIOMode.INPUT if name in fake.input_names else fake.TensorIOMode.OUTPUT

            def get_tensor_dtype(self, name):
                return getattr(fake, io[name])

            def get_tensor_profile_shape(self, name, profile):
                rest = (3, 224, 224) if name == "frame" else (3, 1, 96, 64)
                return [(lo, *rest), (lo, *rest), (hi, *rest)]

            def create_execution_context(self):
                calls.append(("create_execution_context", fake.current_device()))
                return Context()

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                calls.append(("deserialize_cuda_engine", fake.current_device()))
                return Engine() if data == b"plan" else None

        self.Logger, self.OnnxParser, self.Builder, self.Runtime = Logger, Parser, Builder, Runtime
