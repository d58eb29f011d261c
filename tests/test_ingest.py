"""Data in (avsdk.training.ingest): folders of videos and manifests become (frame, sound) pairs
equal to avsdk.preprocess's; every bad item is skipped with its reason, none stops a run."""
from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest

from avsdk.errors import InputError

av = pytest.importorskip("av", reason="PyAV (extra 'video') is not installed")

from avsdk.preprocess import Preprocessing, audio_array  # noqa: E402
from avsdk.training.ingest import (  # noqa: E402
    Pair,
    ReadOptions,
    Skipped,
    read_manifest,
    read_pairs,
    video_folder,
)
from avsdk.video import read_clip  # noqa: E402

import small_videos  # noqa: E402


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return small_videos.make_folder(tmp_path_factory.mktemp("ingest"))


def _read(sources, options=ReadOptions()):
    items = [item for source in sources for item in read_pairs(source, options)]
    return [i for i in items if isinstance(i, Pair)], [i for i in items if isinstance(i, Skipped)]


def test_a_folder_lists_nested_videos_only(videos):
    folder, labels = videos
    sources = video_folder(folder, labels)
    origins = [s.origin for s in sources]
    assert len(sources) == 24 + len(small_videos.BAD) and origins == sorted(origins)
    assert "notes.txt" not in origins and "low/deep/clip00.mp4" in origins
    assert len({s.key for s in sources}) == len(sources) and not any("." in s.key for s in sources)


def test_every_bad_video_is_skipped_with_its_reason(videos):
    pairs, skipped = _read(video_folder(*videos))
    assert len(pairs) == 24
    assert {s.origin: s.reason for s in skipped} == small_videos.BAD
    assert all(s.message for s in skipped)


def test_labels_name_videos_by_path_with_or_without_suffix(videos):
    pairs, _ = _read(video_folder(*videos))
    for pair in pairs:
        assert pair.label == pair.origin.split("/")[0]  # the class folder the generator used
    unlabelled = [s for s in video_folder(videos[0]) if s.label is None]
    assert len(unlabelled) == 24 + len(small_videos.BAD)  # no labels file: no label, nothing skipped for it


def test_pairs_are_evenly_spaced_and_equal_what_avsdk_preprocess_makes(videos):
    folder, labels = videos
    source = next(s for s in video_folder(folder, labels) if s.origin == "low/deep/clip00.mp4")  # 2.0 s
    pairs, skipped = _read([source], ReadOptions(pairs_per_video=4))
    assert not skipped
    assert [p.time for p in pairs] == pytest.approx([0.25, 0.75, 1.25, 1.75])
    assert [p.key for p in pairs] == [f"{source.key}_{i}" for i in range(4)]
    for pair in pairs:
        clip = read_clip(folder / pair.origin, pair.time)
        heard, window_clip, _ = audio_array(clip.audio, clip.sample_rate, Preprocessing())
        np.testing.assert_array_equal(pair.frame, clip.frame)
        np.testing.assert_array_equal(pair.heard, heard)
        np.testing.assert_array_equal(pair.clip, window_clip.astype(np.float32))
        assert pair.heard.shape == (3, 1, 96, 64) and pair.clip.shape == (48000,)
        assert pair.level_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.5)  # the tone's RMS


def test_times_outside_a_video_are_skipped_and_the_others_kept(videos):
    folder, labels = videos
    source = next(s for s in video_folder(folder, labels) if s.origin == "low/deep/clip00.mp4")
    pairs, skipped = _read([source], ReadOptions(times=(1.0, 3.5)))
    assert [p.time for p in pairs] == [1.0]
    assert [(s.key, s.reason) for s in skipped] == [(f"{source.key}_1", "time_outside")]


def test_the_waveform_input_of_another_rate(videos):
    folder, labels = videos
    prep = Preprocessing(audio="waveform", sample_rate=22050)
    pairs, _ = _read(video_folder(folder, labels)[5:6], ReadOptions(preprocessing=prep))
    assert pairs[0].heard.shape == (66150,)


def test_an_unexpected_failure_is_a_skip_not_a_crash(videos, monkeypatch):
    from avsdk import video

    def broken(*args, **kwargs):
        raise RuntimeError("decoder fell over")

    monkeypatch.setattr(video, "read_clip", broken)
    pairs, skipped = _read(video_folder(*videos)[5:7])
    assert not pairs and [s.reason for s in skipped] == ["error", "error"]
    assert "RuntimeError: decoder fell over" in skipped[0].message


