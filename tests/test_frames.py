"""Visual input: any picture to RGB uint8, the "stretch" / "centre_crop" frame transforms, and their errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_refusal

from avsdk.errors import InputError
from avsdk.frames import (IMAGENET_MEAN, IMAGENET_STD, TRANSFORMS, canonical_transform, frame_input, frame_tensor,
                          load_frame)


def gradient(height=30, width=50):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 5 % 256, y * 8 % 256, (x + y) % 256], axis=2).astype(np.uint8)


def normalise(pixels_uint8):
    x = pixels_uint8.astype(np.float32) / 255.0
    return torch.from_numpy(((x - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).transpose(2, 0, 1).copy())


# ---- load_frame --------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["png", "bmp"])
def test_load_frame_from_path_is_lossless(tmp_path, suffix):
    pixels = gradient()
    Image.fromarray(pixels).save(tmp_path / f"f.{suffix}")
    out = load_frame(tmp_path / f"f.{suffix}")
    assert out.dtype == np.uint8 and out.shape == (30, 50, 3)
    np.testing.assert_array_equal(out, pixels)
    np.testing.assert_array_equal(load_frame(str(tmp_path / f"f.{suffix}")), pixels)


def test_load_frame_jpeg(tmp_path):
    Image.fromarray(gradient()).save(tmp_path / "f.jpg", quality=95)
    out = load_frame(tmp_path / "f.jpg")
    assert out.shape == (30, 50, 3) and np.abs(out.astype(int) - gradient()).mean() < 8


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "PA", "CMYK", "YCbCr", "1", "I;16", "I", "F"])
def test_any_pil_mode_becomes_rgb_uint8(mode):
    base = Image.fromarray(gradient())
    if mode == "I;16":
        image = Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257))
        assert image.mode == "I;16"
        # full 16-bit range maps to full 8-bit range
        np.testing.assert_array_equal(load_frame(image)[..., 0], np.asarray(base.convert("L")))
    elif mode in ("I", "F"):
        # Pillow's own scale for I and F is 0..255 (its convert("L") reads them so): the grey
        # survives exactly (this was all black for I and nearly all white for F)
        image = base.convert("L").convert(mode)
        np.testing.assert_array_equal(load_frame(image)[..., 0], np.asarray(base.convert("L")))
    else:
        image = base.convert(mode)
    out = load_frame(image)
    assert out.dtype == np.uint8 and out.shape == (30, 50, 3)
    if mode in ("L", "LA"):
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    if mode == "RGBA":
        np.testing.assert_array_equal(out, gradient())


def test_a_16_bit_image_read_as_mode_i_keeps_its_scale():
    """Older Pillow opens 16-bit PNGs as "I": values above 255 mean the 16-bit scale."""
    grey = np.asarray(Image.fromarray(gradient()).convert("L"), np.int32) * 257
    image = Image.fromarray(grey.astype(np.int32)).convert("I")
    assert image.mode == "I" and grey.max() > 255
    np.testing.assert_array_equal(load_frame(image)[..., 0], grey // 257)


def test_exif_orientation_is_applied(tmp_path):
    """A portrait stored sideways with Orientation = 6 is read as viewers show it."""
    stored = gradient()  # [30, 50, 3], stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(tmp_path / "portrait.jpg", exif=exif, quality=100)
    frame = load_frame(tmp_path / "portrait.jpg")
    assert frame.shape == (50, 30, 3)
    expected = np.rot90(stored, k=-1)  # clockwise
    assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 3  # JPEG rounding


def test_arrays_uint8_and_float():
    pixels = gradient()
    np.testing.assert_array_equal(load_frame(pixels), pixels)
    np.testing.assert_array_equal(load_frame(pixels.astype(np.float64) / 255.0), pixels)
    np.testing.assert_array_equal(load_frame(pixels.astype(np.float32) / 255.0), pixels)
    rgba = np.concatenate([pixels, np.full((30, 50, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(load_frame(rgba), pixels)  # alpha dropped
    grey = pixels[..., 0]
    for array in (grey, grey[..., None]):
        out = load_frame(array)
        assert out.shape == (30, 50, 3) and (out == grey[..., None]).all()


def test_load_frame_returns_a_copy():
    pixels = gradient()
    out = load_frame(pixels)
    out[:] = 0
    assert pixels.any()


# ---- frame_tensor ------------------------------------------------------------------------------
def test_stretch_resizes_without_crop():
    pixels = gradient(300, 500)
    out = frame_tensor(pixels, transform="stretch")
    expected = np.asarray(Image.fromarray(pixels).resize((224, 224), Image.BICUBIC))
    assert out.dtype == torch.float32 and out.shape == (3, 224, 224)
    torch.testing.assert_close(out, normalise(expected), rtol=0, atol=1e-6)


@pytest.mark.parametrize("height, width", [(300, 500), (500, 300), (224, 224), (100, 130)])
def test_centre_crop_resizes_shorter_side_then_centre_crops(height, width):
    pixels = gradient(height, width)
    short, long = min(height, width), max(height, width)
    new_long = int(224 * long / short)
    size = (224, new_long) if width <= height else (new_long, 224)
    resized = np.asarray(Image.fromarray(pixels).resize(size, Image.BICUBIC))
    top = int(round((resized.shape[0] - 224) / 2))
    left = int(round((resized.shape[1] - 224) / 2))
    expected = resized[top : top + 224, left : left + 224]
    torch.testing.assert_close(frame_tensor(pixels, transform="centre_crop"), normalise(expected), rtol=0, atol=1e-6)


def test_normalisation_of_a_flat_frame():
    out = frame_tensor(np.full((10, 10, 3), 255, np.uint8), size=32)
    for c in range(3):
        assert torch.allclose(out[c], torch.tensor((1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]), atol=1e-6)


# ---- transform names: the old ones ("sacl", "sspl") still work ----------------------------------
@pytest.mark.parametrize("old, new", [("sacl", "stretch"), ("sspl", "centre_crop")])
def test_old_transform_names_give_the_same_tensors_with_a_deprecation_warning(old, new):
    pixels = gradient(300, 500)
    with pytest.warns(DeprecationWarning, match=f"transform '{old}' is deprecated: use '{new}'") as caught:
        by_old = frame_tensor(pixels, transform=old)
    assert caught[0].filename == __file__  # attributed to the caller
    torch.testing.assert_close(by_old, frame_tensor(pixels, transform=new), rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match=f"use '{new}'"):
        tensor, size = frame_input(pixels, old)
    np.testing.assert_array_equal(tensor, frame_tensor(pixels, transform=new).numpy())


def test_canonical_transform():
    import warnings

    assert TRANSFORMS == ("stretch", "centre_crop")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names, and old ones read from a file: no warning
        assert [canonical_transform(name) for name in TRANSFORMS] == list(TRANSFORMS)
        assert canonical_transform("sacl", stored=True) == "stretch"
        assert canonical_transform("sspl", stored=True) == "centre_crop"
    with pytest.warns(DeprecationWarning, match="--transform 'sspl' is deprecated: use 'centre_crop'"):
        assert canonical_transform("sspl", "--transform") == "centre_crop"


# ---- refusals ----------------------------------------------------------------------------------
_ANY_TRANSFORM = "'stretch' or 'centre_crop', received"

# call(folder) (folder holds "garbage.jpg", bytes that are no image), the argument its InputError
# names, a regex the message holds after "<argument>: expected "
REFUSALS = {
    "load_frame no rows": (lambda folder: load_frame(np.zeros((0, 5, 3), np.uint8)), "source", "at least 1x1"),
    "load_frame no columns": (lambda folder: load_frame(np.zeros((5, 0), np.uint8)), "source", "at least 1x1"),
    "load_frame 4-d": (lambda folder: load_frame(np.zeros((2, 5, 5, 3), np.uint8)), "source", r"\[H, W, 3\]"),
    "load_frame 1-d": (lambda folder: load_frame(np.zeros(5, np.uint8)), "source", r"\[H, W, 3\]"),
    "load_frame 2 channels": (lambda folder: load_frame(np.zeros((5, 5, 2), np.uint8)), "source", r"\[H, W, 3\]"),
    "load_frame floats above 1": (lambda folder: load_frame(np.full((5, 5, 3), 2.0)), "source",
                                  r"received floats in \[2, 2\]"),
    "load_frame NaN": (lambda folder: load_frame(np.full((5, 5, 3), np.nan)), "source", "NaN or Inf"),
    "load_frame int64": (lambda folder: load_frame(np.zeros((5, 5, 3), np.int64)), "source", "uint8 pixels or floats"),
    "load_frame 0x0 PIL image": (lambda folder: load_frame(Image.new("RGB", (0, 0))), "source", "a 0x0 image"),
    "load_frame int": (lambda folder: load_frame(12), "source", "a path, a PIL image or a numpy array"),
    "load_frame missing file": (lambda folder: load_frame("/nonexistent/frame.jpg"), "source", "no such file"),
    "load_frame not an image": (lambda folder: load_frame(folder / "garbage.jpg"), "source",
                                "an image file Pillow can read"),
    "frame_tensor transform 'center'": (lambda folder: frame_tensor(gradient(), transform="center"), "transform",
                                        f"{_ANY_TRANSFORM} 'center'$"),
    "frame_tensor transform None": (lambda folder: frame_tensor(gradient(), transform=None), "transform",
                                    f"{_ANY_TRANSFORM} None"),
    "frame_tensor transform 1": (lambda folder: frame_tensor(gradient(), transform=1), "transform",
                                 f"{_ANY_TRANSFORM} 1"),
    "frame_tensor transform tuple": (lambda folder: frame_tensor(gradient(), transform=("stretch",)), "transform",
                                     rf"{_ANY_TRANSFORM} \('stretch',\)"),
    "frame_tensor transform 'Stretch'": (lambda folder: frame_tensor(gradient(), transform="Stretch"), "transform",
                                         f"{_ANY_TRANSFORM} 'Stretch'"),
    "frame_tensor size 0": (lambda folder: frame_tensor(gradient(), size=0), "size", "a positive int, received 0"),
    "frame_tensor size -3": (lambda folder: frame_tensor(gradient(), size=-3), "size", "a positive int, received -3"),
    "frame_tensor size 2.5": (lambda folder: frame_tensor(gradient(), size=2.5), "size", "a positive int, received 2.5"),
    "frame_tensor size True": (lambda folder: frame_tensor(gradient(), size=True), "size",
                               "a positive int, received True"),
    "frame_input transform 'center'": (lambda folder: frame_input(gradient(), "center"), "transform",
                                       f"{_ANY_TRANSFORM} 'center'$"),
    "frame_input size 0": (lambda folder: frame_input(gradient(), size=0), "size", "a positive int, received 0"),
    "frame_input 12": (lambda folder: frame_input(12), "frame", "a path, a PIL image or a numpy array"),
    "frame_tensor missing file": (lambda folder: frame_tensor(folder / "missing.png"), "frame", "an existing"),
    "canonical_transform 'crop'": (lambda folder: canonical_transform("crop", "--transform"), "--transform",
                                   f"{_ANY_TRANSFORM} 'crop'$"),
    "canonical_transform stored 'crop'": (lambda folder: canonical_transform("crop", "--transform", stored=True),
                                          "--transform", f"{_ANY_TRANSFORM} 'crop'$"),
}


@pytest.mark.parametrize("call, argument, expected", REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_arguments_are_input_errors_naming_them(call, argument, expected, tmp_path):
    (tmp_path / "garbage.jpg").write_bytes(b"\x00not an image")
    with pytest.raises(InputError) as caught:
        call(tmp_path)
    assert_refusal(caught.value, argument, expected)
