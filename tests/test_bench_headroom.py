"""benchmarks/bench_headroom.py on the tiny benchmark: both rows and the off-screen AUROCs are
measured from the same model, the prototypes made once per command."""
from __future__ import annotations

import pytest

from conftest import load_script

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def headroom_module():
    return load_script("benchmarks/bench_headroom.py")


def test_headroom_and_offscreen(headroom_module, tiny_benchmark, tmp_path):
    import dataclasses

    from avsdk.models import ModelConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    checkpoint = tmp_path / "edge.pt"
    save_checkpoint(checkpoint, build_model(dataclasses.replace(ModelConfig.edge("small_cnn"), image_size=224), pretrained=False))
    result = headroom_module.headroom(checkpoint, tiny_benchmark, "val")
    assert result["n"] == 4 and 0.0 <= result["audio_accuracy"] <= 1.0
    for row in ("model", "prototype"):
        auc, pointing, _ = result[row]
        assert 0.0 <= auc <= 1.0 and 0.0 <= pointing <= 1.0
    off = headroom_module.offscreen_headroom(checkpoint, tiny_benchmark)
    assert off["on"] == 2 and sum(off["off"].values()) > 0
    assert set(off["off"]) <= {"no_object", "one_object", "two_objects"}  # silence and noise have no class
    for row in ("model", "prototype"):
        assert 0.0 <= off[row] <= 1.0
        assert all(0.0 <= off["by_kind"][(row, kind)] <= 1.0 for kind in off["off"])
    assert headroom_module._model_and_prototypes.cache_info().misses == 1  # one model, one set of prototypes
