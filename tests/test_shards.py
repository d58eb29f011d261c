"""A cache that scales (avsdk.training.shards, shard_data): WebDataset shards hold exactly what
avsdk.preprocess makes, come out byte-identical with any number of workers, survive a SIGKILL
(complete shards kept, partial ones redone), skip a source that hangs (in Python or, past a
second limit, in C), and read back split between workers and processes."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from avsdk.errors import InputError

pytest.importorskip("av", reason="PyAV (extra 'video') is not installed")
pytest.importorskip("webdataset", reason="webdataset (extra 'data') is not installed")

from avsdk.frames import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from avsdk.preprocess import Preprocessing, audio_array, model_inputs  # noqa: E402
from avsdk.training.ingest import ReadOptions, Source, read_manifest, video_folder  # noqa: E402
from avsdk.training.shard_data import complete_shards, load_records, shard_dataset, shard_loader  # noqa: E402
from avsdk.training.shards import ShardConfig, write_shard, write_shards  # noqa: E402
from avsdk.video import read_clip  # noqa: E402

import small_videos  # noqa: E402
from conftest import assert_refusal  # noqa: E402

# lossless frames, so that the stored pixels can be compared exactly
CONFIG = ShardConfig(read=ReadOptions(pairs_per_video=2), shard_size=3, frame="npy")
EXPECTED_SKIPS = {"undecodable": 1, "no_sound_track": 1, "too_short": 2, "silent": 2, "unlabelled": 1}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return small_videos.make_folder(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def baseline(videos, tmp_path_factory):
    """The shards of one uninterrupted run in this process: (folder, summary)."""
    out = tmp_path_factory.mktemp("baseline") / "shards"
    return out, write_shards(video_folder(*videos), out, CONFIG, progress=False)


def _tars(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.tar"))}


def _normalised(pixels: np.ndarray) -> np.ndarray:
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    return ((pixels.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)


def test_the_summary_counts_pairs_and_skips_by_reason(videos, baseline):
    out, summary = baseline
    assert summary["sources"] == 29 and summary["shards"] == 10 == summary["complete_shards"]
    assert summary["pairs"] == 48 and summary["skipped_by_reason"] == EXPECTED_SKIPS
    assert summary == json.loads((out / "summary.json").read_text())
    logged = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert {item["origin"] for item in logged} == set(small_videos.BAD)


def test_shards_hold_what_avsdk_preprocess_makes(videos, baseline):
    folder, _ = videos
    samples = list(shard_dataset(baseline[0]))
    assert len(samples) == 48 and len({s["key"] for s in samples}) == 48
    for sample in samples[::7]:
        meta = sample["meta"]
        clip = read_clip(folder / meta["origin"], meta["time"])
        expected = model_inputs(clip.frame, clip.audio, clip.sample_rate)
        assert sample["frame"].shape == (224, 224, 3) and sample["frame"].dtype == np.uint8
        np.testing.assert_array_equal(_normalised(sample["frame"]), expected.frame)
        assert sample["audio_kind"] == "log_mel"
        np.testing.assert_array_equal(sample["audio"], expected.audio)
        assert meta["label"] == meta["origin"].split("/")[0] and meta["size"] == [48, 64]


def test_jpeg_frames_and_16k_clips(videos, tmp_path):
    folder, labels = videos
    sources = video_folder(folder, labels)[5:8]
    config = ShardConfig(read=ReadOptions(preprocessing=Preprocessing(image_size=96, transform="centre_crop")),
                         audio="clip")
    write_shards(sources, tmp_path, config, progress=False)
    for sample in shard_dataset(tmp_path):
        clip = read_clip(folder / sample["meta"]["origin"], sample["meta"]["time"])
        expected = model_inputs(clip.frame, clip.audio, clip.sample_rate, Preprocessing(image_size=96,
                                                                                        transform="centre_crop"))
        assert sample["frame"].shape == (96, 96, 3)
        # JPEG at quality 90: a few grey levels off at most, on average far less
        assert np.abs(_normalised(sample["frame"]) - expected.frame).mean() * 0.226 * 255 < 3
        assert sample["audio_kind"] == "clip"
        np.testing.assert_array_equal(sample["audio"], expected.clip.astype(np.float32))


def test_more_workers_write_the_same_shards(videos, baseline, tmp_path):
    summary = write_shards(video_folder(*videos), tmp_path, CONFIG, workers=2, progress=False)
    assert summary["skipped_by_reason"] == EXPECTED_SKIPS
    assert _tars(tmp_path) == _tars(baseline[0])


def test_a_run_killed_mid_shard_resumes_and_ends_with_the_uninterrupted_shards(videos, baseline, tmp_path):
    folder, labels = videos
    command = [sys.executable, "-m", "avsdk.training.shards", "--videos", str(folder), "--labels", str(labels),
               "--out", str(tmp_path), "--pairs-per-video", "2", "--shard-size", "3", "--frame", "npy",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        # killed once two shards are complete and a third is being written
        while not (len(list(tmp_path.glob("shard-*.json"))) >= 2 and list(tmp_path.glob("*.partial"))):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in complete_shards(tmp_path)}
    assert 2 <= len(kept) < 10 and list(tmp_path.glob("*.partial"))

    summary = write_shards(video_folder(folder, labels), tmp_path, CONFIG, progress=False)
    assert summary["written_this_run"] == 10 - len(kept)
    for name, version in kept.items():  # not written again
        path = tmp_path / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == version
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.tmp"))
    assert _tars(tmp_path) == _tars(baseline[0])
    assert summary["pairs"] == 48 and summary["skipped_by_reason"] == EXPECTED_SKIPS


@dataclasses.dataclass(frozen=True)
class _KillsItsProcess(Source):
    """A source that ends the process it is sent to, as a crash inside a decoder would."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_worker_that_dies_takes_down_only_its_own_shard(videos, baseline, tmp_path):
    sources = video_folder(*videos)[:6]
    deadly = sources[:2] + [_KillsItsProcess(**dataclasses.asdict(sources[2]))] + sources[3:]
    summary = write_shards(deadly, tmp_path, CONFIG, workers=2, progress=False)
    assert summary["failed_shards"] == {"shard-000000": "its process exited with status 3"}
    assert [p.name for p in complete_shards(tmp_path)] == ["shard-000001.tar"]
    # the rerun (the same sources, no longer deadly) writes the missing shard
    assert write_shards(sources, tmp_path, CONFIG, workers=2, progress=False)["written_this_run"] == 1
    expected = _tars(baseline[0])
    assert _tars(tmp_path) == {name: expected[name] for name in ("shard-000000.tar", "shard-000001.tar")}


