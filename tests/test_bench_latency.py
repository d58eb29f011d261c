"""benchmarks/bench_latency.py on tiny inputs: the report's structure, its percentiles in order,
and a row (with the reason) for every usual backend that is absent. Speed is not judged here."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import numpy as np
import pytest

from conftest import load_script

pytest.importorskip("onnxruntime", reason="bench_latency's ONNX row needs the export extra")


@pytest.fixture(scope="module")
def bench_latency():
    return load_script("benchmarks/bench_latency.py")


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    """A 64x48 JPEG and a 1 s mono 22.05 kHz WAV (shorter than the clip: heard tiled)."""
    import soundfile
    from PIL import Image

    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / "tiny.jpg")
    soundfile.write(folder / "tiny.wav", (0.1 * rng.standard_normal(22050)).astype(np.float32), 22050)
    return folder / "tiny.jpg", folder / "tiny.wav"


@pytest.fixture(scope="module")
def report(bench_latency, checkpoint, tiny_inputs, tmp_path_factory):
    from avsdk.export.onnx_export import export_onnx
    from avsdk.models import load_checkpoint

    out = tmp_path_factory.mktemp("latency")
    model, _ = load_checkpoint(checkpoint)
    onnx_path = export_onnx(model, out / "edge.onnx")
    image, audio = tiny_inputs
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert bench_latency.main(["--models", str(checkpoint), str(onnx_path), "--image", str(image),
                                   "--audio", str(audio), "--runs", "3", "--warmup", "1", "--stream-frames", "3",
                                   "--stream-batch", "2", "--out", str(out / "results")]) == 0
    return json.loads((out / "results" / "latency.json").read_text()), out / "results", printed.getvalue()


def test_every_stage_has_ordered_percentiles(report, bench_latency):
    data, _, _ = report
    assert data["stages"] == list(bench_latency.STAGES)
    assert data["percentiles"] == ["p50", "p90", "p99"]
    present = [row for row in data["backends"] if row["present"]]
    assert [(r["runtime"], r["precision"], r["file"]) for r in present] == [
        ("pytorch", "fp32", "edge.pt"), ("onnxruntime", "fp32", "edge.onnx")]
    for row in present:
        assert list(row["latency_ms"]) == [*bench_latency.STAGES, "stage_sum", "end_to_end"]
        for name, stats in row["latency_ms"].items():
            assert 0.0 < stats["p50"] <= stats["p90"] <= stats["p99"], (row["name"], name, stats)
        assert row["latency_ms"]["stage_sum"]["p50"] >= row["latency_ms"]["model"]["p50"]
        assert row["stream"]["frames"] == 3 and row["stream"]["batch"] == 2
        assert 0.0 < row["stream"]["fps"] <= row["stream"]["model_fps"]


def test_absent_backends_are_listed_with_a_reason(report):
    data, _, _ = report
    absent = {(r["runtime"], r["precision"], r["target"]): r["reason"] for r in data["backends"] if not r["present"]}
    assert set(absent) == {("onnxruntime", "int8", "tensorrt"), ("onnxruntime", "int8", "cpu"),
                           ("tensorrt", "fp16", None), ("tensorrt", "int8", None)}
    assert "no such model among --models" in absent[("onnxruntime", "int8", "cpu")]
    assert "--int8-target cpu" in absent[("onnxruntime", "int8", "cpu")]
    assert all(reason for reason in absent.values())


def test_markdown_and_plot_or_its_note(report):
    data, folder, printed = report
    text = (folder / "latency.md").read_text()
    assert text in printed
    for row in data["backends"]:
        assert f"| {row['name']} |" in text
    if importlib.util.find_spec("matplotlib") is None:
        assert "no plot: matplotlib is not installed" in printed and not (folder / "latency.png").exists()
    else:
        assert (folder / "latency.png").stat().st_size > 0


@pytest.mark.parametrize("argv, flag", [(["--runs", "0"], "--runs"), (["--stream-batch", "0"], "--stream-batch"),
                                        (["--models", "MISSING"], "--models"), (["--models", "BADSUFFIX"], "--models")])
def test_bad_arguments_are_refused_first(bench_latency, tmp_path, capsys, argv, flag):
    bad_suffix = tmp_path / "model.bin"
    bad_suffix.write_bytes(b"")
    named = {"MISSING": str(tmp_path / "nowhere.onnx"), "BADSUFFIX": str(bad_suffix)}
    args = {"--models": str(bad_suffix), "--out": str(tmp_path / "out")}
    args.update(dict(zip(argv[::2], [named.get(v, v) for v in argv[1::2]])))
    if flag != "--models":
        checkpoint = tmp_path / "edge.pt"
        checkpoint.write_bytes(b"")  # refused before it is read
        args["--models"] = str(checkpoint)
    assert bench_latency.main([x for pair in args.items() for x in pair]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}: expected ")
    assert not (tmp_path / "out").exists()
