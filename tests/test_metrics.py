"""Metrics of docs/method.md, "Evaluation", on hand-made cases with known answers."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avsdk import metrics
from avsdk.errors import InputError


# ------------------------------------------------------------------ interpolation


def _torch_bilinear(raw, size, dtype=torch.float64):
    out = F.interpolate(torch.from_numpy(raw).to(dtype)[:, None], size=size, mode="bilinear",
                        align_corners=False)
    return out[:, 0].numpy()


@pytest.mark.parametrize("shape", [(14, 14), (7, 7), (3, 5), (1, 1), (224, 224), (300, 250)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("size", [(224, 224), (100, 37)], ids=lambda s: f"to{s[0]}x{s[1]}")
def test_resize_matches_torch_bilinear_half_pixel(shape, size):
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((2,) + shape).astype(np.float32)
    ours = metrics.resize_bilinear(raw, size)
    assert ours.shape == (2,) + size and ours.dtype == np.float32
    # torch in float64 is the exact oracle; its float32 kernel rounds its weights (~1e-4)
    np.testing.assert_allclose(ours, _torch_bilinear(raw, size), atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(ours, _torch_bilinear(raw, size, torch.float32), atol=3e-4)
    np.testing.assert_allclose(metrics.resize_bilinear(raw[0], size), ours[0])


def test_resize_differs_from_align_corners_true():
    raw = np.arange(16, dtype=np.float32).reshape(4, 4)
    corners = F.interpolate(torch.from_numpy(raw)[None, None], size=(8, 8), mode="bilinear",
                            align_corners=True)[0, 0].numpy()
    assert not np.allclose(metrics.resize_bilinear(raw, 8), corners)


# ------------------------------------------------------------------ normalisation, binarisation


def test_normalize_map_range_and_constant_map():
    out = metrics.normalize_map(np.array([[2.0, 4.0], [3.0, 6.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.5], [0.25, 1.0]])
    constant = metrics.normalize_map(np.full((14, 14), -0.3))
    assert constant.dtype == np.float32 and np.all(constant == 1.0)
    for rule in metrics.RULES:  # a constant map predicts the whole image under both rules
        assert metrics.binarize(metrics.localization_map(np.full((14, 14), 0.7)), rule).all()


def test_normalize_map_keeps_an_exact_half_as_the_reference_does():
    # float32 in, as the reference's OpenCV resize gives: (mid - low) / (high - low) is 0.5 in
    # float32 arithmetic (the reference's) and 0.49999997 in float64 rounded to float32
    low, mid, high = np.float32(0.016691729426383972), np.float32(0.32169172167778015), np.float32(0.6266917586326599)
    as_float64 = np.float32((np.float64(mid) - np.float64(low)) / (np.float64(high) - np.float64(low)))
    assert as_float64 < 0.5  # the case is real: float64 arithmetic would drop the pixel
    out = metrics.normalize_map(np.array([[low, mid, high]], dtype=np.float32))
    assert out.dtype == np.float32 and out[0, 1] == np.float32(0.5)
    assert metrics.binarize(out).tolist() == [[False, True, True]]


def test_value_rule_keeps_half_and_above():
    heat = np.array([[0.0, 0.49], [0.5, 1.0]], dtype=np.float32)
    assert metrics.binarize(heat, "value").tolist() == [[False, False], [True, True]]


def test_top50_rule_threshold_is_sorted_value_at_half_index():
    heat = np.linspace(0, 1, 224 * 224, dtype=np.float32)[::-1].reshape(224, 224)
    kept = metrics.binarize(heat, "top50")
    assert kept.sum() == 224 * 224 - int(224 * 224 * 0.5)
    assert heat[kept].min() == np.sort(heat, axis=None)[25088]
    # odd pixel count: 9 values, index int(4.5) = 4, so 5 are kept
    assert metrics.binarize(np.arange(9.0).reshape(3, 3), "top50").sum() == 5


# ------------------------------------------------------------------ cIoU and summaries


def test_ciou_of_known_boxes():
    gt = metrics.box_mask((0, 0, 10, 10), size=20)  # 100 px
    assert metrics.ciou(gt > 0, gt) == 1.0
    half = metrics.box_mask((0, 0, 10, 5), size=20) > 0  # 50 px inside
    assert metrics.ciou(half, gt) == 0.5
    shifted = metrics.box_mask((5, 0, 15, 10), size=20) > 0  # 50 inside, 50 outside
    assert metrics.ciou(shifted, gt) == pytest.approx(50 / 150)
    assert metrics.ciou(np.ones((20, 20), bool), gt) == pytest.approx(100 / 400)
    assert metrics.ciou(np.zeros((20, 20), bool), gt) == 0.0


def test_ciou_with_consensus_map_counts_half_weights():
    gt = np.zeros((4, 4), np.float32)
    gt[:2, :2] = 1.0
    gt[2:, 2:] = 0.5
    pred = np.zeros((4, 4), bool)
    pred[:2, :] = True  # covers the 1.0 box and 4 background pixels
    assert metrics.ciou(pred, gt) == pytest.approx(4 / (6 + 4))


def test_auc_closed_forms():
    assert metrics.auc([1.0, 1.0]) == pytest.approx(1.0)
    # cIoU 0 everywhere: y = 1 at t = 0 only -> one trapezoid of height 1 -> 0.025
    assert metrics.auc([0.0]) == pytest.approx(0.025)
    # cIoU 0.5: y = 1 for t <= 0.5 (11 points) -> 0.5 + 0.025
    assert metrics.auc([0.5]) == pytest.approx(0.525)
    assert metrics.auc([0.0, 1.0]) == pytest.approx((0.025 + 1.0) / 2)
    assert metrics.ciou_at([0.49, 0.5, 0.9, 0.1]) == 0.5


def test_auc_uses_reference_thresholds_0_05_times_i():
    # 0.05 * 3 = 0.15000000000000002 > 0.15: a cIoU of exactly 0.15 does not reach t3.
    curve = metrics.success_curve([0.15])
    assert curve[2] == 1.0 and curve[3] == 0.0
    assert len(metrics.AUC_THRESHOLDS) == 21 and metrics.AUC_THRESHOLDS[-1] == 1.0
    assert metrics.success_curve([1.0])[-1] == 1.0


# ------------------------------------------------------------------ peak, pointing, distractor


def test_peak_and_pointing_game():
    heat = np.zeros((10, 10))
    heat[7, 2] = 1.0
    assert metrics.peak(heat) == (2, 7)
    assert metrics.pointing_hit(heat, (2, 7, 3, 8))
    assert not metrics.pointing_hit(heat, (3, 7, 5, 9))  # end-exclusive
    assert metrics.peak(np.ones((224, 224))) in {(111, 111), (111, 112), (112, 111), (112, 112)}
    assert metrics.pointing_hit(metrics.centre_box_map(), metrics.CENTRE_BOX)


def test_distractor_score():
    heat = np.zeros((10, 10))
    heat[1, 1] = 0.9
    heat[8, 8] = 0.4
    sound = metrics.box_mask((0, 0, 3, 3), 10)
    other = metrics.box_mask((7, 7, 10, 10), 10)
    assert metrics.distractor_score(heat, sound, other) == 1.0
    assert metrics.distractor_score(heat, other, sound) == 0.0
    assert metrics.distractor_score(np.ones((10, 10)), sound, other) == 0.5


# ------------------------------------------------------------------ ground truth files

FLICKR_TWO = """<?xml version="1.0"?>
<annotation>
  <filename>1.jpg</filename>
  <object><bbox><name>1</name><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>128</ymax></bbox></object>
  <object><bbox><name>2</name><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>64</ymax></bbox></object>
