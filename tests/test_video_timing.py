"""read_clip's clock: time is seconds from the start of the video, whatever timestamp that start
has (MPEG-TS, MKV or MP4 whose streams begin at an offset), and seeking lands on the frame on
screen at that time even where the demuxer's seek overshoots (MPEG-TS, one-keyframe streams).

The synthetic videos show their own clock: frame i (10 fps) is a uniform grey of level 6 * i,
and the sound is a 1 kHz tone whose amplitude is t / 4 at t seconds after the first frame.
"""
from __future__ import annotations

import fractions
import math

import numpy as np
import pytest

from small_videos import add_tracks, mux_pictures, mux_sound

from avsdk.errors import InputError

av = pytest.importorskip("av", reason="PyAV (extra 'video') is not installed")

FPS, SECONDS, RATE, GREY_STEP = 10, 4.0, 16000, 6


def _write(path, *, format=None, offset=0.0, audio_delay=0.0, keyint=10, audio_codec="pcm_s16le"):
    """A SECONDS-long video whose streams start at timestamp ``offset`` (the sound
    ``audio_delay`` later), with a keyframe every ``keyint`` frames."""
    params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0"
    with av.open(str(path), "w", format=format) as container:
        video, sound = add_tracks(container, "libx264", FPS, 64, 48, audio_codec, RATE, {"x264-params": params})
        count = int(SECONDS * FPS)
        mux_pictures(container, video, (np.full((48, 64, 3), GREY_STEP * i, np.uint8) for i in range(count)),
                     (i + round(offset * FPS) for i in range(count)), fractions.Fraction(1, FPS))
        t = np.arange(round(audio_delay * RATE), round(SECONDS * RATE)) / RATE
        tone = (t / SECONDS * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
        mux_sound(container, sound, tone, RATE, first=round((offset + audio_delay) * RATE))


# name: (file name, writer arguments, how far the range's end may pass SECONDS: MP2 pads its
# last frame)
VIDEOS = {
    "mp4-at-0": ("plain.mp4", {}, 0.0),  # the ordinary file: guards the unchanged behaviour
    "ts-offset": ("g.ts", dict(format="mpegts", offset=1.0, audio_delay=0.1, audio_codec="mp2"), 0.1),
    "ts-one-keyframe": ("t.ts", dict(format="mpegts", offset=1.0, audio_delay=0.1, keyint=1000,
                                     audio_codec="mp2"), 0.1),
    "mkv-offset": ("off.mkv", dict(offset=2.0), 0.0),
    "mkv-offset-one-keyframe": ("off1.mkv", dict(offset=2.0, keyint=1000), 0.0),
    "mp4-offset": ("off.mp4", dict(offset=2.0), 0.0),  # an edit list holds the 2 s back
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    if "libx264" not in av.codecs_available:
        pytest.skip("this PyAV build has no libx264 encoder")
    folder = tmp_path_factory.mktemp("videos")
    for name, kwargs, _ in VIDEOS.values():
        _write(folder / name, **kwargs)
    return {key: folder / name for key, (name, _, _) in VIDEOS.items()}


def _frame_index(clip) -> int:
    return int(round(clip.frame.mean() / GREY_STEP))


def _sound_time(samples: np.ndarray) -> float:
    """The clock time a stretch of the tone was recorded at, from its peak amplitude."""
    return float(np.abs(samples).max()) * SECONDS


@pytest.mark.parametrize("case", VIDEOS)
def test_frame_on_screen_at_time(videos, case):
    from avsdk.video import read_clip

    for time in (0.0, 0.05, 0.55, 1.25, 2.05, 3.45, 3.95):
        clip = read_clip(videos[case], time=time, clip_seconds=1.0)
        assert (clip.time, _frame_index(clip)) == (time, math.floor(time * FPS)), case


@pytest.mark.parametrize("case", VIDEOS)
def test_range_is_the_length_of_the_video(videos, case):
    from avsdk.video import read_clip

    path, slack = videos[case], VIDEOS[case][2]
    middle = read_clip(path, clip_seconds=1.0)
    assert SECONDS / 2 <= middle.time <= (SECONDS + slack) / 2
    assert abs(_frame_index(middle) - SECONDS / 2 * FPS) <= 1
    assert _frame_index(read_clip(path, time=SECONDS, clip_seconds=1.0)) == SECONDS * FPS - 1
    with pytest.raises(InputError, match="time"):
        read_clip(path, time=SECONDS + slack + 0.05)


@pytest.mark.parametrize("case", VIDEOS)
def test_sound_window_is_cut_at_the_same_times(videos, case):
    from avsdk.video import read_clip

    for time in (1.0, 2.5):
        audio = read_clip(videos[case], time=time, clip_seconds=1.0, sample_rate=RATE).audio
        assert audio.shape == (RATE,)
        assert _sound_time(audio[:160]) == pytest.approx(time - 0.5, abs=0.05)
        assert _sound_time(audio[-160:]) == pytest.approx(time + 0.5, abs=0.05)


def test_sound_track_starting_late_begins_with_silence(tmp_path):
    from avsdk.video import read_clip

    path = tmp_path / "late.mkv"
    _write(path, offset=2.0, audio_delay=0.5)
    clip = read_clip(path, time=0.5, clip_seconds=2.0, sample_rate=RATE)
    assert _frame_index(clip) == 5
    assert clip.audio.shape == (int(1.5 * RATE),)  # [0, 1.5] s: clipped at the start
    assert not clip.audio[: RATE // 2 - 16].any()
    assert _sound_time(clip.audio[RATE // 2 : RATE // 2 + 160]) == pytest.approx(0.5, abs=0.05)


def test_bad_time_clip_seconds_and_sample_rate_are_input_errors(videos):
    from avsdk.video import read_clip

    bad = [("time", True), ("time", "1"), ("time", math.inf), ("time", math.nan),
           ("clip_seconds", "3"), ("clip_seconds", True), ("clip_seconds", math.inf),
           ("clip_seconds", math.nan), ("clip_seconds", 0.0), ("clip_seconds", -1),
           ("sample_rate", 16000.5), ("sample_rate", 0)]
    for argument, value in bad:
        with pytest.raises(InputError) as caught:
            read_clip(videos["mp4-at-0"], **{argument: value})
        assert caught.value.argument == argument, (argument, value)
    assert read_clip(videos["mp4-at-0"], time=np.float32(1.0), clip_seconds=2).time == 1.0


def _halves(i: int) -> np.ndarray:
    """Frame ``i``: its index in two halves, tens left, units right."""
    image = np.empty((64, 64, 3), np.uint8)
    image[:, :32], image[:, 32:] = 30 + 20 * (i // 10), 30 + 20 * (i % 10)
    return image


@pytest.mark.parametrize("x264", ["", "scenecut=0"], ids=["keyframes-at-cuts", "one-keyframe"])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_mpegts_whose_sound_starts_before_its_picture(tmp_path, rate, x264):
    """A file that used to fail: H.264 at 25 fps (B-frames: its first keyframe is decoded at 0 s,
    shown at 0.08 s) and 44.1 kHz AAC (starting at 0.057 s) in MPEG-TS. MPEG-TS seeks on
    decoding timestamps, so even the last fallback, a seek to the sound's first timestamp,
    landed past the first keyframe: with no other keyframe every time was refused, else a later
    frame was shown. 16 kHz AAC (starting at 0.016 s) always worked."""
    from avsdk.video import read_clip

    if not {"libx264", "aac"} <= set(av.codecs_available):
        pytest.skip("this PyAV build has no libx264 or aac encoder")
    fps, frames, seconds = 25, 100, 4.0
    path = tmp_path / f"aac{rate}.ts"
    with av.open(str(path), "w", format="mpegts") as container:
        video, sound = add_tracks(container, "libx264", fps, 64, 64, "aac", rate,
                                  {"x264-params": x264} if x264 else None)
        mux_pictures(container, video, (_halves(i) for i in range(frames)), range(frames), fractions.Fraction(1, fps))
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        mux_sound(container, sound, tone, rate)
    with av.open(str(path)) as container:
        first = {s.type: float(s.start_time * s.time_base) for s in container.streams}
    start = min(first.values())
    assert first["audio"] < first["video"]  # the case under test: sound first

    def index(clip) -> int:
        tens, units = (int(round((clip.frame[:, half].mean() - 30) / 20)) for half in (slice(4, 28), slice(36, 60)))
        return 10 * tens + units

    for time in (None, 0.0, 0.01, 0.5, 1.0, 2.02, 3.9):
        clip = read_clip(path, time=time, clip_seconds=1.0)
        shown = math.floor((start + clip.time - first["video"]) * fps + 1e-6)
        assert index(clip) == min(frames - 1, max(0, shown)), (rate, time)
        assert clip.audio.size > 0 and np.abs(clip.audio).max() > 0.1
