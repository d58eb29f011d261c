"""Export the inference graph to ONNX: (frame, log_mel) -> similarity [, audio_embedding].

Graph contract (shared with every runtime of avsdk):
    inputs   "frame"    [B, 3, 224, 224] float32, ImageNet-normalised (avsdk.frames.frame_tensor)
             "log_mel"  [B, N, 1, 96, 64] float32, N = 3 for a 3 s clip (avsdk.frontend)
    outputs  "similarity"       [B, h, w] float32, the raw cosine map S
                                (docs/method.md, "Similarity map")
             "audio_embedding"  [B, 512] float32, optional (``with_embedding=True``)

Precision policy:
    fp32  the model as trained.
    fp16  an FP16-typed graph (weights and convolutions in float16) for TensorRT 10/11's
          strongly typed networks, which take precision from the graph, not from builder
          flags. Inputs and outputs stay float32 so every artifact has the same interface;
          the graph casts on entry. The L2 normalisation and the cosine run in float32 (the
          kernels' reference casts there): a sum of 512 squared activations overflows
          float16's 65504.
    int8  is made from the fp32 graph by ``avsdk.export.quantize`` (Q/DQ ONNX).

Exporter: opset 17 is the default because TensorRT 8.5 (JetPack 5) parses opset <= 17. The
dynamo exporter of torch 2.13 writes opset 18; asked for 17 directly, its own down-conversion
fails on the Reduce ops of F.normalize (axes still a computed input then). So "auto" exports
with dynamo at 18 (``external_data=False``: one file; BatchNorm and SAME pads folded by its
optimizer), converts the optimized graph with ONNX's version converter, and removes the one
opset-18 attribute the converter leaves behind. Dynamo traces with fake tensors, so the fp16
graph costs no fp16 arithmetic on the CPU (the TorchScript exporter runs the model: minutes
for fp16 convolutions here). If that path fails, "auto" falls back to the TorchScript
exporter. Either way the written ``opset_import`` is checked, the graph passes the ONNX
checker, and (``verify``) ONNX Runtime must agree with PyTorch.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from avsdk.errors import AvsdkError, bad_input, require
from avsdk.frames import canonical_transform

from avsdk.manifest import Manifest, Preprocessing, TensorSpec, sha256_file, tool_versions, write_manifest

log = logging.getLogger(__name__)

INPUT_NAMES = ("frame", "log_mel")  # a log-mel model's; a waveform model's second is "waveform"
SIMILARITY = "similarity"
EMBEDDING = "audio_embedding"
BATCH_AXIS = "batch"
EXPORTERS = ("auto", "torchscript", "dynamo")
ONNX_PRECISIONS = ("fp32", "fp16")
MIN_OPSET = 17
DYNAMO_OPSET = 18  # what torch 2.13's dynamo exporter writes

# ONNX Runtime vs PyTorch on the similarity map (cosine values in [-1, 1]): fp32 differs only
# by summation order; fp16 carries ~1e-3 relative error per layer through ~20 layers.
PARITY_ATOL = {"fp32": 1e-4, "fp16": 3e-2}


class ExportError(AvsdkError):
    """An export produced something other than what was asked (opset, parity, structure)."""


class InferenceGraph(nn.Module):
    """The exported function: casts on entry for fp16, returns float32 outputs."""

    def __init__(self, model: nn.Module, with_embedding: bool = False, half: bool = False):
        super().__init__()
        self.model = model
        self.with_embedding = with_embedding
        self.half = half

    def forward(self, frame: torch.Tensor, log_mel: torch.Tensor):
        if self.half:
            frame, log_mel = frame.half(), log_mel.half()
        if not self.with_embedding:
            return self.model(frame, log_mel).float()
        from avsdk.kernels.reference import av_similarity

        if hasattr(self.model, "forward_features"):  # AVNet: after the PCM, if any
            visual, _, audio = self.model.forward_features(frame, log_mel)
        else:
            visual = self.model.visual_features(frame)  # [B, C, h, w]
            _, audio = self.model.audio_features(log_mel)  # [B, C]
        similarity = (self.model.similarity_map(visual, audio) if hasattr(self.model, "similarity_map")
                      else av_similarity(visual, audio)[0])  # [B, h, w], as the model's forward
        return similarity.float(), audio.float()


def example_inputs(batch: int = 2, examples: int = 3, image_size: int = 224, seed: int = 0,
                   audio_shape: tuple | None = None):
    """Seeded random inputs of the graph's shapes: ([B,3,S,S], [B,N,1,96,64]) float32, or
    with ``audio_shape`` (a waveform's (T,)) [B, *audio_shape] in [-1, 1] as the second."""
    generator = torch.Generator().manual_seed(seed)
    frame = torch.randn(batch, 3, image_size, image_size, generator=generator)
    if audio_shape is not None:
        return frame, torch.rand(batch, *audio_shape, generator=generator) * 2.0 - 1.0
    log_mel = torch.randn(batch, examples, 1, 96, 64, generator=generator) - 2.0
    return frame, log_mel


def _model_preprocessing(model: nn.Module, preprocessing: Preprocessing) -> Preprocessing:
    """``preprocessing`` with the audio input of ``model`` (an AVNet's audio_spec; log-mel for
    other modules) and its frame side (an AVNet's config.image_size; 224 for other modules).
    Raises InputError when an explicit preprocessing contradicts the model."""
    spec = getattr(model, "audio_spec", None)
    if spec is not None and (spec.kind, spec.sample_rate) != (preprocessing.audio, preprocessing.sample_rate):
        if (preprocessing.audio, preprocessing.sample_rate) != ("log_mel", 16000):  # not the default
            raise bad_input("preprocessing", f"audio {spec.kind!r} at {spec.sample_rate} Hz (the model's input)",
                            f"{preprocessing.audio!r} at {preprocessing.sample_rate} Hz", described=True)
        preprocessing = dataclasses.replace(preprocessing, audio=spec.kind, sample_rate=spec.sample_rate)
    side = getattr(getattr(model, "config", None), "image_size", None)
    if side is not None and side != preprocessing.image_size:
        if preprocessing.image_size != Preprocessing().image_size:  # not the default
            raise bad_input("preprocessing", f"image_size {side} (the model's)",
                            f"image_size {preprocessing.image_size}", described=True)
        preprocessing = dataclasses.replace(preprocessing, image_size=side)
    return preprocessing


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    batch_size: int = 1,
    precision: str = "fp32",
    with_embedding: bool = False,
    checkpoint: str | os.PathLike | None = None,
    preprocessing: Preprocessing | None = None,
    visibility: dict | None = None,
    exporter: str = "auto",
    verify: bool = True,
) -> Path:
    """Export ``model`` to ``path`` and write its manifest beside it (``path + ".json"``).

    Args:
        model: an AVNet (or any module with ``forward(frame, log_mel) -> [B, h, w]``; with
            ``with_embedding`` also ``visual_features`` and ``audio_features``).
        path: the .onnx file to write (one file: no external weight data).
        opset: ONNX opset, >= 17. 17 is parsed by every supported TensorRT (8.5 .. 11).
        dynamic_batch: a symbolic batch axis "batch"; else the batch is fixed to ``batch_size``.
        precision: "fp32" or "fp16" (module docstring). INT8 comes from ``quantize_int8``.
        with_embedding: also output "audio_embedding" [B, 512].
        checkpoint: the checkpoint the model came from; its sha256 goes into the manifest.
        preprocessing: recorded in the manifest; defaults to docs/method.md, "Inputs" (3 s,
            16 kHz, 224, the "stretch" frame transform). Its transform is written by its
            current name ("sacl" and "sspl" still work, with a DeprecationWarning).
        visibility: the model's visibility calibration (``Calibration.to_json()``, e.g. the
            checkpoint meta's "visibility"), recorded in the manifest for the runtimes.
        exporter: "auto" (dynamo, TorchScript if that fails), "dynamo" or "torchscript".
        verify: run the file in ONNX Runtime and compare with PyTorch (``PARITY_ATOL``).

    Returns:
        the path of the written .onnx file.

    Raises:
        InputError: a bad argument.
        ExportError: the file's opset is not ``opset``, or ONNX Runtime disagrees with PyTorch
            (NaN weights, say); ``path`` is then left as it was.
    """
    onnx = require("onnx", "export", "ONNX export")
    check_opset_argument(opset)
    if precision not in ONNX_PRECISIONS:
        hint = " (INT8 is made from the fp32 ONNX by avsdk.export.quantize_int8)" if precision == "int8" else ""
        raise bad_input("precision", f"one of {ONNX_PRECISIONS}{hint}", precision)
    if exporter not in EXPORTERS:
        raise bad_input("exporter", f"one of {EXPORTERS}", exporter)
    if not dynamic_batch and (not isinstance(batch_size, int) or batch_size < 1):
        raise bad_input("batch_size", "an int >= 1", batch_size)
    path = Path(path)
    if path.suffix != ".onnx":
        raise bad_input("path", "a file name ending in .onnx", str(path), described=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    preprocessing = _model_preprocessing(model, preprocessing or Preprocessing())
    transform = canonical_transform(preprocessing.transform, "preprocessing.transform")
    if transform != preprocessing.transform:
        preprocessing = dataclasses.replace(preprocessing, transform=transform)
    audio_spec = preprocessing.audio_spec()
    input_names = ("frame", audio_spec.kind)
    audio_item = audio_spec.item_shape(preprocessing.clip_seconds)
    # A private copy on the CPU in eval mode: the caller's model (maybe mid-training, maybe
    # on a GPU) is left exactly as it was.
    model = copy.deepcopy(model).cpu().eval()

    reference = InferenceGraph(model, with_embedding).eval()
    graph = InferenceGraph(copy.deepcopy(model).half() if precision == "fp16" else model,
                           with_embedding, half=precision == "fp16").eval()
    inputs = example_inputs(2 if dynamic_batch else batch_size, preprocessing.examples,
                            preprocessing.image_size,
                            audio_shape=audio_item if audio_spec.kind == "waveform" else None)
    output_names = [SIMILARITY] + ([EMBEDDING] if with_embedding else [])
    with torch.no_grad():
        expected = _as_tuple(reference(*inputs))
    if with_embedding:
        _check_embedding_path(model, inputs, expected[0])

    tmp = path.with_name(path.name + ".partial")
    used = "torchscript" if exporter == "torchscript" else "dynamo"
    try:
        if used == "dynamo":
            try:
                _export_dynamo(graph, inputs, tmp, opset, dynamic_batch, output_names, input_names)
            except Exception as exc:
                if exporter == "dynamo":
                    raise
                log.warning("dynamo export failed (%s); using the TorchScript exporter", exc)
                used = "torchscript"
        if used == "torchscript":
            _export_torchscript(graph, inputs, tmp, opset, dynamic_batch, output_names, input_names)
        proto = onnx.load(str(tmp))
        check_opset(proto, opset)
        batch = BATCH_AXIS if dynamic_batch else batch_size
        _declare_output_shapes(proto, {n: (batch, *t.shape[1:]) for n, t in zip(output_names, expected)})
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
        # checked before it takes the name: a graph that fails (NaN weights, say) is never out
        parity = _verify(tmp, inputs, expected, precision, path.name) if verify else None
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

    spatial = tuple(expected[0].shape[1:])
    batch = BATCH_AXIS if dynamic_batch else batch_size
    outputs = [TensorSpec(SIMILARITY, (batch, *spatial), "float32")]
    if with_embedding:
        outputs.append(TensorSpec(EMBEDDING, (batch, expected[1].shape[1]), "float32"))
    manifest = Manifest(
        artifact=path.name,
        kind="onnx",
        precision=precision,
        inputs=(
            TensorSpec("frame", (batch, 3, preprocessing.image_size, preprocessing.image_size), "float32"),
            TensorSpec(audio_spec.kind, (batch, *audio_item), "float32"),
        ),
        outputs=tuple(outputs),
        artifact_sha256=sha256_file(path),
        preprocessing=preprocessing,
        visibility=dict(visibility or {}),
        source=checkpoint_source(checkpoint),
        versions=tool_versions(),
        build={
            "opset": opset,
            "exporter": used if used == "torchscript" or opset >= 18 else "dynamo (opset 18) + onnx.version_converter",
            "dynamic_batch": dynamic_batch,
            "model_config": _model_config(model),
        },
    )
    if verify:
        manifest = _with_build(manifest, parity_max_abs_error=parity)
    write_manifest(manifest, path)
    return path


def preprocessing_from_meta(meta: dict | None) -> Preprocessing:
    """The preprocessing recorded with a checkpoint (its meta's "transform", "clip_seconds");
    the transform by its current name (a checkpoint written before the rename holds "sacl" or
    "sspl"), an InputError naming "meta transform" when it is none."""
    meta = meta or {}
    values = {k: meta[k] for k in ("transform", "clip_seconds") if k in meta}
    if "transform" in values:
        values["transform"] = canonical_transform(values["transform"], "meta transform", stored=True)
    if "clip_seconds" in values:  # log-mel examples of 96 frames
        from avsdk.audio_input import AudioSpec

        values["examples"] = AudioSpec().item_shape(float(values["clip_seconds"]))[0]
    return Preprocessing(**values)


def checkpoint_source(checkpoint: str | os.PathLike | None) -> dict:
    if checkpoint is None:
        return {"checkpoint": None, "checkpoint_sha256": None}
    checkpoint = Path(checkpoint)
    return {"checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint)}


def check_opset_argument(opset) -> None:
    """Raise InputError (naming ``opset``) unless the exporters can write ``opset``: at least
    MIN_OPSET, at most the installed onnx's newest (above it they silently write another)."""
    onnx = require("onnx", "export", "ONNX export")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise bad_input("opset", f"an int in [{MIN_OPSET}, {newest}] (TensorRT 8.5 parses <= 17; "
                        f"onnx {onnx.__version__} knows up to {newest})", opset)


def check_opset(proto, opset: int) -> None:
    """Raise ExportError unless the default-domain opset of ``proto`` is exactly ``opset``."""
    found = [entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")]
    if found != [opset]:
        raise ExportError(
            f"asked for ONNX opset {opset} but the exporter wrote opset_import {found} (checked "
            "because TensorRT 8.5, JetPack 5, parses opset <= 17 only)"
        )


def _declare_output_shapes(proto, shapes: dict) -> None:
    """Write the known output shapes into the graph. The TorchScript exporter leaves the
    map's spatial axes symbolic (and has been seen to name one of them "batch"), which
    misleads every reader of the graph; the model's map size is fixed by its trunk."""
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for size in shapes[output.name]:
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = int(size)


def _as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _check_embedding_path(model, inputs, similarity):
    """with_embedding rebuilds forward from its parts; make sure it is the same function."""
    with torch.no_grad():
        direct = model.eval()(*inputs).float()
    if direct.shape != similarity.shape or not torch.allclose(direct, similarity, atol=1e-5):
        raise ExportError(
            "with_embedding=True computes the map as av_similarity of the model's visual and "
            "audio features, but this model's forward gives another result; export without "
            "the embedding output"
        )


def _dynamic_axes(output_names, input_names=INPUT_NAMES):
    axes = {name: {0: BATCH_AXIS} for name in input_names}
    axes.update({name: {0: BATCH_AXIS} for name in output_names})
    return axes


def _export_torchscript(graph, inputs, path, opset, dynamic_batch, output_names, input_names=INPUT_NAMES):
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which cannot write 17.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            graph,
            inputs,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(input_names),
            output_names=output_names,
            dynamic_axes=_dynamic_axes(output_names, input_names) if dynamic_batch else None,
            do_constant_folding=True,
        )


def _export_dynamo(graph, inputs, path, opset, dynamic_batch, output_names, input_names=INPUT_NAMES):
    import onnx

    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim(BATCH_AXIS, min=1, max=1024)
        dynamic_shapes = {"frame": {0: batch}, "log_mel": {0: batch}}  # the forward's argument names
    chatter = io.StringIO()  # the exporter prints its progress; shown only if it fails
    # it also logs one warning per torchvision op it cannot register (avsdk has none)
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            torch.onnx.export(
                graph,
                inputs,
                str(path),
                dynamo=True,
                external_data=False,
                opset_version=max(opset, DYNAMO_OPSET),
                input_names=list(input_names),
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception:
        log.warning("dynamo exporter output:\n%s", chatter.getvalue())
        raise
    finally:
        registry_log.setLevel(level)
    if opset < DYNAMO_OPSET:
        onnx.save(downconvert(onnx.load(str(path)), opset), str(path))


def downconvert(proto, opset: int):
    """ONNX's version converter, from the dynamo exporter's opset 18 down to ``opset``.

    The converter moves the Reduce ops' axes from an input back to an attribute but keeps
    ``noop_with_empty_axes``, which those ops only gained in opset 18 (ReduceSum in 13); it
    is dropped where it holds its default 0 and refused otherwise.
    """
    import onnx

    converted = onnx.version_converter.convert_version(proto, opset)
    for node in converted.graph.node:
        if not node.op_type.startswith("Reduce") or (node.op_type == "ReduceSum" and opset >= 13):
            continue
        for attribute in list(node.attribute):
            if attribute.name == "noop_with_empty_axes":
                if attribute.i != 0:
                    raise ExportError(f"{node.name}: noop_with_empty_axes=1 has no opset-{opset} form")
                node.attribute.remove(attribute)
    return converted


def _verify(path, inputs, expected, precision, artifact: str) -> float:
    """The largest |ONNX Runtime - PyTorch| over the outputs of ``path`` (the file to be named
    ``artifact``); ExportError above PARITY_ATOL."""
    from avsdk.onnx_runtime import OnnxRunner

    runner = OnnxRunner(path)
    got = runner.run_all(*inputs)
    worst = 0.0
    for output, want in zip(runner.output_names, expected):
        err = float((torch.as_tensor(got[output]) - want).abs().max())
        worst = max(worst, err)
        if not err <= PARITY_ATOL[precision]:
            raise ExportError(
                f"{artifact}: ONNX Runtime output {output!r} differs from PyTorch by {err:.3g} "
                f"(allowed {PARITY_ATOL[precision]} for {precision})"
            )
    return worst


def _with_build(manifest: Manifest, **extra) -> Manifest:
    import dataclasses

    return dataclasses.replace(manifest, build={**manifest.build, **extra})


def _model_config(model) -> dict | None:
    import dataclasses

    config = getattr(model, "config", None)
    if config is not None and dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return None
