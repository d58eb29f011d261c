"""The sidecar manifest written beside every exported artifact (``model.onnx`` -> ``model.onnx.json``).

Nothing is written into the artifact itself (ultralytics appends JSON to its ``.engine`` files,
which TensorRT then has to be told to skip); a plain JSON file beside it can be read on a
machine that has neither ONNX Runtime nor TensorRT, and it is what the TensorRT runtime
checks before it deserializes an engine that may come from another TensorRT version.

The manifest holds: the graph's input and output names, shapes and dtypes; the
preprocessing a caller must apply (sample rate, clip length, image size, frame transform,
ImageNet mean/std, log-mel layout); the precision; the sha256 of the artifact and of the
source checkpoint; the versions of avsdk, torch, onnx, onnxruntime and TensorRT; and, per
artifact kind, the details of its build (opset, quantization, TensorRT build settings).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from avsdk import _atomic
from avsdk.errors import InputError, bad_input
from avsdk.frames import IMAGENET_MEAN, IMAGENET_STD  # the frame normalisation every avsdk model takes
from avsdk.frames import canonical_transform

FORMAT = "avsdk.export-manifest"
VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
KINDS = ("onnx", "engine")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. ``shape`` holds ints and names of dynamic axes (``"batch"``)."""

    name: str
    shape: tuple
    dtype: str  # numpy dtype name: "float32", "float16", ...

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TensorSpec":
        return cls(name=str(data["name"]), shape=tuple(data["shape"]), dtype=str(data["dtype"]))


@dataclass(frozen=True)
class Preprocessing:
    """What turns a picture and a sound into the graph's inputs (docs/method.md, "Inputs")."""

    sample_rate: int = 16000  # of the graph's audio input (SoundNet's waveform: 22050)
    clip_seconds: float = 3.0
    examples: int = 3  # log-mel examples of 96 frames x 64 bands per clip
    audio: str = "log_mel"  # the graph's audio input: "log_mel" or "waveform" (avsdk.audio_input)
    image_size: int = 224
    transform: str = "stretch"  # avsdk.frames.frame_tensor(transform=...): "stretch" | "centre_crop"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    def audio_spec(self):
        """The avsdk.audio_input.AudioSpec this preprocessing describes."""
        from avsdk.audio_input import AudioSpec

        return AudioSpec(self.audio, int(self.sample_rate))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Preprocessing":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        if "transform" in values:  # a manifest written before the rename holds "sacl" / "sspl"
            try:
                values["transform"] = canonical_transform(values["transform"], stored=True)
            except InputError:
                pass  # kept as read: Localizer.load refuses it, naming the manifest
        return cls(**values)


@dataclass(frozen=True)
class Manifest:
    """Everything a runtime needs to know about one artifact, without opening it."""

    artifact: str  # file name, relative to the manifest's folder
    kind: str  # "onnx" | "engine"
    precision: str  # "fp32" | "fp16" | "int8"
    inputs: tuple  # of TensorSpec
    outputs: tuple  # of TensorSpec
    artifact_sha256: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    source: dict = field(default_factory=dict)  # checkpoint path + sha256, parent artifact
    versions: dict = field(default_factory=dict)  # avsdk, torch, onnx, onnxruntime, tensorrt
    build: dict = field(default_factory=dict)  # opset / quantization / TensorRT settings
    visibility: dict = field(default_factory=dict)  # avsdk.visibility.Calibration.to_json(), or {}

    def __post_init__(self):
        if self.kind not in KINDS:
            raise bad_input("kind", f"one of {KINDS}", self.kind)
        if self.precision not in PRECISIONS:
            raise bad_input("precision", f"one of {PRECISIONS}", self.precision)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "artifact": self.artifact,
            "kind": self.kind,
            "precision": self.precision,
            "artifact_sha256": self.artifact_sha256,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "preprocessing": self.preprocessing.to_json(),
            "source": dict(self.source),
            "versions": dict(self.versions),
            "build": dict(self.build),
            "visibility": dict(self.visibility),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "manifest") -> "Manifest":
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise bad_input(where, f"a JSON object with format {FORMAT!r}", got)
        if data.get("version") != VERSION:
            raise bad_input(f"{where} version", f"{VERSION}", data.get("version"))
        missing = [k for k in ("artifact", "kind", "precision", "inputs", "outputs") if k not in data]
        if missing:
            raise bad_input(where, f"keys {missing}", sorted(data), described=False)
        return cls(
            artifact=str(data["artifact"]),
            kind=str(data["kind"]),
            precision=str(data["precision"]),
            artifact_sha256=str(data.get("artifact_sha256", "")),
            inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
            preprocessing=Preprocessing.from_json(data.get("preprocessing", {})),
            source=dict(data.get("source", {})),
            versions=dict(data.get("versions", {})),
            build=dict(data.get("build", {})),
            visibility=dict(data.get("visibility") or {}),
        )

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, "inputs")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, "outputs")


def _by_name(specs: Sequence[TensorSpec], name: str, where: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise bad_input(f"manifest {where}", f"one of {[s.name for s in specs]}", name)


def manifest_path(artifact: str | os.PathLike) -> Path:
    """The manifest that belongs to ``artifact``: the same path with ``.json`` appended."""
    return Path(str(artifact) + ".json")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (an interrupted build leaves the old file)."""
    return _atomic.write_atomic(path, lambda handle: handle.write(data))


def write_manifest(manifest: Manifest, artifact: str | os.PathLike) -> Path:
    """Write ``manifest`` beside ``artifact`` (atomically) and return the manifest's path."""
    text = json.dumps(manifest.to_json(), indent=2, default=str) + "\n"
    return write_atomic(manifest_path(artifact), text.encode("utf-8"))


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read the manifest of an artifact (pass the artifact or the ``.json`` itself).

    Raises:
        InputError: the manifest is missing, is not JSON, or is not an avsdk manifest.
    """
    path = Path(path)
    json_path = path if path.suffix == ".json" else manifest_path(path)
    if not json_path.is_file():
        raise bad_input(
            "manifest", f"a manifest file beside the artifact ({json_path})", "no such file",
            described=True,
        )
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise bad_input("manifest", f"readable JSON at {json_path}", str(exc), described=True) from exc
    return Manifest.from_json(data, where=f"manifest {json_path}")


def verify_artifact(manifest: Manifest, artifact: str | os.PathLike) -> None:
    """Raise if ``artifact`` is not the file the manifest describes (its sha256 differs)."""
    actual = sha256_file(artifact)
    if manifest.artifact_sha256 and actual != manifest.artifact_sha256:
        raise bad_input(
            f"artifact {artifact}",
            f"the file its manifest describes (sha256 {manifest.artifact_sha256[:12]}...)",
            f"a file with sha256 {actual[:12]}...; it was replaced after export: re-export it",
            described=True,
        )


def tool_versions() -> dict:
    """Versions of what took part in an export; None where a package is not installed."""
    import importlib.metadata as metadata

    versions: dict = {}
    for key, dist in (
        ("avsdk", "avsdk"),
        ("torch", "torch"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnxruntime"),
        ("tensorrt", "tensorrt"),
    ):
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    if versions["avsdk"] is None:
        import avsdk

        versions["avsdk"] = avsdk.__version__
    if versions["tensorrt"] is None:
        # JetPack installs TensorRT's Python bindings from a .deb, without pip metadata.
        try:
            import tensorrt  # noqa: F401  (only its version is read)

            versions["tensorrt"] = getattr(tensorrt, "__version__", None)
        except Exception:  # ImportError, or OSError from a half-installed TensorRT
            pass
    return versions
