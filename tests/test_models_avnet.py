"""AVNet, ModelConfig and build_model: shapes, freezing, parameter counts, input errors."""
import warnings

import pytest
import torch

from avsdk.errors import InputError
from avsdk.kernels.reference import av_similarity
from avsdk.models import AVNet, ModelConfig, build_model
from avsdk.models.efficientnet import EfficientNetLite0
from avsdk.models.resnet import ResNet18
from avsdk.models.small_cnn import SmallAudioCNN
from avsdk.models.vgg import VGG16Conv5
from avsdk.models.vggish import VGGish


def _count(module, trainable=False):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


@pytest.mark.parametrize("trunk, size, out", [
    (ResNet18, 64, (512, 4, 4)),
    (VGG16Conv5, 64, (512, 4, 4)),
    (EfficientNetLite0, 64, (1280, 4, 4)),
    (EfficientNetLite0, 224, (1280, 14, 14)),
], ids=["resnet18-64", "vgg16-64", "efflite0-64", "efflite0-224"])
def test_trunk_shapes(trunk, size, out):
    net = trunk().eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, size, size)).shape == (2, *out)


def test_resnet18_is_stride_16_at_224():
    with torch.no_grad():
        assert ResNet18().eval()(torch.randn(1, 3, 224, 224)).shape == (1, 512, 14, 14)


@pytest.mark.parametrize("net", [VGGish, SmallAudioCNN], ids=["vggish", "small_cnn"])
def test_audio_net_shapes(net):
    emb, a = net(512).eval()(torch.randn(5, 1, 96, 64))
    assert a.shape == (5, 512)
    assert (emb is None) if net is SmallAudioCNN else emb.shape == (5, 128)


def test_parameter_counts_match_method_sizes():
    sacl = AVNet(ModelConfig.sacl())
    assert _count(sacl) == 83_646_400  # docs/method.md, "Sizes": 83.6 M
    vggish = VGGish()
    assert sum(p.numel() for m in (vggish.features, vggish.embeddings) for p in m.parameters()) \
        == 72_141_184  # 72.1 M
    assert _count(vggish.embeddings) == 67_641_472  # 67.6 M in the FC layers
    edge = AVNet(ModelConfig())
    assert _count(edge.audio_net) < 1_000_000  # small CNN: < 1/70 of VGGish


def test_edge_model_forward_and_features():
    model = AVNet(ModelConfig()).eval()
    frames, log_mel = torch.randn(2, 3, 224, 224), torch.randn(2, 3, 1, 96, 64)
    with torch.no_grad():
        v = model.visual_features(frames)
        emb, a = model.audio_features(log_mel)
        s = model(frames, log_mel)
    assert v.shape == (2, 512, 14, 14) and emb is None and a.shape == (2, 512)
    assert s.shape == (2, 14, 14)
    torch.testing.assert_close(s, av_similarity(v, a)[0])
    assert s.abs().max() <= 1 + 1e-5


def test_nonnegative_default_follows_the_trunk():
    assert ModelConfig().nonnegative is True
    assert ModelConfig.sacl().nonnegative is False and ModelConfig.sspl().nonnegative is False
    assert ModelConfig(visual="resnet18", nonnegative=True).nonnegative is True
    with pytest.raises(InputError, match="ModelConfig.nonnegative"):
        ModelConfig(nonnegative="yes")


@pytest.mark.parametrize("nonnegative", [True, False], ids=["relu", "linear"])
def test_nonnegative_puts_the_map_in_zero_one(nonnegative):
    torch.manual_seed(0)
    model = AVNet(ModelConfig(nonnegative=nonnegative)).eval()
    frames, log_mel = torch.randn(4, 3, 64, 64), torch.randn(4, 2, 1, 96, 64)
    with torch.no_grad():
        trunk = model.visual_trunk(frames)
        v, (_, a) = model.visual_features(frames), model.audio_features(log_mel)
        s = model(frames, log_mel)
    linear = model.visual_proj(trunk)
    torch.testing.assert_close(v, linear.clamp(min=0) if nonnegative else linear)
    assert (s.min() >= 0) == nonnegative and (a.min() >= 0) == nonnegative
    assert s.max() <= 1 + 1e-5


def test_edge_model_with_pcm_predicts_the_small_cnn_embedding():
    torch.manual_seed(0)
    plain, with_pcm = AVNet(ModelConfig()), AVNet(ModelConfig(pcm=True))
    # the embedding is the pooled vector that feeds the head: no new audio parameters
    assert plain.audio_net.state_dict().keys() == with_pcm.audio_net.state_dict().keys()
    assert with_pcm.pcm.PredProcess[0].out_channels == 256
    with_pcm.eval()
    frames, log_mel = torch.randn(2, 3, 224, 224), torch.randn(2, 3, 1, 96, 64)
    with torch.no_grad():
        emb, a = with_pcm.audio_features(log_mel)
        pooled = with_pcm.audio_net.features(with_pcm.audio_net.input_norm(log_mel.flatten(0, 1))).mean((2, 3))
        v = with_pcm.visual_features(frames)
        refined, _, _ = with_pcm.forward_features(frames, log_mel)
        s = with_pcm(frames, log_mel)
    torch.testing.assert_close(emb, pooled.view(2, 3, 256).mean(1))
    torch.testing.assert_close(refined, with_pcm.pcm(v, torch.nn.functional.normalize(emb, dim=1)).clamp(min=0))
    torch.testing.assert_close(s, av_similarity(refined, a)[0])
    assert s.min() >= 0 and s.max() <= 1 + 1e-5


