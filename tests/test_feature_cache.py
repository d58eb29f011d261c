"""The fast mode's per-shard feature cache on disk (avsdk.training.feature_cache): it holds what
the trunk makes of each shard, gives the batches an in-RAM cache of the same features gives, is
reused under the same settings and split between processes, and a training run on shards
killed while caching or while training resumes to the uninterrupted run's weights."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from avsdk.errors import InputError

pytest.importorskip("webdataset", reason="webdataset (extra 'data') is not installed")
pytest.importorskip("skimage", reason="scikit-image (extra 'train') is not installed")

from avsdk.models import ModelConfig, build_model  # noqa: E402
from avsdk.training.fast import FeatureCache, feature_batches  # noqa: E402
from avsdk.training.feature_cache import shard_feature_cache  # noqa: E402
from avsdk.training.ingest import benchmark_sources  # noqa: E402
from avsdk.training.shard_data import complete_shards, shard_records  # noqa: E402
from avsdk.training.shards import ShardConfig, write_shards  # noqa: E402

SETTINGS = dict(views=3, scheme="sacl", seed=5, segment=True, segment_size=64)


@pytest.fixture(scope="module")
def shards(tiny_benchmark, tmp_path_factory):
    """The 12 train clips of the tiny benchmark in shards of 5: 5, 5 and 2 pairs."""
    out = tmp_path_factory.mktemp("feature_cache") / "shards"
    write_shards(benchmark_sources(tiny_benchmark, "train"), out, ShardConfig(shard_size=5), progress=False)
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(), pretrained=False).eval()


def _in_ram(model, shard_paths) -> FeatureCache:
    """The same features built in RAM, shard by shard, with the per-shard random views."""
    features, segments, audio = [], [], []
    for shard in shard_paths:
        number = int(shard.stem.split("-")[1])
        records = shard_records(shard)
        keys = [(SETTINGS["seed"], number, i) for i in range(len(records))]
        for out, ids, log_mel in feature_batches(model, records, keys, SETTINGS["views"], "sacl", True, 64,
                                                 progress=False):
            features.append(out)
            segments.append(ids)
            audio.append(log_mel)
    return FeatureCache(torch.cat(features), torch.cat(segments), torch.cat(audio))


def test_the_disk_cache_holds_the_trunk_features_and_gives_the_in_ram_batches(model, shards, tmp_path):
    cache = shard_feature_cache(model, shards, tmp_path, progress=False, **SETTINGS)
    reference = _in_ram(model, complete_shards(shards))
    assert len(cache) == 12 and [len(p.keys) for p in cache.parts] == [5, 5, 2]
    assert cache.labels == [r.label for s in complete_shards(shards) for r in shard_records(s)]
    stored = torch.cat([torch.from_numpy(np.array(p.features)) for p in cache.parts])
    assert stored.dtype == torch.float16 and stored.shape == (12, 3, 1280, 14, 14)
    assert torch.equal(stored, reference.features)
    for indices in ([0, 6, 11, 3], [10, 4, 5, 9]):  # across shards, in any order
        got = cache.batch(indices, np.random.default_rng(1))
        expected = reference.batch(indices, np.random.default_rng(1))
        for a, b in zip(got, expected):
            assert torch.equal(a, b)
    (digest,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    settings = json.loads((digest / "settings.json").read_text())
    assert settings["views"] == 3 and settings["segment_size"] == 64 and len(settings["trunk_digest"]) == 16


def test_the_same_settings_reuse_the_cache_and_other_ones_build_another(model, shards, tmp_path, monkeypatch):
    from avsdk.training import feature_cache

    shard_feature_cache(model, shards, tmp_path, progress=False, **SETTINGS)
    built = []
    real = feature_cache.build_shard
    monkeypatch.setattr(feature_cache, "build_shard", lambda m, shard, *a, **k: built.append(shard.stem) or real(
        m, shard, *a, **k))
    again = shard_feature_cache(model, shards, tmp_path, progress=False, **SETTINGS)
    assert built == [] and len(again) == 12
    shard_feature_cache(model, shards, tmp_path, progress=False, **{**SETTINGS, "views": 2})
    assert built == ["shard-000000", "shard-000001", "shard-000002"]
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    other = build_model(ModelConfig(), pretrained=False)  # other trunk weights: other features
    built.clear()
    shard_feature_cache(other, shards, tmp_path, progress=False, **SETTINGS)
    assert len(built) == 3 and len([p for p in tmp_path.iterdir() if p.is_dir()]) == 3


def test_processes_build_their_own_shards_and_a_later_run_of_another_size_reuses_them(model, shards, tmp_path):
    parts = [shard_feature_cache(model, shards, tmp_path, rank=rank, world=2, progress=False, **SETTINGS)
             for rank in range(2)]
    assert [len(p) for p in parts] == [7, 5]  # shards 0 and 2, shard 1
    assert sorted(parts[0].keys + parts[1].keys) == shard_feature_cache(
        model, shards, tmp_path, progress=False, **SETTINGS).keys
    with pytest.raises(InputError, match=r"^shards: expected at least one complete shard per process \(4\)"):
        shard_feature_cache(model, shards, tmp_path, rank=0, world=4, progress=False, **SETTINGS)


def test_feature_cache_is_refused_outside_the_fast_mode_on_shards():
    from avsdk.training.config import TrainConfig

    for settings in ({"mode": "fast"}, {"mode": "full", "shards": "s"}):
        with pytest.raises(InputError, match=r"^feature_cache: expected None unless training on shards in fast mode"):
            TrainConfig(data="d", out="o", feature_cache="f", **settings)


def _train_command(bench, shards, out, *extra):
    return [sys.executable, "-m", "avsdk.training.train", "--data", str(bench), "--shards", str(shards),
            "--out", str(out), "--mode", "fast", "--epochs", "25", "--batch-size", "4", "--clips-per-class", "2",
            "--fast-views", "3", "--segment-size", "256", "--no-progress", *extra]


def _kill_when(process: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended (status {process.returncode}) before it could be killed"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_training_on_shards_killed_while_caching_and_while_training_ends_as_the_uninterrupted_run(
        tiny_benchmark, tmp_path):
    """12 clips in 6 shards of 2. A run is killed while it caches shard-000001 (shard 0 done),
    run again (it keeps shard 0's cache and builds the rest), killed after a saved epoch, then
    resumed: its last.pt and history are those of a run that was never interrupted."""
    write_shards(benchmark_sources(tiny_benchmark, "train"), tmp_path / "shards", ShardConfig(shard_size=2),
                 progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cache = tmp_path / "cache"
    command = _train_command(tiny_benchmark, tmp_path / "shards", tmp_path / "killed", "--feature-cache", str(cache))

    log = open(tmp_path / "killed.log", "wb")  # a file, not a pipe that nobody reads while waiting
    first = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    _kill_when(first, lambda: any(cache.glob("*/shard-000001.partial-*")))
    (digest,) = list(cache.iterdir())
    held = sorted(p.name for p in digest.iterdir() if p.is_dir())
    assert held == ["shard-000000", f"shard-000001.partial-{first.pid}"]
    kept = (digest / "shard-000000" / "features.npy").stat()

    second = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    _kill_when(second, lambda: (tmp_path / "killed" / "last.pt").is_file())
    assert sorted(p.name for p in digest.iterdir() if p.is_dir()) == [f"shard-{i:06d}" for i in range(6)]
    assert (digest / "shard-000000" / "features.npy").stat().st_ino == kept.st_ino  # reused, not rebuilt
    # last.pt, written whole (renamed into place), is what --resume reads; the kill may come
    # before history.json, which is written after it
    stopped_at = json.loads(torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["state"])["epoch"]
    assert 1 <= stopped_at < 25

    log.close()
    resumed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = subprocess.run(_train_command(tiny_benchmark, tmp_path / "shards", tmp_path / "whole", "--feature-cache",
                                          str(cache)), env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert (json.loads((tmp_path / "killed" / "history.json").read_text())
            == json.loads((tmp_path / "whole" / "history.json").read_text()))
    killed, uninterrupted = (torch.load(tmp_path / run / "last.pt", weights_only=True) for run in ("killed", "whole"))
    assert killed["objective"].keys() == uninterrupted["objective"].keys()
    for name, value in uninterrupted["objective"].items():
        assert torch.equal(killed["objective"][name], value), name


def test_a_frozen_soundnet_caches_its_embeddings_of_clip_shards(tiny_benchmark, shards, tmp_path):
    """SoundNet (frozen audio backbone) needs the waveform: shards written with --audio clip
    give the in-RAM embeddings of each shard's audio views; log-mel shards are refused."""
    from avsdk.training.fast import audio_embeddings

    model = build_model(ModelConfig(audio="soundnet", embed_dim=1000), pretrained=False).eval()
    with pytest.raises(InputError, match=r"^shards: expected shards written with --audio clip"):
        shard_feature_cache(model, shards, tmp_path / "refused", 2, "sacl", 0, False, progress=False)
    clips = tmp_path / "clips"
    write_shards(benchmark_sources(tiny_benchmark, "train"), clips, ShardConfig(shard_size=5, audio="clip"),
                 progress=False)
    cache = shard_feature_cache(model, clips, tmp_path / "cache", 2, "sacl", 0, False, audio_views=3, progress=False)
    assert cache.audio_embedded and cache.parts[0].segments is None
    for number, shard in enumerate(complete_shards(clips)):
        expected = audio_embeddings(model, shard_records(shard), 3, (0, 7, number), 16, progress=False)
        assert torch.equal(torch.from_numpy(np.array(cache.parts[number].audio)), expected)
    f1, f2, seg1, seg2, audio = cache.batch([0, 7, 11], np.random.default_rng(0))
    assert f1.shape == f2.shape == (3, 1280, 14, 14) and seg1 is seg2 is None
    assert audio.shape == (3, expected.shape[-1])


def test_loader_workers_that_read_batches_ahead_train_the_same_weights(tiny_benchmark, shards, tmp_path):
    """--num-workers reads the fast mode's batches in DataLoader workers, ahead of the steps; the
    views are drawn in the training process, so the run is the one without workers."""
    from avsdk.training.config import TrainConfig
    from avsdk.training.train import train

    runs = {}
    for workers in (0, 2):
        config = TrainConfig(data=str(tiny_benchmark), out=str(tmp_path / f"w{workers}"), shards=str(shards),
                             feature_cache=str(tmp_path / "cache"), mode="fast", epochs=2, batch_size=4,
                             clips_per_class=2, fast_views=3, segment_size=64, num_workers=workers, progress=False)
        train(config)
        runs[workers] = torch.load(tmp_path / f"w{workers}" / "last.pt", weights_only=True)
    assert json.loads(runs[0]["state"])["history"] == json.loads(runs[2]["state"])["history"]
    for name, value in runs[0]["objective"].items():
        assert torch.equal(runs[2]["objective"][name], value), name


def test_shards_written_over_take_their_feature_caches_with_them(model, tiny_benchmark, tmp_path):
    out = tmp_path / "shards"
    sources = benchmark_sources(tiny_benchmark, "train")
    write_shards(sources, out, ShardConfig(shard_size=6), progress=False)
    shard_feature_cache(model, out, None, progress=False, **SETTINGS)  # the default place: shards/features
    assert len(list((out / "features").iterdir())) == 1
    write_shards(sources[:6], out, ShardConfig(shard_size=6), overwrite=True, progress=False)
    assert not (out / "features").exists()
