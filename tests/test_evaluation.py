"""evaluate(), baselines and the table, on tiny synthetic samples written to a tmp dir."""
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_refusal

from avsdk import evaluation, metrics
from avsdk.errors import InputError


@dataclass(frozen=True)
class FakeSample:  # the fields of avsdk.datasets.Sample that evaluation reads
    id: str
    image: Path
    audio: Path
    box: tuple
    mask: Path
    distractor_mask: Path | None


def _write_mask(path, box):
    mask = np.zeros((224, 224), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask).save(path)


def _make_samples(root: Path, count: int, with_distractor: bool = True):
    import soundfile

    rng = np.random.default_rng(1)
    samples = []
    for i in range(count):
        x0, y0 = (int(v) for v in rng.integers(0, 112, size=2))
        box = (x0, y0, x0 + 64 + 4 * i, y0 + 48 + 4 * i)
        other = (0, 200, 24, 224) if y0 < 120 else (200, 0, 224, 24)
        image = np.full((224, 224, 3), 40, np.uint8)
        image[box[1]:box[3], box[0]:box[2]] = 220
        Image.fromarray(image).save(root / f"{i}.png")
        _write_mask(root / f"{i}_mask.png", box)
        _write_mask(root / f"{i}_distractor.png", other)
        tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(16000) / 16000)
        soundfile.write(root / f"{i}.wav", tone.astype(np.float32), 16000)
        samples.append(FakeSample(f"s{i}", root / f"{i}.png", root / f"{i}.wav", box,
                                  root / f"{i}_mask.png",
                                  root / f"{i}_distractor.png" if with_distractor else None))
    return samples


@pytest.fixture
def samples(tmp_path):
    return _make_samples(tmp_path, 7)


@pytest.fixture
def synthetic_inputs(monkeypatch):
    """Replace audio/frame loading by a frame that is the image itself (channel 0 in [0, 1])."""

    def fake_inputs(sample, transform="stretch", audio=None, image_size=224):
        pixels = np.asarray(Image.open(sample.image), dtype=np.float32) / 255.0
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), torch.zeros(3, 1, 96, 64)

    monkeypatch.setattr(evaluation, "sample_inputs", fake_inputs)


def oracle(frames, log_mel):
    """A 'model' whose 14x14 map is the frame brightness pooled over 16x16 patches."""
    assert frames.shape[1:] == (3, 224, 224) and log_mel.shape[1:] == (3, 1, 96, 64)
    return torch.nn.functional.avg_pool2d(frames[:, :1], 16)[:, 0]


def test_oracle_scores_perfectly_on_every_rule(samples, synthetic_inputs):
    calls = []

    def predict(frames, log_mel):
        calls.append(frames.shape[0])
        return oracle(frames, log_mel)

    report = evaluation.evaluate(predict, samples, batch_size=3, progress=False)
    assert calls == [3, 3, 1]
    assert report.n == 7 and report.ids == tuple(f"s{i}" for i in range(7))
    assert report.rules["value"].ciou_at_05 == 1.0
    assert min(report.rules["value"].cious) > 0.8
    assert report.pointing_game == 1.0
    assert report.distractor_accuracy == 1.0 and report.n_distractor == 7


def test_inverted_map_scores_badly_and_numpy_output_is_accepted(samples, synthetic_inputs):
    report = evaluation.evaluate(lambda f, a: (-oracle(f, a)).numpy(), samples, progress=False)
    assert report.rules["value"].ciou_at_05 == 0.0
    assert report.pointing_game == 0.0
    assert report.distractor_accuracy == 0.0  # the distractor sits in the (now bright) background


def test_report_matches_metrics_by_hand(samples, synthetic_inputs):
    report = evaluation.evaluate(oracle, samples[:2], progress=False)
    frame, _ = evaluation.sample_inputs(samples[1])
    raw = oracle(frame[None], torch.zeros(1, 3, 1, 96, 64))[0].numpy()
    gt = metrics.box_mask(samples[1].box)
    heat = metrics.localization_map(raw)
    for rule in metrics.RULES:
        assert report.rules[rule].cious[1] == pytest.approx(metrics.ciou(metrics.binarize(heat, rule), gt))
        assert report.rules[rule].auc == pytest.approx(metrics.auc(report.rules[rule].cious))


def test_baselines_closed_form(samples):
    reports = evaluation.evaluate_baselines(samples)
    assert set(reports) == {"all-ones", "centre box"}
    areas = [(s.box[2] - s.box[0]) * (s.box[3] - s.box[1]) for s in samples]
    for rule in metrics.RULES:  # all ones: cIoU = object area / image area
        np.testing.assert_allclose(reports["all-ones"].rules[rule].cious, np.array(areas) / 224**2)
    centre = metrics.centre_box_map()
    expected = [metrics.ciou(centre > 0, metrics.box_mask(s.box)) for s in samples]
    np.testing.assert_allclose(reports["centre box"].rules["value"].cious, expected)
    assert reports["all-ones"].distractor_accuracy == 0.5


def test_samples_without_distractor(tmp_path, synthetic_inputs):
    report = evaluation.evaluate(oracle, _make_samples(tmp_path, 2, with_distractor=False), progress=False)
    assert report.n_distractor == 0 and math.isnan(report.distractor_accuracy)
    assert json.loads(json.dumps(report.to_dict()))["distractor_accuracy"] is None


def test_report_json(samples, synthetic_inputs):
    data = json.loads(json.dumps(evaluation.evaluate(oracle, samples, progress=False).to_dict()))
    assert data["value"]["ciou_at_0.5"] == 1.0 and set(data["value"]["ciou"]) == {f"s{i}" for i in range(7)}


