"""Positive-region masks against a loop restatement of pixel_contrast.

The masks are docs/method.md, "SACL loss", step 2.
"""
import numpy as np
import pytest
import torch

from avsdk.training.segmentation import binarize, nearest_resize, positive_masks, pseudo_segmentation


def masks_by_reference(sim1, sim2, seg1, seg2, retain=0.5):
    """zjsong/SACL main.py pixel_contrast, per sample with torch.unique, as the reference loops."""
    batch, h, w = sim1.shape
    seg1 = torch.nn.functional.interpolate(seg1[:, None].float(), size=(h, w), mode="nearest")[:, 0]
    seg2 = torch.nn.functional.interpolate(seg2[:, None].float(), size=(h, w), mode="nearest")[:, 0]

    def binary(sim):
        x = sim.reshape(batch, -1)
        x = x - x.min(1, keepdim=True)[0]
        x = x / x.max(1, keepdim=True)[0]
        thr = torch.sort(x, dim=-1).values[:, int(h * w * retain)]
        x[x > thr.unsqueeze(1)] = 1
        x[x < 1] = 0
        return x.view(batch, h, w)

    b1, b2 = binary(sim1), binary(sim2)
    out1, out2 = torch.zeros_like(sim1), torch.zeros_like(sim2)
    for i in range(batch):
        if seg1[i].max() == 0 or seg2[i].max() == 0:
            parts1 = parts2 = torch.ones(1, h, w)
        else:
            shared = sorted(set(seg1[i].unique().tolist()) & set(seg2[i].unique().tolist()))
            parts1 = torch.stack([(seg1[i] == k).float() for k in shared]) if shared else torch.zeros(0, h, w)
            parts2 = torch.stack([(seg2[i] == k).float() for k in shared]) if shared else torch.zeros(0, h, w)
        if len(parts1) == 0:
            out1[i], out2[i] = b1[i], b2[i]
            continue
        inter1 = b1[i] * parts1
        best = int(torch.argmax(inter1.sum((1, 2))))
        out1[i] = inter1[best]
        inter2 = b2[i] * parts2
        out2[i] = parts2[best] if inter2[best].sum() == 0 else inter2[best]
    return out1, out2


@pytest.mark.parametrize("seed", range(12))
def test_matches_reference_on_random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    batch = 6
    sim1, sim2 = torch.randn(batch, 14, 14, generator=g), torch.randn(batch, 14, 14, generator=g)
    seg1 = torch.randint(0, 4, (batch, 224, 224), generator=g)
    seg2 = torch.randint(2, 6, (batch, 224, 224), generator=g)
    seg1[0] = 0  # single segment in view 1
    seg2[1] = 7  # no id shared with view 1
    seg2[2] = seg1[2]
    for got, ref in zip(positive_masks(sim1, sim2, seg1, seg2), masks_by_reference(sim1, sim2, seg1, seg2)):
        torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_single_segment_gives_binary_map():
    sim = torch.arange(16.0).view(1, 4, 4)
    seg = torch.zeros(1, 4, 4, dtype=torch.long)
    m1, m2 = positive_masks(sim, sim, seg, torch.full((1, 4, 4), 3))
    expected = (torch.arange(16.0) > 8).float().view(1, 4, 4)  # above the value at index 8
    assert torch.equal(m1, expected) and torch.equal(m2, expected)


def test_chosen_segment_and_empty_intersection_in_view2():
    # view 1: the top half of the map is hot, segment 1 covers the top rows
    sim1 = torch.tensor([[4.0, 4, 4, 4], [3, 3, 3, 3], [0, 0, 0, 0], [0, 0, 0, 1]]).view(1, 4, 4)
    seg1 = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]]).view(1, 4, 4)
    # view 2: hot where segment 2 lies, so its binary map misses segment 1 entirely
    sim2 = sim1.flip(1)
    seg2 = seg1.clone()
    m1, m2 = positive_masks(sim1, sim2, seg1, seg2)
    assert torch.equal(m1[0], (seg1[0] == 1).float() * binarize(sim1)[0])
    assert torch.equal(m2[0], (seg2[0] == 1).float())  # the whole segment
    assert m1[0, :2].sum() == 4  # the sorted value at index 8 is the 3s: only the 4s are above


def test_shared_segments_only_and_first_on_ties():
    sim = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(1, 2, 2)
    seg1 = torch.tensor([[5, 3], [3, 5]]).view(1, 2, 2)  # each segment holds one hot pixel
    seg2 = torch.tensor([[5, 3], [9, 5]]).view(1, 2, 2)
    m1, _ = positive_masks(sim, sim, seg1, seg2)
    assert torch.equal(m1[0], torch.tensor([[0.0, 1.0], [1.0, 0.0]]) * (seg1[0] == 3))  # id 3 < 5
    seg2 = torch.tensor([[5, 9], [9, 5]]).view(1, 2, 2)  # 3 is no longer shared
    m1, _ = positive_masks(sim, sim, seg1, seg2)
    assert m1.sum() == 0  # segment 5 has no hot pixel and is the only shared one


def test_constant_map_gives_empty_binary_map():
    assert binarize(torch.ones(2, 3, 3)).sum() == 0


def test_nearest_resize_matches_interpolate():
    labels = torch.randint(0, 50, (2, 256, 256))
    want = torch.nn.functional.interpolate(labels[:, None].float(), size=(14, 14), mode="nearest")[:, 0].long()
    assert torch.equal(nearest_resize(labels, (14, 14)), want)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="sim1"):
        positive_masks(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5), torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="seg1"):
        positive_masks(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), torch.zeros(3, 4, 4), torch.zeros(2, 4, 4))


def test_felzenszwalb_on_two_halves():
    pytest.importorskip("skimage")
    frame = np.zeros((224, 224, 3), dtype=np.uint8)
    frame[:, 112:] = (250, 30, 30)
    labels = pseudo_segmentation(frame)
    assert labels.shape == (256, 256) and labels.dtype == np.int32
    assert labels[10, 10] != labels[10, 250] and len(np.unique(labels)) == 2


def test_felzenszwalb_at_a_smaller_size_keeps_the_regions():
    pytest.importorskip("skimage")
    frame = np.zeros((224, 224, 3), dtype=np.uint8)
    frame[:, 112:] = (250, 30, 30)
    small = pseudo_segmentation(frame, size=128)
    assert small.shape == (128, 128) and len(np.unique(small)) == 2
    with pytest.raises(ValueError, match="size"):
        pseudo_segmentation(frame, size=4)


def test_without_segments_the_region_is_the_binarised_map():
    # positive_region="map": no pseudo-segmentation, each view's binarised map is its region
    g = torch.Generator().manual_seed(3)
    sim1, sim2 = torch.randn(4, 14, 14, generator=g), torch.randn(4, 14, 14, generator=g)
    mask1, mask2 = positive_masks(sim1, sim2, None, None)
    assert torch.equal(mask1, binarize(sim1, 0.5))
    assert torch.equal(mask2, binarize(sim2, 0.5))
    assert int(mask1[0].sum()) == 14 * 14 - int(14 * 14 * 0.5) - 1  # strictly above position 98
    with pytest.raises(ValueError, match="seg1, seg2"):
        positive_masks(sim1, sim2, torch.zeros(4, 14, 14, dtype=torch.long), None)
