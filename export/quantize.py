"""Static post-training INT8 quantization to an explicitly quantized (Q/DQ) ONNX.

The quantizer is ONNX Runtime's (``onnxruntime.quantization``); this module only feeds it:
a calibration set drawn from the benchmark's train/val splits (never test), and the settings
of the runtime that will run the file (``target``). Target "tensorrt" (the default): the
settings TensorRT's explicit quantization expects:
  - QDQ format (QuantizeLinear/DequantizeLinear pairs), the form TensorRT 10 and 11 build from;
  - int8 weights, symmetric, per output channel (the ``axis`` attribute on the weights' DQ);
  - int8 activations, symmetric (zero point 0: TensorRT supports no other);
  - biases left in float (``QuantizeBias: False``): TensorRT fuses them itself;
  - only Conv, Gemm and MatMul-with-constant-weight nodes are quantized. The cosine map
    (L2 norms, division, the audio-visual dot product) stays float: its inputs are unit
    vectors whose products a single int8 scale would flatten.
The same file runs in ONNX Runtime on the CPU, which is how it is judged here (cIoU, latency),
but hardly faster than fp32 there: ONNX Runtime fuses only DQ -> Conv -> Q into an integer
convolution, and where a Clip (ReLU6) or Relu sits between a Conv and its Q (symmetric int8
cannot clamp at 0, so they stay) it runs a float Conv with Dequantize, Clip and Quantize passes.

Target "cpu": ONNX Runtime's recommendation for its x86-64 CPU kernels (the ``quantize_static``
docstring, "Choosing parameters for CPU inference"; for ARM it advises int8 symmetric
activations instead, the last row of the table below, not measured on ARM here):
  - QDQ format (ONNX Runtime fuses the groups into QLinearConv, QGemm, QLinearAdd, ...);
  - uint8 activations, asymmetric, ranges calibrated asymmetrically: a Relu or Clip then
    becomes the range of its Q and is removed, so every Conv fuses;
  - int8 weights, symmetric, per output channel; int32 biases (QLinearConv's);
  - reduce_range off: with VNNI (avx512_vnni / avx_vnni) u8 x s8 products do not saturate.
    On an x86 CPU without VNNI, ONNX Runtime advises 7-bit weights instead;
  - Conv, Gemm, MatMul, Add, Relu, Clip and MaxPool quantized: both trunks run in uint8 end to
    end; the cosine map stays float as above.

Variants, on the trained edge model (384, SoundNet waveform), 256 calibration samples
(percentile unless said), the 300 test samples: drop against fp32 (negative: better) and IoU
of the binarised maps with fp32's; speed-up: fp32 p50 / p50, batch 1, ONNX Runtime 1.32, one
thread, 30 interleaved calls on a 2-core AVX512-VNNI EPYC under load (fp32 60-64 ms):

    variant                                   speed-up  AUC drop  pointing drop  cIoU@0.5 drop  map IoU
    tensorrt target (int8 symmetric)            1.24x    -0.015      -0.040         +0.020       0.68
    cpu target (QDQ u8/s8, stem float)          2.38x    -0.002      -0.030          0.000       0.86
      stem convolution quantized too            2.30x    -0.003      -0.050         +0.003       0.85
      QOperator format                          2.37x    (the same ranges: the same maps)
      per-tensor weights                        2.51x    -0.014      -0.050         +0.023       0.62
      reduce_range (7-bit weights)              2.52x    -0.004      -0.030         +0.017       0.79
      minmax ranges                             2.40x    -0.002      -0.020         +0.010       0.86
      only Conv/Gemm quantized                  1.91x    -0.007      -0.027         +0.027       0.69
    int8 symmetric activations, trunk ops       1.25x    -0.003      -0.037         +0.010       0.83

Defaults, measured on the edge model (pretrained trunk) over 60 benchmark test frames, with a
contrastful stand-in map (cosine to the centre feature), INT8 vs FP32 agreement of the
binarised heatmaps (mean IoU / min IoU): percentile + stem in float, 256 calibration samples
0.925 / 0.80; minmax 0.905 / 0.77; stem quantized too 0.865 / 0.67 (64 samples). ONNX
Runtime 1.32's entropy calibrator gave exactly the minmax ranges here.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from avsdk.errors import bad_input, require

from .calibration import CALIBRATION_PASS_SAMPLES, batched, batches_per_pass
from .manifest import read_manifest, sha256_file, tool_versions, write_manifest

METHODS = ("minmax", "entropy", "percentile")
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")  # the TensorRT target's
TARGETS = ("tensorrt", "cpu")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What one runtime's int8 kernels want from the Q/DQ graph (module docstring)."""

    ops: tuple  # node types quantized
    unsigned_activations: bool  # uint8 asymmetric (Relu/Clip folded into ranges), else int8 symmetric
    quantize_bias: bool  # int32 biases (ONNX Runtime's QLinearConv), else float (TensorRT fuses them)

    def describe(self) -> dict:
        """The manifest's account of the recipe."""
        return {
            "weights": "int8 symmetric per-channel",
            "activations": "uint8 asymmetric per-tensor" if self.unsigned_activations else "int8 symmetric per-tensor",
            "quantize_bias": self.quantize_bias,
            "quantized_ops": list(self.ops),
        }