@dataclasses.dataclass(frozen=True)
class _HangsInItsProcess(Source):
    """A source whose reading never ends in the process it is sent to (small_videos.Hangs);
    ``in_c``: with SIGALRM blocked, as during a hang inside a decoder."""

    in_c: bool = False

    def __reduce__(self):
        return small_videos.Hangs, (self.key, self.origin, self.in_c)


def _without(sources, *indices: int) -> list:
    """``sources`` with those at ``indices`` replaced by sources that give no pair."""
    return [Source(s.key, s.origin, problem="timeout: in the test") if i in indices else s
            for i, s in enumerate(sources)]


def _shard(sources, folder: Path, config: ShardConfig) -> bytes:
    """The tar of a shard of ``sources``, written in this process."""
    write_shard(folder, 0, sources, config)
    return (folder / "shard-000000.tar").read_bytes()


def test_a_source_that_hangs_in_python_is_skipped_as_timeout(videos, tmp_path):
    sources = video_folder(*videos)[5:8]
    config = dataclasses.replace(CONFIG, item_timeout=1.0)
    hanging = sources[:1] + [small_videos.Hangs(sources[1].key, sources[1].origin)] + sources[2:]
    handler = signal.getsignal(signal.SIGALRM)
    (tmp_path / "hangs").mkdir()
    started = time.monotonic()
    sidecar = write_shard(tmp_path / "hangs", 0, hanging, config)
    assert time.monotonic() - started < 10  # 1 s for the hang and the reading of the others
    assert sidecar["skipped"] == [{"key": sources[1].key, "origin": sources[1].origin, "reason": "timeout",
                                   "message": "no result after 1 s"}]
    assert sidecar["pairs"] == 4  # the others' pairs, the same bytes as without the hung one
    assert (tmp_path / "hangs" / "shard-000000.tar").read_bytes() == _shard(_without(sources, 1), tmp_path, config)
    assert signal.getsignal(signal.SIGALRM) is handler and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    # outside the main thread there is no soft limit (no SIGALRM handler can be set there)
    result = {}
    thread = threading.Thread(target=lambda: result.update(write_shard(tmp_path, 1, sources, config)))
    thread.start()
    thread.join()
    assert result["pairs"] == 6 and not result["skipped"]


