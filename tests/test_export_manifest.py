"""The sidecar manifest: round trip, atomic write, validation, artifact hash check."""
from __future__ import annotations

import json

import pytest

from conftest import assert_refusal

from avsdk.errors import InputError
from avsdk.export.manifest import (
    Manifest,
    Preprocessing,
    TensorSpec,
    manifest_path,
    read_manifest,
    sha256_file,
    tool_versions,
    verify_artifact,
    write_manifest,
)


def _manifest(artifact, **changes) -> Manifest:
    values = dict(
        artifact=artifact.name,
        kind="onnx",
        precision="int8",
        inputs=(TensorSpec("frame", ("batch", 3, 224, 224), "float32"),
                TensorSpec("log_mel", ("batch", 3, 1, 96, 64), "float32")),
        outputs=(TensorSpec("similarity", ("batch", 14, 14), "float32"),),
        artifact_sha256=sha256_file(artifact),
        preprocessing=Preprocessing(transform="centre_crop"),
        source={"checkpoint": "best.pt", "checkpoint_sha256": "ab" * 32},
        versions=tool_versions(),
        build={"opset": 17, "calibration_method": "percentile", "float_nodes": ["stem"]},
    )
    values.update(changes)
    return Manifest(**values)


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "edge.int8.onnx"
    path.write_bytes(b"not really onnx, but bytes to hash")
    return path


def test_round_trip(artifact):
    manifest = _manifest(artifact)
    written = write_manifest(manifest, artifact)
    assert written == manifest_path(artifact) == artifact.with_name("edge.int8.onnx.json")
    assert read_manifest(artifact) == manifest
    assert read_manifest(written) == manifest  # the .json itself works too


def test_json_holds_what_a_device_needs(artifact):
    write_manifest(_manifest(artifact), artifact)
    data = json.loads(manifest_path(artifact).read_text())
    assert data["format"] == "avsdk.export-manifest" and data["version"] == 1
    assert data["inputs"][0] == {"name": "frame", "shape": ["batch", 3, 224, 224], "dtype": "float32"}
    pre = data["preprocessing"]
    assert (pre["sample_rate"], pre["clip_seconds"], pre["image_size"]) == (16000, 3.0, 224)
    assert pre["mean"] == [0.485, 0.456, 0.406] and pre["std"] == [0.229, 0.224, 0.225]
    assert pre["transform"] == "centre_crop"
    assert set(data["versions"]) == {"avsdk", "torch", "onnx", "onnxruntime", "tensorrt"}
    assert data["source"]["checkpoint_sha256"] == "ab" * 32


@pytest.mark.parametrize("old, new", [("sacl", "stretch"), ("sspl", "centre_crop")])
def test_a_manifest_written_with_an_old_transform_name_reads_with_the_new_one(artifact, old, new):
    import warnings

    assert Preprocessing().transform == "stretch"
    data = _manifest(artifact).to_json()
    data["preprocessing"]["transform"] = old  # as avsdk wrote it before the rename
    manifest_path(artifact).write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read from a file: no warning
        manifest = read_manifest(artifact)
    assert manifest.preprocessing.transform == new
    data["preprocessing"]["transform"] = "crop"  # kept as read: Localizer.load refuses it, naming the manifest
    manifest_path(artifact).write_text(json.dumps(data))
    assert read_manifest(artifact).preprocessing.transform == "crop"


def test_write_is_atomic_and_leaves_no_temporary(artifact):
    write_manifest(_manifest(artifact), artifact)
    write_manifest(_manifest(artifact, precision="fp32"), artifact)
    assert read_manifest(artifact).precision == "fp32"
    assert sorted(p.name for p in artifact.parent.iterdir()) == ["edge.int8.onnx", "edge.int8.onnx.json"]


def _beside(artifact, text: str):
    """``artifact``, with ``text`` written as its manifest."""
    manifest_path(artifact).write_text(text)
    return artifact


def _replaced(artifact) -> Manifest:
    """The manifest of ``artifact``, whose file is then overwritten by another model."""
    manifest = _manifest(artifact)
    artifact.write_bytes(b"another model")
    return manifest


# call(artifact), the argument its InputError names ({manifest}, {artifact}: the paths), a regex
# the message holds after "<argument>: expected "
REFUSALS = {
    "read_manifest missing": (lambda a: read_manifest(a), "manifest", "a manifest file beside the artifact"),
    "read_manifest not JSON": (lambda a: read_manifest(_beside(a, "{ not json")), "manifest", "readable JSON at"),
    "read_manifest foreign format": (
        lambda a: read_manifest(_beside(a, json.dumps({"format": "something else"}))), "manifest {manifest}",
        "a JSON object with format 'avsdk.export-manifest', received 'something else'"),
    "read_manifest version 99": (
        lambda a: read_manifest(_beside(a, json.dumps({"format": "avsdk.export-manifest", "version": 99}))),
        "manifest {manifest} version", "1, received 99$"),
    "Manifest precision int4": (lambda a: _manifest(a, precision="int4"), "precision", "one of .*, received 'int4'"),
    "Manifest kind tflite": (lambda a: _manifest(a, kind="tflite"), "kind", "one of .*, received 'tflite'"),
    "Manifest.output unknown name": (lambda a: _manifest(a).output("audio_embedding"), "manifest outputs",
                                     r"one of \['similarity'\], received 'audio_embedding'"),
    "verify_artifact replaced file": (lambda a: verify_artifact(_replaced(a), a), "artifact {artifact}",
                                      "the file its manifest describes .*: re-export it"),
}


@pytest.mark.parametrize("call, argument, expected", REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_arguments_are_input_errors_naming_them(artifact, call, argument, expected):
    argument = argument.format(manifest=manifest_path(artifact), artifact=artifact)
    with pytest.raises(InputError) as caught:
        call(artifact)
    assert_refusal(caught.value, argument, expected)


def test_an_unchanged_artifact_is_verified(artifact):
    verify_artifact(_manifest(artifact), artifact)


def test_lookup_by_name(artifact):
    manifest = _manifest(artifact)
    assert manifest.input("log_mel").shape == ("batch", 3, 1, 96, 64)
    assert manifest.output("similarity").dtype == "float32"
