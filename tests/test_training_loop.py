"""Training loop: grouped batches, config validation, and short end-to-end runs."""
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from avsdk.errors import InputError
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


def test_grouped_batches_give_every_process_as_many_steps():
    """Processes exchange gradients at every step: uneven counts (4, 3, 3 before) made torchrun
    runs pair steps of different epochs, then fail. 10 batches over 3 processes: 3 each."""
    labels = list(range(40))
    parts = [list(GroupedBatches(labels, 4, 0, seed=1, rank=r, world=3)) for r in range(3)]
    assert [len(p) for p in parts] == [len(GroupedBatches(labels, 4, 0, 1, r, 3)) for r in range(3)] == [3, 3, 3]
    seen = [i for p in parts for b in p for i in b]
    assert len(seen) == len(set(seen)) == 36  # disjoint; the tenth batch is dropped


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="scheme"):
        TrainConfig(data="d", out="o", scheme="moco")
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(data="d", out="o", mode="fast", model=ModelConfig(freeze_visual=False))
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(data="d", out="o", batch_size=1)
    with pytest.raises(ValueError, match="fast_views"):
        TrainConfig(data="d", out="o", fast_views=1)


@pytest.mark.parametrize("name,value", [
    ("negative_ratio", 1.5), ("negative_ratio", -0.1), ("retain", 1.0), ("retain", -0.5),
    ("weight_decay", -5.0), ("weight_decay", float("inf")), ("lr", float("inf")), ("lr", 0.0),
    ("tau", float("inf")), ("tau", float("nan")), ("lr_head", "1e-3"), ("select", "iou"),
    ("dist_timeout_minutes", 0), ("dist_timeout_minutes", 1.5),
])
def test_config_rejects_out_of_range_numbers(name, value):
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        TrainConfig(data="d", out="o", **{name: value})


def test_config_range_ends_that_the_losses_accept():
    # all negatives kept (negative_ratio = 1) and a binarisation threshold at the last sorted
    # position but one (retain < 1: binarize() indexes position int(retain * HW))
    TrainConfig(data="d", out="o", negative_ratio=1.0, retain=0.0, weight_decay=0.0)
    TrainConfig(data="d", out="o", negative_ratio=0.0, retain=0.99)
    with pytest.raises(ValueError, match=r"^retain: expected a fraction in \[0, 1\), received 1.0"):
        TrainConfig(data="d", out="o", retain=1.0)


def test_cli_fills_config():
    from avsdk.training.train import parse_args

    config = parse_args(["--data", "d", "--out", "o", "--mode", "fast", "--keep-false-negatives", "--epochs", "3"])
    assert config.mode == "fast" and config.epochs == 3 and not config.remove_false_negatives
    assert config.model == ModelConfig()
    assert parse_args(["--data", "d", "--out", "o", "--dist-timeout-minutes", "90"]).dist_timeout_minutes == 90


@pytest.fixture
def empty_benchmark(tmp_path):
    """A benchmark index with no samples: enough for the CLI's checks, nothing to train on."""
    from avsdk.datasets.realparts import INDEX_FORMAT, INDEX_NAME, INDEX_VERSION, SPLITS

    root = tmp_path / "bench"
    root.mkdir()
    index = {"format": INDEX_FORMAT, "version": INDEX_VERSION,
             "splits": {split: {"samples": []} for split in SPLITS}}
    (root / INDEX_NAME).write_text(json.dumps(index))
    return root


