"""Faithfulness: weight files in the reference key layouts load strictly into avsdk and give
the same similarity maps, PCM outputs and SimSiam outputs as an independent re-statement of
the reference computation (tests/models_reference.py), to 1e-5."""
import pytest
import torch

import models_reference as ref
from avsdk.errors import CheckpointError
from avsdk.models import (AVNet, ModelConfig, PredictiveCoding, SimSiamHead, build_model,
                          load_sacl_pair, load_sspl, load_sspl_head)
from avsdk.models.sspl import SSPL
from avsdk.models.weights import load_strict

TOL = dict(rtol=1e-5, atol=1e-5)


def assert_close_to_scale(got, want, rel=1e-5):
    """|got - want| <= rel * max|want|: for outputs in the thousands (SimSiam's p and z on
    random weights), where float32 rounding of differently batched convs exceeds 1e-5."""
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= rel * scale, (got - want).abs().max().item()


def _save(tmp_path, name, state):
    path = tmp_path / name
    torch.save(state, path)
    return path


def _spect(batch, examples=3, seed=1):
    return torch.randn(batch, examples, 1, 96, 64, generator=torch.Generator().manual_seed(seed))


def _frames(batch, size, seed=2):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def sacl_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sacl")
    frame, sound = ref.resnet18_state(seed=10), ref.vggish_state(seed=11)
    return _save(folder, "frame_best.pth", frame), _save(folder, "sound_best.pth", sound), frame, sound


def test_sacl_pair_gives_the_reference_similarity_map(sacl_files):
    frame_path, sound_path, frame, sound = sacl_files
    model = load_sacl_pair(frame_path, sound_path)
    frames, spect = _frames(2, 96), _spect(2)
    with torch.no_grad():
        got = model(frames, spect)
        _, audio = ref.clip_audio(sound, spect)
        _, want, _ = ref.att_map_weight(ref.resnet18_forward(frame, frames), audio)
    assert got.shape == (2, 6, 6)
    torch.testing.assert_close(got, want, **TOL)


def test_sacl_pair_missing_and_unexpected_keys_are_listed(tmp_path, sacl_files):
    _, sound_path, frame, _ = sacl_files
    broken = dict(frame)
    broken.pop("layer3.1.bn2.running_var")
    broken["layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_sacl_pair(_save(tmp_path, "frame.pth", broken), sound_path)
    text = str(info.value)
    assert "missing keys (1): layer3.1.bn2.running_var" in text
    assert "unexpected keys (1): layer5.0.conv1.weight" in text
    assert "frame.pth" in text


def test_shape_mismatch_is_listed(tmp_path, sacl_files):
    frame_path, _, _, sound = sacl_files
    bad = dict(sound)
    bad["fc.2.weight"] = torch.zeros(256, 512)
    with pytest.raises(CheckpointError, match=r"shape mismatches.*fc\.2\.weight \(256, 512\) vs \(512, 512\)"):
        load_sacl_pair(frame_path, _save(tmp_path, "sound.pth", bad))


def test_torchvision_and_torchvggish_files_load_through_build_model(tmp_path):
    resnet, vggish = ref.resnet18_state(seed=3), ref.vggish_state(seed=4, head=False)
    with pytest.warns(UserWarning, match="vgg16 trunk"):  # VGG16 is given no file here
        build_model(ModelConfig.sspl(pcm=False), weights={
            "audio": _save(tmp_path, "vggish-10086976.pth", vggish)})
    model = build_model(ModelConfig.sacl(), weights={
        "visual": _save(tmp_path, "resnet18-f37072fd.pth", resnet),
        "audio": tmp_path / "vggish-10086976.pth"})
    torch.testing.assert_close(model.visual_trunk.layer4[1].bn2.running_var,
                               resnet["layer4.1.bn2.running_var"], rtol=0, atol=0)
    torch.testing.assert_close(model.audio_net.embeddings[4].weight, vggish["embeddings.4.weight"],
                               rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="unexpected keys"):  # a SACL sound file is no VGGish file
        build_model(ModelConfig.sacl(), weights={
            "visual": tmp_path / "resnet18-f37072fd.pth",
            "audio": _save(tmp_path, "sound.pth", ref.vggish_state(seed=4))})


def test_a_resnet_file_from_before_batchnorm_counters_loads(tmp_path):
    """Files saved before PyTorch 0.4.1 (SACL's resnet18-5c106cde.pth URL among them) have no
    num_batches_tracked; they were refused as missing 20 keys."""
    resnet = {k: v for k, v in ref.resnet18_state(seed=5).items() if not k.endswith("num_batches_tracked")}
    model = build_model(ModelConfig.sacl(), weights={
        "visual": _save(tmp_path, "resnet18-5c106cde.pth", resnet),
        "audio": _save(tmp_path, "vggish-10086976.pth", ref.vggish_state(seed=4, head=False))})
    torch.testing.assert_close(model.visual_trunk.layer1[0].bn1.weight, resnet["layer1.0.bn1.weight"],
                               rtol=0, atol=0)
    del resnet["layer1.0.bn1.weight"]  # any other key is still required
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): layer1.0.bn1.weight"):
        build_model(ModelConfig.sacl(), weights={"visual": _save(tmp_path, "cut.pth", resnet),
                                                 "audio": tmp_path / "vggish-10086976.pth"})