def test_read_options_refuse_bad_values():
    with pytest.raises(InputError, match="pairs_per_video"):
        ReadOptions(pairs_per_video=0)
    with pytest.raises(InputError, match="times"):
        ReadOptions(times=(-1.0,))
    with pytest.raises(InputError, match="silence_db"):
        ReadOptions(silence_db=float("nan"))


# ----------------------------------------------------------------------------- manifests
@pytest.fixture(scope="module")
def manifest_rows(videos, tmp_path_factory):
    """Rows of every kind, with the reason each one is skipped for (None: a pair)."""
    import soundfile
    from PIL import Image

    folder = tmp_path_factory.mktemp("manifest")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(folder / f"f{i}.png")
        t = np.arange(5 * 22050) / 22050
        soundfile.write(folder / f"s{i}.wav", 0.3 * np.sin(2 * np.pi * 330 * (i + 1) * t), 22050)
    Image.fromarray(np.uint8(rng.integers(0, 2, (60, 80)) * 255)).save(folder / "m0.png")
    soundfile.write(folder / "quiet.wav", np.zeros(16000 * 3), 16000)
    soundfile.write(folder / "blip.wav", 0.3 * np.ones(4000), 16000)  # 0.25 s
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    video = str(videos[0] / "high/clip01.mp4")
    rows = [
        ({"image": "f0.png", "audio": "s0.wav", "label": "a", "box": [3, 4, 50, 40], "mask": "m0.png"}, None),
        ({"image": "f1.png", "audio": "s1.wav", "label": "b", "start": 0.5}, None),
        ({"video": video, "time": 1.0, "label": "c"}, None),
        ({"image": "f2.png", "label": "a"}, "bad_row"),  # no audio
        ({"image": "f2.png", "audio": "s2.wav", "box": [1, 2, 3]}, "bad_row"),
        ({"image": "gone.png", "audio": "s2.wav"}, "missing_file"),
        ({"image": "broken.png", "audio": "s2.wav"}, "unreadable_image"),
        ({"image": "f2.png", "audio": "broken.wav"}, "unreadable_audio"),
        ({"image": "f2.png", "audio": "quiet.wav"}, "silent"),
        ({"image": "f2.png", "audio": "blip.wav"}, "too_short"),
    ]
    return folder, rows


def _write_csv(path, rows):
    columns = ["image", "audio", "video", "time", "start", "label", "box", "mask"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for row, _ in rows:
            writer.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})


def test_manifests_in_csv_and_json_lines_give_the_same_pairs_and_skips(manifest_rows):
    folder, rows = manifest_rows
    _write_csv(folder / "pairs.csv", rows)
    (folder / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row, _ in rows) + "{not json\n")
    from_csv, from_jsonl = read_manifest(folder / "pairs.csv"), read_manifest(folder / "pairs.jsonl")
    assert [s.origin for s in from_csv][:2] == ["pairs.csv:2", "pairs.csv:3"]  # line numbers, after the header
    results = []
    for sources in (from_csv, from_jsonl):
        pairs, skipped = _read(sources)
        reasons = {s.origin: s.reason for s in skipped}
        assert [reasons.get(s.origin) for s in sources[: len(rows)]] == [reason for _, reason in rows]
        results.append(pairs)
    assert reasons[from_jsonl[-1].origin] == "bad_row"  # the line that is not JSON
    for a, b in zip(*results):
        assert (a.key, a.label, a.box, a.mask, a.time) == (b.key, b.label, b.box, b.mask, b.time)
        np.testing.assert_array_equal(a.heard, b.heard)
    first, second, third = results[0]
    assert first.box == (3, 4, 50, 40) and first.mask == str(folder / "m0.png") and first.frame.shape == (60, 80, 3)
    np.testing.assert_array_equal(first.heard, audio_array(folder / "s0.wav")[0])
    np.testing.assert_array_equal(second.heard, audio_array(folder / "s1.wav", start=0.5)[0])
    assert second.window == pytest.approx((0.5, 3.5)) and third.time == 1.0


def test_a_manifest_that_is_not_there_is_refused(tmp_path):
    with pytest.raises(InputError, match="manifest"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="folder"):
        video_folder(tmp_path / "nope")


def test_skips_count_by_reason(videos):
    _, skipped = _read(video_folder(*videos), ReadOptions(pairs_per_video=2))
    # a source that fails as a whole counts once; pairs of a readable video count each
    assert Counter(s.reason for s in skipped) == {"undecodable": 1, "no_sound_track": 1, "too_short": 2,
                                                 "silent": 2, "unlabelled": 1}