RECIPES = {
    "tensorrt": Recipe(QUANTIZED_OPS, unsigned_activations=False, quantize_bias=False),
    "cpu": Recipe(QUANTIZED_OPS + ("Add", "Relu", "Clip", "MaxPool"), unsigned_activations=True, quantize_bias=True),
}
# ONNX Runtime's calibrators keep every calibrated activation of a pass in memory (the edge
# model: ~60-80 MB a sample), then fold the pass into running ranges or histograms: the
# calibration runs in passes of at most this many samples, so memory does not grow with
def _reader(batches: Sequence[dict]):
    """ONNX Runtime's calibration reader over ``batches``. Its ``bar``, when set (a tqdm),
    counts the samples served: the one sign of life of a calibration that runs for minutes."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = list(batches)
            self._at, self._end = 0, len(self._items)
            self.bar = None

        def get_next(self):
            if self._at >= self._end:
                return None
            self._at += 1
            item = self._items[self._at - 1]
            if self.bar is not None:
                self.bar.update(len(item["frame"]))
            return item

        def __len__(self):
            return len(self._items)

        def rewind(self):
            self._at, self._end = 0, len(self._items)

        def set_range(self, start_index: int, end_index: int):  # one calibration pass
            self._at, self._end = start_index, min(end_index, len(self._items))

    return Reader()


def quantize_int8(
    onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: Iterable[dict],
    *,
    method: str = "percentile",
    batch_size: int = 8,
    percentile: float = 99.999,
    exclude_nodes: Sequence[str] = (),
    keep_stem_float: bool = True,
    pass_samples: int = CALIBRATION_PASS_SAMPLES,
    progress: bool = True,
    target: str = "tensorrt",
) -> Path:
    """Quantize an fp32 avsdk ONNX to a Q/DQ int8 ONNX and write its manifest.

    Args:
        onnx_path: the fp32 .onnx written by ``export_onnx`` (with its manifest).
        out_path: the int8 .onnx to write.
        calibration: graph input dicts {"frame": [b,3,224,224], "log_mel": [b,N,1,96,64]} (or
            "waveform" [b,T] for a waveform graph)
            (e.g. ``calibration.sample_feed`` over ``calibration.calibration_samples``); re-batched to ``batch_size``.
        method: "minmax", "entropy" or "percentile" (activation ranges).
        percentile: the percentile for method "percentile".
        exclude_nodes: node names to keep in float.
        keep_stem_float: keep the first convolution of the frame in float. It is the most
            sensitive layer of the edge model (its 3 input channels carry the whole image;
            measured on benchmark images: map correlation with fp32 0.82 -> 0.92 with it
            in float) and costs ~3% of the trunk's MACs.
        pass_samples: calibrate in passes of at most this many samples (memory grows with
            it, not with the calibration set); ranges and histograms carry over between
            passes.
        progress: show a progress bar of the samples calibrated (minutes at 512 samples).
        target: the runtime the file is for (module docstring): "tensorrt" (int8 symmetric
            activations, TensorRT's explicit quantization) or "cpu" (ONNX Runtime's CPU
            kernels: uint8 activations, every trunk op quantized). Recorded in the manifest
            (``build["target"]``); TensorRT refuses a "cpu" file.

    Returns:
        ``out_path``.

    Raises:
        InputError: bad arguments, an input that is not fp32, or no calibration data.
    """
    require("onnx", "export", "INT8 quantization")
    require("onnxruntime", "export", "INT8 quantization")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from tqdm import tqdm

    if method not in METHODS:
        raise bad_input("method", f"one of {METHODS}", method)
    if target not in TARGETS:
        raise bad_input("target", f"one of {TARGETS}", target)
    recipe = RECIPES[target]
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    source = read_manifest(onnx_path)
    if source.precision != "fp32":
        raise bad_input("onnx_path", "an fp32 avsdk ONNX to quantize", f"a {source.precision} one", described=True)
    items = list(calibration)
    if not items:
        raise bad_input("calibration", "at least one input dict", "an empty iterable", described=True)
    samples = sum(len(item["frame"]) for item in items)
    # ONNX Runtime's histogram calibrators (entropy, percentile) stack the batches, so they
    # must all have one size: the largest divisor of the sample count <= batch_size.
    if source.build.get("dynamic_batch", True):
        even = max(d for d in range(1, max(1, batch_size) + 1) if samples % d == 0)
    else:
        even = int(source.inputs[0].shape[0])
        if samples % even:
            raise bad_input("calibration", f"a multiple of {onnx_path.name}'s static batch {even}",
                            f"{samples} samples", described=True)
    if isinstance(pass_samples, bool) or not isinstance(pass_samples, int) or pass_samples < 1:
        raise bad_input("pass_samples", "an int >= 1", pass_samples)
    batches = list(batched(_split_rows(items), even))
    per_pass = batches_per_pass(len(batches), even, pass_samples)

    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    extra = {
        "ActivationSymmetric": not recipe.unsigned_activations,
        "WeightSymmetric": True,
        "QuantizeBias": recipe.quantize_bias,
        "CalibPercentile": percentile,
        # ORT's name for calibrating in passes; it serves every method (the histogram
        # calibrators extend their bins pass after pass)
        "CalibStridedMinMax": per_pass,
    }
    if recipe.unsigned_activations:
        # Percentile ranges are symmetric by default ([-t, t] from |x|): a Relu's output would
        # get zero point 128 and, the Relu being removed, let negatives through.
        extra["CalibTensorRangeSymmetric"] = False
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Work beside the output so the final os.replace is atomic (same file system).
    with tempfile.TemporaryDirectory(prefix=".avsdk-quant-", dir=out_path.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        # Symbolic shape inference fails on the dynamic-batch graph (Expand from
        # F.normalize); ONNX's own shape inference is enough for the quantizer.
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        staged = Path(work) / "int8.onnx"
        float_nodes = list(exclude_nodes) + _matmuls_without_weights(prepared)
        if keep_stem_float:
            float_nodes += _stem_convs(prepared)
        reader = _reader(batches)
        with tqdm(total=samples, desc="calibrating", unit="sample", disable=not progress) as bar:
            reader.bar = bar
            quantize_static(
                model_input=str(prepared),
                model_output=str(staged),
                calibration_data_reader=reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(recipe.ops),
                nodes_to_exclude=list(float_nodes),  # copied: ORT may edit the list it is given
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QUInt8 if recipe.unsigned_activations else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calibrate,
                extra_options=extra,
            )
        _drop_unused_domains(staged)
        os.replace(staged, out_path)

    manifest = dataclasses.replace(
        source,
        artifact=out_path.name,
        precision="int8",
        artifact_sha256=sha256_file(out_path),
        versions=tool_versions(),
        source={**source.source, "fp32_onnx": onnx_path.name, "fp32_onnx_sha256": source.artifact_sha256},
        build={
            **{k: v for k, v in source.build.items() if k != "parity_max_abs_error"},
            "quantizer": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "target": target,
            **recipe.describe(),
            "reduce_range": False,
            "calibration_method": method,
            "calibration_samples": samples,
            "float_nodes": float_nodes,
            **({"calibration_percentile": percentile} if method == "percentile" else {}),
        },
    )
    write_manifest(manifest, out_path)
    return out_path


def _drop_unused_domains(path: Path) -> None:
    """ONNX Runtime's pre-processing declares its own operator domains (com.microsoft, ...)
    even where no node uses them; keep only the domains the graph uses, so that every
    consumer (TensorRT's parser in particular) sees a plain opset-17 model."""
    import onnx

    model = onnx.load(str(path))
    used = {node.domain for node in model.graph.node} | {""}
    keep = [entry for entry in model.opset_import if entry.domain in used or entry.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    onnx.save(model, str(path))


def _split_rows(items: Sequence[dict]) -> Iterator[dict]:
    """Input dicts of any batch size -> one dict per sample (batch 1)."""
    for item in items:
        for row in range(len(item["frame"])):
            yield {k: v[row : row + 1] for k, v in item.items()}


def _stem_convs(path: Path) -> list:
    """The Conv node(s) that read the graph input "frame" (directly, or through a Pad, a cast
    or the fixed per-channel affine of a trunk's own input normalisation), and the nodes on
    the way (kept float with them: quantizing the affine's output would undo the point)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    readers, chain = {"frame"}, []
    for node in model.graph.node:  # topological order: follow them up to the first Conv
        if node.op_type in ("Pad", "Cast", "Identity", "Mul", "Add") and readers & set(node.input):
            readers |= set(node.output)
            chain.append(node.name)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv" and readers & set(n.input)]
    return chain + convs if convs else []


def _matmuls_without_weights(path: Path) -> list:
    """MatMul nodes whose operands are both activations (e.g. an attention-style product)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [
        n.name for n in model.graph.node
        if n.op_type == "MatMul" and not any(i in constants for i in n.input)
    ]


def qdq_summary(path: str | os.PathLike) -> dict:
    """Count the Q/DQ structure of an ONNX file (for tests and reports)."""
    import onnx

    model = onnx.load(str(path))
    nodes = model.graph.node
    init = {t.name: t for t in model.graph.initializer}
    constant_dq = [n for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] in init]
    int32 = onnx.TensorProto.INT32
    weight_dq = [n for n in constant_dq if init[n.input[0]].data_type != int32]  # biases are int32
    return {
        "quantize": sum(n.op_type == "QuantizeLinear" for n in nodes),
        "dequantize": sum(n.op_type == "DequantizeLinear" for n in nodes),
        "weight_dequantize": len(weight_dq),
        "per_channel_weights": sum(
            any(a.name == "axis" for a in n.attribute) and init[n.input[1]].dims not in ([], [1])
            for n in weight_dq
        ),
        "int8_weights": sum(init[n.input[0]].data_type == onnx.TensorProto.INT8 for n in weight_dq),
        "int32_biases": len(constant_dq) - len(weight_dq),
        "zero_points_nonzero": sum(
            np.any(onnx.numpy_helper.to_array(init[n.input[2]]) != 0)
            for n in nodes
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in init
        ),
    }