def _with_small_mask(sample):
    """``sample`` with a 10x10 mask where evaluation reads 224x224 ones."""
    small = sample.mask.with_name("small.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small)
    return dataclasses.replace(sample, id="x", box=(0, 0, 5, 5), mask=small, distractor_mask=None)


def _three_maps_for_two_targets(samples):
    targets = [evaluation.load_target(s) for s in samples[:2]]
    return [np.random.default_rng(i).random((14, 14)) for i in range(3)], targets


# call(samples) (seven of them), the argument its InputError names, a regex the message holds
# after "<argument>: expected "
REFUSALS = {
    "evaluate no samples": (lambda s: evaluation.evaluate(oracle, [], progress=False), "samples",
                            r"at least one sample, received \[\]"),
    "evaluate samples None": (lambda s: evaluation.evaluate(oracle, None, progress=False), "samples",
                              "a sequence of avsdk.datasets.Sample, received None"),
    "evaluate batch_size 0": (lambda s: evaluation.evaluate(oracle, s, batch_size=0, progress=False), "batch_size",
                              "a positive int, received 0"),
    "evaluate predict None": (lambda s: evaluation.evaluate(None, s, progress=False), "predict",
                              "a callable .*, received None"),
    "evaluate predict of one map for two": (
        lambda s: evaluation.evaluate(lambda f, a: torch.zeros(1, 14, 14), s, batch_size=2, progress=False),
        "predict", r"maps of shape \[2, h, w\], received ndarray of shape \(1, 14, 14\)"),
    "evaluate predict of a string": (lambda s: evaluation.evaluate(lambda f, a: "not a map", s, progress=False),
                                     "predict", r"maps of shape \[7, h, w\], received 'not a map'"),
    "evaluate transform 'sacl2'": (lambda s: evaluation.evaluate(oracle, s, transform="sacl2", progress=False),
                                   "transform", "'stretch' or 'centre_crop', received 'sacl2'"),
    "predicted_maps transform 'sacl2'": (
        lambda s: evaluation.predicted_maps(oracle, s, transform="sacl2", progress=False), "transform",
        "'stretch' or 'centre_crop', received 'sacl2'"),
    "load_target 10x10 mask": (lambda s: evaluation.load_target(_with_small_mask(s[0])), "sample.mask",
                               r"a 224x224 mask, received .*small.png of shape \(10, 10\)"),
    "report_from_maps extra maps": (lambda s: evaluation.report_from_maps(*_three_maps_for_two_targets(s)), "maps",
                                    "one map for each of the 2 targets, received 3 maps"),
}


@pytest.mark.parametrize("call, argument, expected", REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_arguments_are_input_errors_naming_them(samples, synthetic_inputs, call, argument, expected):
    with pytest.raises(InputError) as caught:
        call(samples)
    assert_refusal(caught.value, argument, expected)


def test_real_input_pipeline(samples):
    """With the real audio and frame loaders (once the input modules exist)."""
    for name in ("avsdk.audio", "avsdk.frames", "avsdk.frontend"):
        pytest.importorskip(name, reason=f"{name} has not landed yet")
    frame, log_mel = evaluation.sample_inputs(samples[0])
    assert frame.shape == (3, 224, 224) and frame.dtype == torch.float32
    assert log_mel.shape == (3, 1, 96, 64) and log_mel.dtype == torch.float32
    report = evaluation.evaluate(lambda f, a: torch.rand(f.shape[0], 14, 14), samples[:3], progress=False)
    assert report.n == 3
    # the old transform names give the same inputs as the new ones, with a DeprecationWarning
    for old, new in (("sacl", "stretch"), ("sspl", "centre_crop")):
        with pytest.warns(DeprecationWarning, match=f"transform '{old}' is deprecated: use '{new}'") as caught:
            by_old = evaluation.sample_inputs(samples[0], old)[0]
        assert caught[0].filename == __file__
        torch.testing.assert_close(by_old, evaluation.sample_inputs(samples[0], new)[0], rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match="use 'centre_crop'"):
        maps = evaluation.predicted_maps(lambda f, a: f[:, :1, ::16, ::16].mean(1), samples[:2], transform="sspl")
    np.testing.assert_array_equal(maps, evaluation.predicted_maps(lambda f, a: f[:, :1, ::16, ::16].mean(1),
                                                                  samples[:2], transform="centre_crop"))


def test_report_from_maps_takes_the_torch_maps_evaluate_takes(samples):
    """Maps that need grad, or are bfloat16, raised numpy's errors here but not in evaluate."""
    targets = [evaluation.load_target(s) for s in samples[:3]]
    maps = torch.rand(3, 14, 14, generator=torch.Generator().manual_seed(0))
    expected = evaluation.report_from_maps(maps.numpy(), targets)
    for variant in (maps.clone().requires_grad_(), maps):
        got = evaluation.report_from_maps(variant, targets)
        assert got.rules["value"].cious == expected.rules["value"].cious
    evaluation.report_from_maps(maps.to(torch.bfloat16), targets)  # converted, not refused


def test_per_image_results_keep_every_row_when_ids_repeat(samples):
    """Samples pooled from two benchmarks share ids ("test-00000"): a dict keyed by id dropped
    rows; repeats are numbered instead."""
    targets = [evaluation.load_target(s) for s in [samples[0], samples[0], samples[1]]]
    maps = [np.random.default_rng(i).random((14, 14)) for i in range(3)]
    per_image = evaluation.report_from_maps(maps, targets).to_dict()["value"]["ciou"]
    first = samples[0].id
    assert list(per_image) == [first, f"{first} (2)", samples[1].id]
