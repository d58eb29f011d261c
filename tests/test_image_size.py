"""A model's frame side (ModelConfig.image_size) reaches every place that makes its input:
the Localizer, evaluation, fast-mode validation, ONNX export and its manifest."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from avsdk.errors import InputError
from avsdk.models import ModelConfig, build_model, save_checkpoint

SIDE = 256  # not 224: a path that ignores the model's side shows


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # the ImageNet trunk: a random one outputs ~1e-8, which the float16 feature cache flushes
    return build_model(ModelConfig(image_size=SIDE), pretrained=True).eval()


@pytest.mark.parametrize("side", [0, 100, 2048, True, 256.0, "384"])
def test_bad_image_size_is_named(side):
    with pytest.raises(InputError, match="ModelConfig.image_size"):
        ModelConfig(image_size=side)


def test_the_pcm_keeps_224_and_the_edge_model_localizes_at_384():
    with pytest.raises(InputError, match="ModelConfig.image_size"):
        ModelConfig(pcm=True, image_size=256)
    assert ModelConfig().image_size == 224 and ModelConfig.edge().image_size == 384


def test_localizer_feeds_the_models_side(model, tmp_path):
    from avsdk import Localizer

    save_checkpoint(tmp_path / "m.pt", model)
    seen = []
    loc = Localizer.load(tmp_path / "m.pt")
    forward = loc.backend.model.forward
    loc.backend.model.forward = lambda f, a: seen.append(tuple(f.shape)) or forward(f, a)
    picture = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    result = loc(picture, np.random.default_rng(1).standard_normal(48000).astype(np.float32), sample_rate=16000)
    assert loc.image_size == SIDE and seen == [(1, 3, SIDE, SIDE)]
    assert result.heatmap.shape == (90, 120) and result.similarity.shape == (SIDE // 16, SIDE // 16)
    assert Localizer.from_model(model).image_size == SIDE


def test_fast_validation_scores_the_maps_evaluation_scores(model, tiny_benchmark):
    """The fast mode's validation cache resizes the frame as evaluation does, at the model's side."""
    from avsdk.datasets import load_split
    from avsdk.evaluation import predicted_maps
    from avsdk.training.fast import build_cache, cached_maps

    samples = load_split(tiny_benchmark, "val")
    cache = build_cache(model, samples, 1, "sacl", seed=0, segment=False, progress=False, size=SIDE)
    assert cache.features.shape[-2:] == (SIDE // 16, SIDE // 16)
    fast = cached_maps(SimpleNamespace(model=model), cache)
    full = predicted_maps(model, samples, audio=model.audio_spec, image_size=SIDE)
    np.testing.assert_allclose(fast, full, atol=2e-3)  # the cache holds float16 trunk features
    with pytest.raises(InputError, match="views"):
        build_cache(model, samples, 3, "sacl", seed=0, segment=False, progress=False, size=SIDE)


def test_onnx_export_takes_the_models_side(model, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    from avsdk import Localizer
    from avsdk.export.manifest import Preprocessing, read_manifest
    from avsdk.export.onnx_export import export_onnx

    path = export_onnx(model, tmp_path / "m.onnx")
    assert read_manifest(path).preprocessing.image_size == SIDE
    frames, log_mel = torch.randn(2, 3, SIDE, SIDE), torch.randn(2, 3, 1, 96, 64)
    np.testing.assert_allclose(Localizer.load(path).predict(frames, log_mel),
                               Localizer.from_model(model).predict(frames, log_mel), atol=1e-4)
    with pytest.raises(InputError, match="image_size"):
        export_onnx(model, tmp_path / "other.onnx", preprocessing=Preprocessing(image_size=288))
