"""Training views: determinism, geometry shared with the segmentation, photometric parts."""
import numpy as np
import pytest
import torch
from PIL import Image

from avsdk.frames import IMAGENET_MEAN, IMAGENET_STD
from avsdk.training.augment import ViewParams, apply_view, eval_view, sample_view, train_views


def gradient_frame(size=(224, 224)):
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8))


@pytest.mark.parametrize("scheme", ["sacl", "sspl"])
def test_same_seed_same_views(scheme):
    frame = gradient_frame()
    labels = np.arange(256 * 256, dtype=np.int32).reshape(256, 256) // 4000
    a = train_views(frame, labels, np.random.default_rng(7), scheme)
    b = train_views(frame, labels, np.random.default_rng(7), scheme)
    c = train_views(frame, labels, np.random.default_rng(8), scheme)
    for (xa, la), (xb, lb) in zip(a, b):
        assert torch.equal(xa, xb) and np.array_equal(la, lb)
    assert not torch.equal(a[0][0], c[0][0])
    assert a[0][0].shape == (3, 224, 224) and a[0][1].shape == (224, 224)


def test_sspl_draws_no_photometric_change():
    p = sample_view(np.random.default_rng(0), (224, 224), "sspl")
    assert p.jitter is None and not p.grayscale and p.blur_sigma is None


def test_photometric_probabilities():
    rng = np.random.default_rng(0)
    draws = [sample_view(rng, (300, 200), "sacl") for _ in range(2000)]
    assert abs(np.mean([d.jitter is not None for d in draws]) - 0.8) < 0.03
    assert abs(np.mean([d.grayscale for d in draws]) - 0.2) < 0.03
    assert abs(np.mean([d.blur_sigma is not None for d in draws]) - 0.5) < 0.04
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.04
    assert all(0 <= d.top <= 22 and 0 <= d.left <= 22 for d in draws)  # 246 - 224


def test_geometry_follows_the_segmentation():
    # the label of each pixel is the frame's own red value: after any view, labels == red
    frame_arr = np.zeros((224, 224, 3), dtype=np.uint8)
    frame_arr[..., 0] = (np.arange(224) // 28 * 30)[None, :]  # 8 vertical stripes
    frame_arr[..., 1] = (np.arange(224) // 56 * 60)[:, None]  # 4 horizontal stripes
    frame = Image.fromarray(frame_arr)
    labels = frame_arr[..., 0].astype(np.int32) // 30 + 10 * (frame_arr[..., 1].astype(np.int32) // 60)
    for params in [ViewParams(0, 0, False), ViewParams(22, 5, True), ViewParams(11, 22, False)]:
        view, view_labels = apply_view(frame, labels, params, scheme="sspl")
        rgb = view * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        rgb = (rgb * 255).round().numpy()
        # away from stripe borders (where bicubic blends) the frame and the labels agree
        interior = (np.abs(rgb[0] / 30 - np.round(rgb[0] / 30)) < 0.05) & (np.abs(rgb[1] / 60 - np.round(rgb[1] / 60)) < 0.05)
        expected = np.round(rgb[0] / 30) + 10 * np.round(rgb[1] / 60)
        assert interior.mean() > 0.6
        assert np.array_equal(view_labels[interior], expected[interior].astype(np.int32))
    _, flipped = apply_view(frame, labels, ViewParams(0, 0, True), scheme="sspl")
    _, plain = apply_view(frame, labels, ViewParams(0, 0, False), scheme="sspl")
    assert np.array_equal(flipped[:, ::-1], plain)


def test_photometric_ops_change_pixels_not_labels():
    frame = gradient_frame()
    labels = np.tile(np.arange(224, dtype=np.int32) // 32, (224, 1))
    base = ViewParams(3, 4, False)
    strong = ViewParams(3, 4, False, jitter=((3, 0, 1, 2), 1.3, 0.7, 1.2, 0.08), grayscale=True, blur_sigma=1.5)
    x0, l0 = apply_view(frame, labels, base)
    x1, l1 = apply_view(frame, labels, strong)
    assert np.array_equal(l0, l1) and not torch.allclose(x0, x1)
    gray = x1 * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert torch.allclose(gray[0], gray[1], atol=1e-6) and torch.allclose(gray[1], gray[2], atol=1e-6)


def test_sspl_keeps_aspect_ratio_and_eval_view():
    p = sample_view(np.random.default_rng(1), (400, 200), "sspl")
    assert 0 <= p.left <= 492 - 224 and 0 <= p.top <= 22
    view, _ = apply_view(gradient_frame((400, 200)), None, p, scheme="sspl")
    assert view.shape == (3, 224, 224)
    x, labels = eval_view(gradient_frame((300, 200)), np.zeros((256, 256), np.int32))
    assert x.shape == (3, 224, 224) and labels.shape == (224, 224)


def test_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="scheme"):
        sample_view(np.random.default_rng(0), (224, 224), "simclr")
