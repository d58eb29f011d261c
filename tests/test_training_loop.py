"""Training loop: grouped batches, config validation, and short end-to-end runs."""
import json
from collections import Counter

import pytest
import torch

from avsdk.models import ModelConfig
from avsdk.training.config import TrainConfig
from avsdk.training.data import GroupedBatches


def test_grouped_batches_hold_same_class_groups():
    labels = ["a"] * 8 + ["b"] * 8 + ["c"] * 8
    batches = list(GroupedBatches(labels, 8, 4, seed=0))
    assert len(batches) == 3 and sorted(i for b in batches for i in b) == list(range(24))
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert all(c % 4 == 0 for c in counts.values())
    again = GroupedBatches(labels, 8, 4, seed=0)
    assert list(again) == batches
    again.set_epoch(1)
    assert list(again) != batches


def test_grouped_batches_split_between_processes():
    labels = list(range(40))
    parts = [list(GroupedBatches(labels, 4, 0, seed=1, rank=r, world=3)) for r in range(3)]
    assert [len(p) for p in parts] == [len(GroupedBatches(labels, 4, 0, 1, r, 3)) for r in range(3)] == [4, 3, 3]
    assert sorted(i for p in parts for b in p for i in b) == list(range(40))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="scheme"):
        TrainConfig(data="d", out="o", scheme="moco")
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(data="d", out="o", mode="fast", model=ModelConfig(freeze_visual=False))
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(data="d", out="o", batch_size=1)
    with pytest.raises(ValueError, match="fast_views"):
        TrainConfig(data="d", out="o", fast_views=1)


def test_cli_fills_config():
    from avsdk.training.train import parse_args

    config = parse_args(["--data", "d", "--out", "o", "--mode", "fast", "--keep-false-negatives", "--epochs", "3"])
    assert config.mode == "fast" and config.epochs == 3 and not config.remove_false_negatives
    assert config.model == ModelConfig()


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    datasets = pytest.importorskip("avsdk.datasets")
    pytest.importorskip("avsdk.frontend", reason="the audio frontend has not landed")
    config = datasets.BenchmarkConfig(train=12, val=4, test=2, unheard=2)
    return datasets.build_benchmark(tmp_path_factory.mktemp("bench"), config, progress=False)


@pytest.mark.parametrize("mode,scheme,pcm", [("fast", "sacl", False), ("full", "sacl", False),
                                             ("fast", "sspl", False), ("fast", "sspl", True)])
def test_three_steps_write_a_checkpoint(tiny_benchmark, tmp_path, mode, scheme, pcm):
    from avsdk.models import load_checkpoint
    from avsdk.training.train import train

    config = TrainConfig(data=str(tiny_benchmark), out=str(tmp_path), scheme=scheme, mode=mode, epochs=3,
                         batch_size=4, clips_per_class=2, fast_views=2, max_steps=3, segment_size=128,
                         model=ModelConfig(pcm=pcm), progress=False)
    summary = train(config)
    assert summary["steps"] == 3
    model, meta = load_checkpoint(tmp_path / "best.pt")
    assert meta["scheme"] == scheme and meta["mode"] == mode and model.config.pcm == pcm
    if pcm:  # the PCM trained: its rates moved from their initial values
        assert any(not torch.all(r == 1.0) for r in model.pcm.a0)
    history = json.loads((tmp_path / "history.json").read_text())
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    with torch.no_grad():
        maps = model(torch.zeros(1, 3, 224, 224), torch.zeros(1, 3, 1, 96, 64))
    assert maps.shape == (1, 14, 14)


def test_runs_share_feature_caches(tiny_benchmark, tmp_path, monkeypatch):
    from avsdk.training import fast
    from avsdk.training.train import train

    built = []
    real = fast.build_cache
    monkeypatch.setattr(fast, "build_cache", lambda *a, **k: built.append(a[2]) or real(*a, **k))
    caches = {}
    for index, remove in enumerate((True, False, True)):
        config = TrainConfig(data=str(tiny_benchmark), out=str(tmp_path / str(index)), mode="fast", epochs=1,
                             batch_size=4, clips_per_class=2, fast_views=2, max_steps=1, positive_region="map",
                             remove_false_negatives=remove, seed=index // 2, progress=False)
        train(config, caches)
    # seed 0 builds the train (2 views) and val (1 view) caches once for both runs; seed 1 again
    assert built == [2, 1, 2, 1] and len(caches) == 4