</annotation>"""


def test_flickr_xml_consensus(tmp_path):
    path = tmp_path / "1.xml"
    path.write_text(FLICKR_TWO)
    gt = metrics.flickr_ground_truth(path)
    assert gt.shape == (224, 224) and gt.dtype == np.float32
    # 128 -> int(224*128/256) = 112, 64 -> 56
    assert gt[0, 0] == 1.0 and gt[55, 111] == 1.0  # both annotators
    assert gt[56, 0] == 0.5 and gt[111, 111] == 0.5  # one annotator
    assert gt[112, 0] == 0.0 and gt[0, 112] == 0.0
    assert gt.sum() == 112 * 56 * 1.0 + 112 * 56 * 0.5
    np.testing.assert_array_equal(metrics.flickr_ground_truth(FLICKR_TWO), gt)


def test_flickr_three_annotators_clip_to_one_and_scaling_truncates():
    box = "<object><bbox><n/><xmin>{}</xmin><ymin>10</ymin><xmax>100</xmax><ymax>255</ymax></bbox></object>"
    xml = "<annotation>" + "".join(box.format(v) for v in (3, 3, 3)) + "</annotation>"
    gt = metrics.flickr_ground_truth(xml)
    assert gt.max() == 1.0
    # 3 -> int(2.625) = 2; 10 -> 8; 100 -> 87; 255 -> 223
    ys, xs = np.nonzero(gt)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (2, 8, 86, 222)


def test_vggss_json_union_and_corrupt_negative(tmp_path):
    entries = [
        {"file": "clip_a", "class": "dog", "bbox": [[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]},
        {"file": "clip_b", "class": "cat", "bbox": [[-0.1, 0.5, 0.25, 1.0]]},
    ]
    path = tmp_path / "vggss.json"
    path.write_text(json.dumps(entries))
    boxes = metrics.load_vggss_annotations(path)
    assert set(boxes) == {"clip_a", "clip_b"}
    union = metrics.vggss_ground_truth(boxes["clip_a"])
    assert set(np.unique(union)) == {0.0, 1.0}
    assert union.sum() == 112 * 112 * 2 - 56 * 56
    corrupt = metrics.vggss_ground_truth(boxes["clip_b"])  # -0.1 -> 0, not a wrap-around
    ys, xs = np.nonzero(corrupt)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (0, 112, 55, 223)


# ------------------------------------------------------------------ baselines and end to end


def test_baselines():
    assert metrics.all_ones_map().sum() == 224 * 224
    centre = metrics.centre_box_map()
    assert centre.sum() == 160 * 160 > 224 * 224 / 2
    for rule in metrics.RULES:  # both rules keep exactly the centre box
        np.testing.assert_array_equal(metrics.binarize(metrics.localization_map(centre), rule), centre > 0)


def test_end_to_end_perfect_and_inverted_map():
    gt = metrics.box_mask((0, 0, 112, 224))  # left half
    raw = np.zeros((14, 14), np.float32)
    raw[:, :7] = 1.0
    heat = metrics.localization_map(raw)
    assert metrics.ciou(metrics.binarize(heat, "value"), gt) == 1.0
    assert metrics.ciou(metrics.binarize(1 - heat, "value"), gt) == 0.0


# ------------------------------------------------------------------ refusals


def _nan_at_3_3():
    heat = np.zeros((10, 10))
    heat[3, 3] = np.nan
    return heat


# call, how its InputError's message begins: the argument it names, then what was expected
REFUSALS = {
    "resize_bilinear rank 1": (lambda: metrics.resize_bilinear(np.zeros(5)), "maps: expected"),
    "normalize_map beyond float32": (lambda: metrics.normalize_map(np.array([[0.0, 1e300]])), "heatmap: expected"),
    "normalize_map NaN": (lambda: metrics.normalize_map(np.array([[0.0, np.nan]])), "heatmap: expected"),
    "binarize rule": (lambda: metrics.binarize(np.arange(9.0).reshape(3, 3), "top30"), "rule: expected"),
    "ciou empty ground truth": (lambda: metrics.ciou(np.ones((4, 4)), np.zeros((4, 4))), "ground_truth: expected"),
    "ciou shape mismatch": (lambda: metrics.ciou(np.ones((4, 5)), np.ones((4, 4))), "prediction: expected"),
    "auc empty": (lambda: metrics.auc([]), "cious: expected"),
    # numpy raised "attempt to get argmin of an empty sequence"
    "peak NaN": (lambda: metrics.peak(_nan_at_3_3()),
                 "heatmap: expected finite values, received 1 non-finite of 100"),
    "distractor_score empty distractor": (
        lambda: metrics.distractor_score(np.eye(10), metrics.box_mask((0, 0, 3, 3), 10), np.zeros((10, 10))),
        "distractor: expected"),
    "flickr_ground_truth malformed": (
        lambda: metrics.flickr_ground_truth("<annotation><object><bbox><a/><b>1</b></bbox></object></annotation>"),
        "source: expected"),
    "flickr_ground_truth missing": (lambda: metrics.flickr_ground_truth("/nonexistent/missing.xml"),
                                    "source: expected"),
    "load_vggss_annotations missing": (lambda: metrics.load_vggss_annotations("/nonexistent/missing.json"),
                                       "path: expected"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_bad_arguments_are_input_errors_naming_them(case):
    call, begins = REFUSALS[case]
    with pytest.raises(InputError) as caught:
        call()
    assert str(caught.value).startswith(begins), str(caught.value)
    assert caught.value.argument == begins.split(":")[0]