def test_audio_features_average_over_examples():
    model = AVNet(ModelConfig(visual="resnet18", audio="vggish", freeze_visual=False)).eval()
    log_mel = torch.randn(2, 3, 1, 96, 64)
    with torch.no_grad():
        emb, a = model.audio_features(log_mel)
        per_emb, per_a = model.audio_net(log_mel.flatten(0, 1))
    torch.testing.assert_close(emb, per_emb.view(2, 3, -1).mean(1))
    torch.testing.assert_close(a, per_a.view(2, 3, -1).mean(1))


def test_frozen_trunk_has_no_grad_and_stays_in_eval():
    model = AVNet(ModelConfig()).train()
    assert not any(p.requires_grad for p in model.visual_trunk.parameters())
    assert all(p.requires_grad for p in model.visual_proj.parameters())
    assert all(p.requires_grad for p in model.audio_net.parameters())
    assert not model.visual_trunk.training and model.audio_net.training
    before = model.visual_trunk._bn0.running_mean.clone()
    model(torch.randn(2, 3, 64, 64), torch.randn(2, 1, 1, 96, 64)).sum().backward()
    torch.testing.assert_close(model.visual_trunk._bn0.running_mean, before, rtol=0, atol=0)


def test_sspl_freezes_vggish_backbone_but_not_head():
    model = AVNet(ModelConfig.sspl(pcm=False))
    assert _count(model, trainable=True) == _count(model.audio_net.fc) == 328_704


@pytest.mark.parametrize("kwargs, argument", [
    ({"visual": "mobilenet"}, "visual"),
    ({"audio": "panns"}, "audio"),
    ({"embed_dim": 0}, "embed_dim"),
    ({"pcm": True, "embed_dim": 256}, "embed_dim"),
    ({"pcm_cycles": -1}, "pcm_cycles"),
    ({"map_weight": "objectness"}, "map_weight"),
])
def test_bad_config_names_the_field(kwargs, argument):
    with pytest.raises(InputError, match=f"ModelConfig.{argument}"):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("map_weight", ["none", "visual_norm"])
def test_the_map_is_the_cosine_weighted_as_the_config_says(map_weight):
    torch.manual_seed(0)
    model = AVNet(ModelConfig(map_weight=map_weight)).eval()
    v = torch.rand(2, 512, 5, 6) * torch.rand(2, 1, 5, 6)  # positions of other strengths
    a = torch.rand(2, 512)
    cosine = torch.nn.functional.cosine_similarity(v, a[:, :, None, None], dim=1)
    norm = v.norm(dim=1)
    weight = norm / norm.amax(dim=(1, 2), keepdim=True) if map_weight == "visual_norm" else 1.0
    assert torch.allclose(model.similarity_map(v, a), cosine * weight, atol=1e-6)
    if map_weight == "visual_norm":  # the dot product over a positive per-image constant
        dot = torch.einsum("bchw,bc->bhw", v, a)
        scale = a.norm(dim=1)[:, None, None] * norm.amax(dim=(1, 2), keepdim=True)
        assert torch.allclose(model.similarity_map(v, a) * scale, dot, rtol=1e-5)
    assert ModelConfig.edge().map_weight == "visual_norm" and ModelConfig().map_weight == "none"


def test_bad_input_shapes_raise_input_error():
    model = AVNet(ModelConfig()).eval()
    with pytest.raises(InputError, match="frames"):
        model(torch.randn(3, 224, 224), torch.randn(1, 3, 1, 96, 64))
    with pytest.raises(InputError, match="log_mel"):
        model(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 96, 64))


def test_build_model_loads_the_shipped_efficientnet_weights():
    from avsdk.models.weights import efficientnet_lite0_path, read_state_dict

    model = build_model()
    state = read_state_dict(efficientnet_lite0_path())
    torch.testing.assert_close(model.visual_trunk._conv_stem.weight, state["_conv_stem.weight"])


def test_build_model_warns_when_a_trunk_has_no_weights():
    with pytest.warns(UserWarning) as record:
        build_model(ModelConfig.sacl())
    messages = " | ".join(str(w.message) for w in record)
    assert "resnet18 trunk" in messages and "VGGish" in messages
    with pytest.raises(InputError, match="weights"):
        build_model(ModelConfig(), weights={"video": "x.pth"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model(ModelConfig(), pretrained=False)


def test_a_pcm_model_names_the_frame_size_it_needs():
    """The PCM's levels (14 -> 7 -> 3 -> 7 -> 14) fit a 14x14 map only: other frame sizes
    gave a raw shape error deep inside it."""

    model = build_model(ModelConfig(pcm=True), pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224), torch.zeros(1, 2, 1, 96, 64)).shape == (1, 14, 14)
        with pytest.raises(InputError, match="^frames: expected 224x224 frames .* a 16x16 map"):
            model(torch.zeros(1, 3, 256, 256), torch.zeros(1, 2, 1, 96, 64))