def test_a_hang_the_timer_cannot_end_ends_its_process_and_the_shard_is_written_without_it(videos, baseline,
                                                                                          tmp_path):
    """One worker (a child process, since there is a time limit). Two sources of the last shard
    stand in for hangs in C, with SIGALRM blocked. After 1 + 2 s the watchdog ends the process
    and the shard is written again: that attempt records the first one and skips it, hangs on the
    second, and the next records both. The run goes on, and the main process is untouched."""
    sources = video_folder(*videos)[:9]
    config = dataclasses.replace(CONFIG, item_timeout=1.0)
    hanging = sources[:6] + [_HangsInItsProcess(**dataclasses.asdict(s), in_c=True) for s in sources[6:8]] \
        + sources[8:]
    started = time.monotonic()
    summary = write_shards(hanging, tmp_path / "shards", config, progress=False)
    assert time.monotonic() - started < 30  # 2 x 3 s of hangs and 3 process starts
    assert summary["failed_shards"] == {} and summary["complete_shards"] == 3
    assert summary["skipped_by_reason"]["timeout"] == 2 and summary["item_timeout"] == 1.0
    hung = [json.loads(line) for line in (tmp_path / "shards" / "shard-000002.hung").read_text().splitlines()]
    assert [(h["key"], h["origin"], h["seconds"]) for h in hung] == [(s.key, s.origin, 3.0) for s in sources[6:8]]
    assert all("Timeout (0:00:03)!" in h["stacks"] and "in problem" in h["stacks"] for h in hung)  # where
    assert not list((tmp_path / "shards").glob("*.watch"))
    sidecar = json.loads((tmp_path / "shards" / "shard-000002.json").read_text())
    assert [(s["key"], s["reason"]) for s in sidecar["skipped"]] == [(s.key, "timeout") for s in sources[6:8]]
    assert sidecar["pairs"] == 2
    tars, expected = _tars(tmp_path / "shards"), _tars(baseline[0])
    assert tars["shard-000000.tar"] == expected["shard-000000.tar"]
    assert tars["shard-000001.tar"] == expected["shard-000001.tar"]
    assert tars["shard-000002.tar"] == _shard(_without(sources[6:9], 0, 1), tmp_path, config)


def test_a_rerun_of_a_finished_folder_writes_nothing_and_other_settings_are_refused(videos, baseline, tmp_path):
    sources = video_folder(*videos)[:6]
    write_shards(sources, tmp_path, CONFIG, progress=False)
    assert write_shards(sources, tmp_path, CONFIG, progress=False)["written_this_run"] == 0
    other = ShardConfig(read=ReadOptions(pairs_per_video=3), shard_size=3, frame="npy")
    with pytest.raises(InputError, match="out"):
        write_shards(sources, tmp_path, other, progress=False)
    with pytest.raises(InputError, match="out"):
        write_shards(sources[:5], tmp_path, CONFIG, progress=False)
    summary = write_shards(sources, tmp_path, other, overwrite=True, progress=False)
    assert summary["written_this_run"] == 2 and len(complete_shards(tmp_path)) == 2
    # the time limit decides which slow items are skipped, not the bytes of a pair: not refused
    quick = dataclasses.replace(other, item_timeout=5.0)
    assert write_shards(sources, tmp_path, quick, progress=False)["written_this_run"] == 0


def test_settings_are_checked(tmp_path):
    with pytest.raises(InputError, match="frame"):
        ShardConfig(frame="png")
    with pytest.raises(InputError, match="shard_size"):
        ShardConfig(shard_size=0)
    with pytest.raises(InputError, match="transform"):
        ShardConfig(read=ReadOptions(preprocessing=Preprocessing(transform="squash")))
    with pytest.raises(InputError, match="workers"):
        write_shards([], tmp_path, workers=0)


def test_item_timeout_flag():
    from avsdk.training.shards import parse_args

    base = ["--videos", "clips", "--out", "shards"]
    assert parse_args(base).item_timeout == ShardConfig.item_timeout == 60.0
    assert [parse_args(base + ["--item-timeout", text]).item_timeout for text in ("2.5", "0", "none")] == [2.5, None,
                                                                                                         None]


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "60", True])
def test_a_bad_item_timeout_is_refused(value):
    with pytest.raises(InputError) as caught:
        ShardConfig(item_timeout=value)
    assert_refusal(caught.value, "item_timeout", re.escape(f"seconds > 0, or None for no limit, received {value!r}"))