@pytest.mark.parametrize("argv,flag", [
    (["--epochs", "-1"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "1"], "--batch-size"), (["--lr", "0"], "--lr"), (["--lr", "-1"], "--lr"),
    (["--retain", "1"], "--retain"), (["--visual", "foo"], "--visual"), (["--data", "/nonexistent"], "--data"),
    (["--out", "FILE"], "--out"), (["--out", "FILE/run"], "--out"), (["--device", "foo"], "--device"),
    (["--device", "cuda:4096"], "--device"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_cli_reports_user_errors_by_flag_before_training(argv, flag, empty_benchmark, tmp_path, monkeypatch, capsys):
    from avsdk.training import train as train_module

    def no_training(config):
        raise AssertionError("the CLI started training")

    monkeypatch.setattr(train_module, "train", no_training)
    (tmp_path / "file").write_text("x")
    args = {"--data": str(empty_benchmark), "--out": str(tmp_path / "run")}
    args.update(zip(argv[::2], (a.replace("FILE", str(tmp_path / "file")) for a in argv[1::2])))
    assert train_module.main([x for pair in args.items() for x in pair]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: expected ") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_cli_rejects_an_unwritable_out_in_a_subprocess(empty_benchmark):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "avsdk.training.train", "--data", str(empty_benchmark),
                           "--out", "/proc/avsdk-x"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: --out: expected a writable location") and "Traceback" not in done.stderr


def test_train_checks_data_before_creating_out(tmp_path):
    from avsdk.training.train import train

    with pytest.raises(InputError, match="root"):
        train(TrainConfig(data=str(tmp_path / "missing"), out=str(tmp_path / "run"), progress=False))
    assert not (tmp_path / "run").exists()


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
    # served with its scheme's test transform (SSPL keeps the centre square, SACL stretches the frame)
    assert meta["transform"] == {"sspl": "centre_crop", "sacl": "stretch"}[scheme]
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


@pytest.mark.parametrize("select", ["ciou", "auc"])
def test_best_checkpoint_is_the_epoch_the_selection_rule_prefers(select, tiny_benchmark, tmp_path):
    from avsdk.training.config import SELECTIONS
    from avsdk.training.train import train

    config = TrainConfig(data=str(tiny_benchmark), out=str(tmp_path), mode="fast", epochs=3, batch_size=4,
                         clips_per_class=2, fast_views=2, positive_region="map", select=select, progress=False)
    summary = train(config)
    history = json.loads((tmp_path / "history.json").read_text())
    history = history["history"] if isinstance(history, dict) else history
    order = SELECTIONS[select]
    best = max(history, key=lambda r: tuple(r[k] for k in order))  # first of equals, as the loop keeps it
    assert summary["best"]["epoch"] == best["epoch"]


def test_a_finished_run_is_neither_overwritten_nor_resumed_with_other_settings(tiny_benchmark, tmp_path):
    from dataclasses import replace

    from avsdk.training.train import train

    config = TrainConfig(data=str(tiny_benchmark), out=str(tmp_path), mode="fast", epochs=1, batch_size=4,
                         clips_per_class=2, fast_views=2, positive_region="map", progress=False)
    first = train(config)
    best = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(InputError, match="out: expected a folder without a training run.*best.pt and last.pt"):
        train(config)  # a fresh run would replace best.pt at its first epoch
    with pytest.raises(InputError, match=r"resume: .*other lr \(0.0002 -> 0.001\)"):
        train(replace(config, resume=True, lr=1e-3))
    assert (tmp_path / "best.pt").read_bytes() == best  # refused before anything was written
    resumed = train(replace(config, resume=True, epochs=2))  # more epochs: allowed
    assert resumed["epochs"] == 2 and resumed["steps"] == 2 * first["steps"]
    again = train(replace(config, overwrite=True))
    assert again["epochs"] == 1


def test_published_configurations_follow_the_references():
    sacl = TrainConfig.published("sacl", "d", "o")
    assert (sacl.model, sacl.mode, sacl.epochs, sacl.batch_size, sacl.lr, sacl.tau, sacl.clips_per_class,
            sacl.positive_region, sacl.segment_size) == (ModelConfig.sacl(), "full", 100, 64, 2e-4, 0.005, 0,
                                                         "segments", 256)
    sspl = TrainConfig.published("sspl", "d", "o")
    assert (sspl.model, sspl.epochs, sspl.batch_size, sspl.lr_audio, sspl.lr_pcm, sspl.lr_head,
            sspl.clips_per_class) == (ModelConfig.sspl(pcm=True), 20, 128, 2e-5, 2e-5, 5e-5, 0)
    no_pcm = TrainConfig.published("sspl", "d", "o", pcm=False)  # sspl_wo_pcm/arguments_train.py
    assert (no_pcm.model.pcm, no_pcm.epochs, no_pcm.lr_audio, no_pcm.lr_head) == (False, 100, 5e-4, 2e-3)
    assert TrainConfig.published("sacl", "d", "o", epochs=3).epochs == 3
    with pytest.raises(InputError, match="scheme"):
        TrainConfig.published("moco", "d", "o")


def test_batchnorm_is_synchronised_on_cuda_only_and_keeps_checkpoint_keys():
    from avsdk.models import build_model
    from avsdk.training.train import synchronised_batchnorm

    model = build_model(ModelConfig(), pretrained=False)
    keys = list(model.state_dict())
    assert synchronised_batchnorm(model, torch.device("cpu")) is model
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    converted = synchronised_batchnorm(model, torch.device("cuda"))  # swaps modules only: no GPU needed
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in converted.modules())
    assert list(converted.state_dict()) == keys  # best.pt still loads into the plain model


def test_a_batch_larger_than_the_train_split_is_refused(tiny_benchmark, tmp_path):
    from avsdk.training.train import train

    with pytest.raises(InputError, match=r"batch_size: expected at most 12 \(the 12 train clips"):
        train(TrainConfig(data=str(tiny_benchmark), out=str(tmp_path / "run"), mode="fast", batch_size=16,
                          progress=False))
    assert not (tmp_path / "run").exists()


def test_resuming_a_run_stopped_by_max_steps_does_no_more_steps(tiny_benchmark, tmp_path):
    from dataclasses import replace

    from avsdk.training.train import train

    config = TrainConfig(data=str(tiny_benchmark), out=str(tmp_path), mode="fast", epochs=3, batch_size=2,
                         clips_per_class=2, fast_views=2, positive_region="map", max_steps=2, progress=False)
    assert train(config)["steps"] == 2
    last = (tmp_path / "last.pt").read_bytes()
    assert train(replace(config, resume=True))["steps"] == 2
    assert (tmp_path / "last.pt").read_bytes() == last


def test_torchrun_with_two_processes_on_the_cpu(tiny_benchmark, tmp_path):
    """The multi-process path (gloo on the CPU): 12 train clips in batches of 4 are 3 batches,
    which used to be 2 and 1 (the second step waited on a peer that had finished)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "avsdk.training.train", "--data", str(tiny_benchmark), "--out", str(tmp_path / "run"),
               "--mode", "fast", "--epochs", "2", "--batch-size", "4", "--clips-per-class", "2",
               "--fast-views", "2", "--positive-region", "map", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"epoch"')]
    assert [r["epoch"] for r in records] == [1, 2]  # rank 0 alone reports
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["loss"] for h in history] == [r["loss"] for r in records]
    summary = json.loads(done.stdout[done.stdout.index("\n{\n") + 1:])
    assert summary["steps"] == 2  # one step an epoch on each process


def test_ctrl_c_says_how_to_resume(empty_benchmark, tmp_path, monkeypatch, capsys):
    from avsdk.training import train as train_module

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    argv = ["--data", str(empty_benchmark), "--out", str(tmp_path / "run")]
    assert train_module.main(argv) == 130
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err


def test_torchrun_processes_wait_dist_timeout_minutes_for_each_other(monkeypatch):
    """The first collective waits for every process's feature cache: the process group gets
    the configured timeout, not torch's default (10 min with NCCL)."""
    import datetime

    import torch.distributed as dist

    from avsdk.training.train import _distributed

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: seen.update(backend=backend,
                                                                                          timeout=timeout))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    assert _distributed(TrainConfig(data="d", out="o", dist_timeout_minutes=240))[:2] == (1, 2)
    assert seen == {"backend": "gloo", "timeout": datetime.timedelta(minutes=240)}