def test_torchvision_vgg16_file_loads_with_its_classifier_skipped(tmp_path):
    state = ref.vgg16_state(seed=5)
    state["classifier.0.weight"] = torch.zeros(4096, 25088)
    model = build_model(ModelConfig.sspl(pcm=False), pretrained=True, weights={
        "visual": _save(tmp_path, "vgg16-397923af.pth", state),
        "audio": _save(tmp_path, "vggish.pth", ref.vggish_state(seed=4, head=False))})
    frames = _frames(1, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.visual_features(frames), ref.vgg16_forward(state, frames), **TOL)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_pcm_matches_reference(training):
    state = ref.pcm_state(seed=6)
    pcm = PredictiveCoding()
    load_strict(pcm, state, "reference PCM")
    pcm.train(training)
    g = torch.Generator().manual_seed(7)
    visual = torch.randn(3, 512, 14, 14, generator=g)
    audio = torch.nn.functional.normalize(torch.randn(3, 128, generator=g), dim=1)
    with torch.no_grad():
        got = pcm(visual, audio)
        want = ref.pcm_forward(state, visual, audio, training=training)
    assert got.shape == (3, 512, 14, 14)
    torch.testing.assert_close(got, want, **TOL)


def test_pcm_rates_initialise_as_in_the_reference():
    pcm = PredictiveCoding()
    assert all(torch.equal(r.detach(), torch.full((1, 512, 1, 1), 0.5)) for r in pcm.b0)
    assert all(torch.equal(r.detach(), torch.full((1, 512, 1, 1), 1.0)) for r in pcm.a0)
    assert len(pcm.BNPred_step) == 8 and len(pcm.BNError_step) == 12
    assert len(pcm.rate_parameters()) == 6
    assert sum(p.numel() for p in pcm.parameters()) == 9_859_712


@pytest.fixture(scope="module")
def sspl_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sspl")
    frame = ref.vgg16_state(seed=20, prefix="feat_extractor.")  # VGG16 wrapper, not DDP
    sound = ref.vggish_state(seed=21, prefix="module.")  # DistributedDataParallel
    pcm = ref.pcm_state(seed=22, prefix="module.")
    head = ref.simsiam_state(seed=23, prefix="module.")
    paths = [_save(folder, f"{n}_best.pth", s) for n, s in
             (("frame", frame), ("sound", sound), ("pcm", pcm), ("ssl_head", head))]
    strip = lambda s: {k.split(".", 1)[1]: v for k, v in s.items()}  # noqa: E731
    return paths, {"frame": frame, "sound": strip(sound), "pcm": strip(pcm), "head": strip(head)}


def test_sspl_with_pcm_gives_the_reference_similarity_map(sspl_files):
    (frame_path, sound_path, pcm_path, _), states = sspl_files
    model = load_sspl(frame_path, sound_path, pcm_path)
    assert model.config.pcm and model.config.visual == "vgg16"
    frames, spect = _frames(2, 224), _spect(2)
    with torch.no_grad():
        got = model(frames, spect)
        emb, audio = ref.clip_audio(states["sound"], spect)
        visual = ref.vgg16_forward(states["frame"], frames, prefix="feat_extractor.")
        _, want, _ = ref.att_map_weight(ref.pcm_forward(states["pcm"], visual, emb), audio)
    assert got.shape == (2, 14, 14)
    torch.testing.assert_close(got, want, **TOL)


def test_sspl_without_pcm_loads_frame_and_sound_only(sspl_files):
    (frame_path, sound_path, _, _), states = sspl_files
    model = load_sspl(frame_path, sound_path)
    assert model.pcm is None
    frames, spect = _frames(1, 64), _spect(1)
    with torch.no_grad():
        _, audio = ref.clip_audio(states["sound"], spect)
        visual = ref.vgg16_forward(states["frame"], frames, prefix="feat_extractor.")
        torch.testing.assert_close(model(frames, spect), ref.att_map_weight(visual, audio)[1], **TOL)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_simsiam_head_matches_reference(sspl_files, training):
    (_, _, _, head_path), states = sspl_files
    head = load_sspl_head(head_path).train(training)
    g = torch.Generator().manual_seed(8)
    f1, f2 = torch.randn(4, 512, generator=g), torch.randn(4, 512, generator=g)
    with torch.no_grad():
        got = head(f1, f2)
        want = ref.simsiam_forward(states["head"], f1, f2, training=training)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL)


def test_sspl_model_pools_each_view_by_its_attention(sspl_files):
    """SSPL's training forward: PCM per view, attention pooling, then the SimSiam head."""
    (frame_path, sound_path, pcm_path, head_path), states = sspl_files
    model = SSPL(net=load_sspl(frame_path, sound_path, pcm_path))
    model.head = load_sspl_head(head_path)
    model.eval()
    g = torch.Generator().manual_seed(9)
    visual = [torch.randn(2, 512, 14, 14, generator=g) for _ in range(2)]
    spect = _spect(2)
    # Bypass VGG16 (tested above) to keep this test fast: feed the maps through a stub trunk.
    maps = iter(visual)
    model.net.visual_trunk.forward = lambda frames: next(maps)
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), spect)
        emb, audio = ref.clip_audio(states["sound"], spect)
        pooled, sims = [], []
        for v in visual:
            f, s, _ = ref.att_map_weight(ref.pcm_forward(states["pcm"], v, emb), audio)
            pooled.append(f)
            sims.append(s)
        p1, p2, z1, z2 = ref.simsiam_forward(states["head"], *pooled)
    for got, want in zip(out[:4], (p1, p2, z1, z2)):
        assert_close_to_scale(got, want)
    for got, want in zip(out[4:], sims):
        torch.testing.assert_close(got, want, **TOL)
    assert not out.z1.requires_grad


def test_sspl_parameter_counts_match_method_sizes():
    model = SSPL(ModelConfig.sspl())
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total == 108_589_888  # docs/method.md, "Sizes": 108.6 M
    assert trainable == 21_734_016  # 21.7 M
    assert isinstance(model.head, SimSiamHead) and isinstance(model.net, AVNet)
