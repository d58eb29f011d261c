"""Run an exported avsdk ONNX graph (fp32, fp16 or Q/DQ int8) with ONNX Runtime."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avsdk.errors import CheckpointError, MissingDependencyError, bad_input, require

from avsdk.runner_inputs import graph_inputs


PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}
PROVIDER_HINTS = {
    "CUDAExecutionProvider": "pip install onnxruntime-gpu (in place of onnxruntime; on a Jetson, the "
                             "onnxruntime-gpu wheel built for its JetPack)",
    "TensorrtExecutionProvider": "it needs onnxruntime-gpu and TensorRT's libraries on the library path",
}


def _provider_name(provider) -> str:
    return provider[0] if isinstance(provider, (tuple, list)) else str(provider)


def parse_device(device) -> tuple[str, int]:
    """("cpu", 0) or ("cuda", index) of a device string, without torch; InputError naming
    ``device`` for anything else."""
    if isinstance(device, str):
        kind, _, index = device.strip().lower().partition(":")
        if kind == "cpu" and not index:
            return "cpu", 0
        if kind == "cuda" and (not index or index.isdigit()):
            return "cuda", int(index or 0)
    raise bad_input("device", "'cpu', 'cuda' or 'cuda:N'", device)


def providers_for(device: str = "cpu", provider: str | None = None) -> list:
    """ONNX Runtime providers that run a graph on ``device``: the CPU's, or on "cuda:N" the
    CUDA provider (``provider`` "tensorrt": TensorRT's, then CUDA's for what TensorRT does not
    take), with the CPU's last for the few nodes a GPU provider leaves (shape arithmetic)."""
    kind, index = parse_device(device)
    if kind == "cpu":
        if provider not in (None, "cpu"):
            raise bad_input("provider", "None or 'cpu' on device 'cpu'", provider)
        return [PROVIDERS["cpu"]]
    if provider not in (None, "cuda", "tensorrt"):
        raise bad_input("provider", "None, 'cuda' or 'tensorrt' on a CUDA device", provider)
    gpu = [(PROVIDERS["cuda"], {"device_id": index})]
    if provider == "tensorrt":
        gpu.insert(0, (PROVIDERS["tensorrt"], {"device_id": index}))
    return gpu + [PROVIDERS["cpu"]]


class OnnxRunner:
    """``OnnxRunner("model.onnx").run(frame, log_mel) -> similarity [B, h, w] float32``.

    Args:
        path: an .onnx file written by ``avsdk.export`` (inputs "frame", "log_mel").
        providers: ONNX Runtime execution providers in order of preference, each a name or a
            (name, options) pair; CPU by default. ``providers_for(device)`` gives those of a device.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).

    Raises:
        MissingDependencyError: onnxruntime is not installed, or this build of it lacks the
            first provider asked for (onnxruntime has no CUDA: install onnxruntime-gpu).
        InputError: the session did not come up on the first provider asked for (ONNX Runtime
            would otherwise fall back to the CPU without a word).
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, providers=("CPUExecutionProvider",), threads: int | None = None):
        ort = require("onnxruntime", "export", "running ONNX models")
        self.path = Path(path)
        if not self.path.is_file():
            raise bad_input("path", "an existing .onnx file", str(self.path), described=True)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        providers = list(providers)
        wanted = _provider_name(providers[0])
        available = ort.get_available_providers()
        if wanted not in available:
            raise MissingDependencyError(
                f"ONNX Runtime {ort.__version__} here has no {wanted} (it has {', '.join(available)}): "
                + PROVIDER_HINTS.get(wanted, "install an onnxruntime build that has it"))
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        if self.session.get_providers()[0] != wanted:  # ONNX Runtime fell back (a CUDA library missing)
            raise bad_input("providers", f"a session on {wanted}",
                            f"ONNX Runtime ran it on {self.session.get_providers()[0]} (see its log above "
                            "for why the provider did not start)", described=True)
        self.providers = self.session.get_providers()
        names = [i.name for i in self.session.get_inputs()]
        if names not in (["frame", "log_mel"], ["frame", "waveform"]):
            raise bad_input(str(self.path), "an avsdk graph with inputs ['frame', 'log_mel'] or "
                            "['frame', 'waveform']", names)
        self.audio_name = names[1]
        self._check_graph()
        frame_shape = self.session.get_inputs()[0].shape
        self.image_size = frame_shape[-1] if isinstance(frame_shape[-1], int) else 224
        audio_shape = tuple(d if isinstance(d, int) else None for d in self.session.get_inputs()[1].shape[1:])
        self.audio_shape = audio_shape
        self.examples = audio_shape[0] if self.audio_name == "log_mel" else None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _check_graph(self) -> None:
        """CheckpointError now, not ONNX Runtime's InvalidArgument (or a KeyError) at every run:
        avsdk feeds float32 inputs and reads the "similarity" output, maps [B, h, w]."""
        for graph_input in self.session.get_inputs():
            if graph_input.type != "tensor(float)":
                raise CheckpointError(
                    f"ONNX graph {str(self.path)!r} takes {graph_input.name} as {graph_input.type}; an avsdk "
                    "graph takes float32 inputs (tensor(float)) as avsdk.export writes them")
        outputs = {o.name: o for o in self.session.get_outputs()}
        similarity = outputs.get("similarity")
        if similarity is None:
            raise CheckpointError(f"ONNX graph {str(self.path)!r} has no output 'similarity' (it has "
                                  f"{sorted(outputs)}); an avsdk graph outputs its maps [B, h, w] under that name")
        shape = similarity.shape
        if isinstance(shape, (list, tuple)) and len(shape) != 3:
            raise CheckpointError(
                f"ONNX graph {str(self.path)!r} outputs similarity [{', '.join(map(str, shape))}]; an avsdk "
                "graph outputs maps [B, h, w]")

    def run_all(self, frame, log_mel) -> dict:
        """All outputs by name: "similarity" [B, h, w] and, if exported, "audio_embedding" [B, 512]."""
        frame, log_mel = graph_inputs(frame, log_mel, self.image_size, self.examples, self.audio_name,
                                      self.audio_shape)
        values = self.session.run(self.output_names, {"frame": frame, self.audio_name: log_mel})
        return {name: np.asarray(v, dtype=np.float32) for name, v in zip(self.output_names, values)}

    def run(self, frame, log_mel) -> np.ndarray:
        """frame [B, 3, 224, 224], log_mel [B, N, 1, 96, 64] -> similarity [B, h, w] float32."""
        return self.run_all(frame, log_mel)["similarity"]

    __call__ = run
