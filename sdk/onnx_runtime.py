"""Run an exported avsdk ONNX graph (fp32, fp16 or Q/DQ int8) with ONNX Runtime."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avsdk.errors import CheckpointError, bad_input, require

from .runner_inputs import graph_inputs


class OnnxRunner:
    """``OnnxRunner("model.onnx").run(frame, log_mel) -> similarity [B, h, w] float32``.

    Args:
        path: an .onnx file written by ``avsdk.export`` (inputs "frame", "log_mel").
        providers: ONNX Runtime execution providers, CPU by default.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
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
        self.session = ort.InferenceSession(str(self.path), options, providers=list(providers))
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