def test_loader_workers_and_processes_each_read_their_own_shards(baseline, monkeypatch):
    out, _ = baseline
    everything = [s["key"] for s in shard_dataset(out)]
    batches = list(shard_loader(out, batch_size=4, num_workers=2))
    assert sorted(k for b in batches for k in b["key"]) == sorted(everything)
    assert batches[0]["frame"].shape == (4, 224, 224, 3) and batches[0]["audio"].shape == (4, 3, 1, 96, 64)
    seen = []
    for rank in range(2):  # as torchrun sets them
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        seen.append([k for b in shard_loader(out, batch_size=5, num_workers=2) for k in b["key"]])
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == sorted(everything)


def test_a_manifest_stores_masks_and_boxes(tmp_path):
    import soundfile
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / "f.png")
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "m.png")
    soundfile.write(tmp_path / "s.wav", 0.2 * np.sin(np.arange(48000) / 5.0), 16000)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"image": "f.png", "audio": "s.wav", "label": "hum",
                                                      "box": [1, 2, 30, 20], "mask": "m.png"}) + "\n")
    write_shards(read_manifest(tmp_path / "pairs.jsonl"), tmp_path / "shards", CONFIG, progress=False)
    (sample,) = list(shard_dataset(tmp_path / "shards"))
    assert sample["mask"] == (tmp_path / "m.png").read_bytes()
    assert sample["meta"]["box"] == [1, 2, 30, 20] and sample["meta"]["size"] == [40, 50]
    np.testing.assert_array_equal(sample["audio"], audio_array(tmp_path / "s.wav")[0])


def test_records_give_training_the_audio_of_the_original_samples(tiny_benchmark, tmp_path):
    """A shard of the real-parts train split gives training.data the very inputs the split's
    files give."""
    from avsdk.datasets import load_split
    from avsdk.training.data import clip_audio, open_frame
    from avsdk.training.ingest import benchmark_sources

    write_shards(benchmark_sources(tiny_benchmark, "train"), tmp_path, CONFIG, progress=False)
    records = load_records(tmp_path)
    samples = load_split(tiny_benchmark, "train")
    assert [r.label for r in records] == [s.label for s in samples]
    for record, sample in zip(records[:3], samples):
        np.testing.assert_array_equal(clip_audio(record).numpy(), clip_audio(sample).numpy())
        assert open_frame(record).size == (224, 224)  # the benchmark's frames are 224 already
    parts = [load_records(tmp_path, rank, 2) for rank in range(2)]
    assert sorted(r.key for part in parts for r in part) == [r.key for r in records]


@pytest.mark.slow
def test_torchrun_trains_two_processes_on_their_own_shards(tiny_benchmark, tmp_path):
    """The fast mode on shards under torchrun (gloo on the CPU): 12 train clips in 4 shards of 3,
    two shards (6 clips) a process: one batch of 4 an epoch each."""
    from avsdk.training.ingest import benchmark_sources

    write_shards(benchmark_sources(tiny_benchmark, "train"), tmp_path / "shards",
                 ShardConfig(shard_size=3), progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "avsdk.training.train", "--data", str(tiny_benchmark), "--shards", str(tmp_path / "shards"),
               "--out", str(tmp_path / "run"), "--mode", "fast", "--epochs", "2", "--batch-size", "4",
               "--clips-per-class", "2", "--fast-views", "2", "--positive-region", "map", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"epoch"')]
    assert [r["epoch"] for r in records] == [1, 2]
    summary = json.loads(done.stdout[done.stdout.index("\n{\n") + 1:])
    assert summary["steps"] == 2  # one step an epoch on each process


def test_the_full_mode_trains_on_shards_with_loader_workers(tiny_benchmark, tmp_path):
    """The full mode reads the shards' records (fresh views each epoch, in DataLoader workers);
    no feature cache is written."""
    from avsdk.training.config import TrainConfig
    from avsdk.training.ingest import benchmark_sources
    from avsdk.training.train import train

    write_shards(benchmark_sources(tiny_benchmark, "train"), tmp_path / "shards", ShardConfig(shard_size=5),
                 progress=False)
    summary = train(TrainConfig(data=str(tiny_benchmark), out=str(tmp_path / "run"), shards=str(tmp_path / "shards"),
                                mode="full", epochs=1, batch_size=4, clips_per_class=2, segment_size=64,
                                num_workers=2, max_steps=2, progress=False))
    assert summary["steps"] == 2 and (tmp_path / "run" / "best.pt").is_file()
    assert not (tmp_path / "shards" / "features").exists()
