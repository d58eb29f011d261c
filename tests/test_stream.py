"""Localizer.stream: files (every frame, the sound centred on it, as localize_video hears it),
pushed frames and sound (the sound before each frame, newest frames first when the model is
slow), live sources FFmpeg opens, batching, smoothing, and the video writer.

The oracle for what a frame hears is the Localizer itself: a file's results must equal
``localize_video`` at the frame's time, a pushed frame's must equal ``loc(frame, window)`` on
the window cut by hand from the whole pushed sound.
"""
from __future__ import annotations

import threading
import time as clock
from fractions import Fraction

import numpy as np
import pytest

from small_videos import add_tracks, mux_pictures, mux_sound

from avsdk.errors import InputError
from avsdk.localizer import Localizer
from avsdk.stream import SOUND_WAIT, LiveSource, PushSource, StreamResult
from avsdk.visibility import Calibration

av = pytest.importorskip("av", reason="PyAV (extra 'video') is not installed")

RATE = 16000
# p(on screen) = sigmoid((level_db + 50) / 20): silence ~0.08, the test tone ~0.8
LOUDNESS = Calibration(weights=(0.0, 0.0, 1.0), bias=0.0, mean=(0.0, 0.0, -50.0), scale=(1.0, 1.0, 20.0))


def _maps(frames, audio):
    """A stand-in model, per item: the frame's brightness pooled to 7x7, times one plus the
    spread of its sound's input (so that a frame heard with another frame's sound differs)."""
    frames, audio = np.asarray(frames, np.float64), np.asarray(audio, np.float64)
    b, _, side, _ = frames.shape
    pooled = frames.mean(axis=1).reshape(b, 7, side // 7, 7, side // 7).mean(axis=(2, 4))
    return (pooled * (1.0 + audio.reshape(b, -1).std(axis=1))[:, None, None]).astype(np.float32)


@pytest.fixture
def loc():
    return Localizer(_maps, frontend="numpy", visibility=LOUDNESS)


def _picture(i: int) -> np.ndarray:
    """Frame i: grey 5 * i with a white 12x12 square at x = 3 * i (the map's peak moves)."""
    image = np.full((48, 64, 3), 5 * i, np.uint8)
    image[18:30, 3 * i % 52 : 3 * i % 52 + 12] = 255
    return image


def _tone(start: float, end: float, rate: int = RATE) -> np.ndarray:
    """A 440 Hz tone from start to end seconds whose amplitude at t is 0.05 + t / 10."""
    t = np.arange(round(start * rate), round(end * rate)) / rate
    return ((0.05 + t / 10) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _write(path, times, sound=None, format=None):
    """Frames _picture(i) at ``times`` seconds, MPEG-4 Part 2 with millisecond timestamps; the
    tone from sound[0] to sound[1] seconds as 16-bit PCM (None: no sound track)."""
    with av.open(str(path), "w", format=format) as container:
        video, track = add_tracks(container, "mpeg4", 10, 64, 48, None if sound is None else "pcm_s16le", RATE)
        video.codec_context.time_base = Fraction(1, 1000)
        mux_pictures(container, video, (_picture(i) for i in range(len(times))), (round(t * 1000) for t in times),
                     Fraction(1, 1000))
        if sound is not None:
            mux_sound(container, track, (_tone(*sound) * 32767).astype(np.int16), RATE, first=round(sound[0] * RATE))
    return path


TEN_FPS = [i / 10 for i in range(40)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    paths = {
        "plain": _write(folder / "plain.mkv", TEN_FPS, (0.0, 4.0)),
        "vfr": _write(folder / "vfr.mkv", [0.0, 0.04, 0.3, 0.31, 1.0, 1.7, 2.5], (0.0, 3.0)),
        "silent": _write(folder / "silent.mkv", TEN_FPS[:10]),
        "short-sound": _write(folder / "short.mkv", TEN_FPS, (0.5, 2.0)),  # starts late, ends early
        "long-sound": _write(folder / "long.mkv", TEN_FPS[:20], (0.0, 4.0)),
    }
    data = bytearray(_write(folder / "whole.mp4", TEN_FPS, (0.0, 4.0)).read_bytes())
    data[len(data) // 2 : len(data) // 2 + len(data) // 5] = b"\xff" * (len(data) // 5)
    (folder / "broken.mp4").write_bytes(bytes(data))
    paths["broken"] = folder / "broken.mp4"
    return paths


def _same(result, reference):
    np.testing.assert_allclose(result.similarity, reference.similarity, rtol=1e-6)
    assert result.window == pytest.approx(reference.window, abs=1e-6)
    assert result.on_screen == pytest.approx(reference.on_screen, abs=1e-9)
    assert result.box == reference.box and result.peak == reference.peak


# ------------------------------------------------------------------------- files


@pytest.mark.parametrize("case", ["plain", "short-sound", "long-sound", "vfr"])
def test_a_file_frame_hears_what_localize_video_hears(loc, videos, case):
    results = list(loc.stream(videos[case]))
    for r in results:
        assert isinstance(r, StreamResult) and r.dropped == 0 and r.frame.shape == (48, 64, 3)
        if case == "short-sound" and r.time - 1.5 >= 2.0:
            continue  # the sound has ended before its window: localize_video refuses (see below)
        _same(r.result, loc.localize_video(videos[case], time=r.time))


def test_every_frame_of_a_file_comes_at_its_time(loc, videos):
    assert [r.time for r in loc.stream(videos["plain"])] == pytest.approx(TEN_FPS)
    assert [r.time for r in loc.stream(videos["vfr"])] == pytest.approx([0.0, 0.04, 0.3, 0.31, 1.0, 1.7, 2.5])


def test_windows_are_centred_and_cut_at_the_ends_of_the_video_and_its_sound(loc, videos):
    plain = {round(r.time, 1): r.result.window for r in loc.stream(videos["plain"])}
    assert plain[2.0] == pytest.approx((0.5, 3.5)) and plain[0.5] == pytest.approx((0.0, 2.0))
    assert plain[3.9] == pytest.approx((2.4, 4.0))
    longer = {round(r.time, 1): r.result.window for r in loc.stream(videos["long-sound"])}
    assert longer[1.9] == pytest.approx((0.4, 3.4))  # past the picture's end: the sound is there


def test_frames_after_the_sound_hear_silence(loc, videos):
    """The sound plays from 0.5 to 2.0 s: a frame whose window holds none of it hears a clip of
    silence (its nominal window), and the calibrated answer says so."""
    results = {round(r.time, 1): r for r in loc.stream(videos["short-sound"])}
    assert len(results) == 40
    late = results[3.6]
    assert late.result.window == pytest.approx((2.1, 5.1)) and late.result.on_screen < 0.1
    assert results[1.0].result.on_screen > 0.7
    early = results[0.0]  # the window (0, 1.5) begins with 0.5 s of silence before the sound
    assert early.result.window == pytest.approx((0.0, 1.5))


def test_every_and_fps_select_the_first_frame_at_each_multiple(loc, videos):
    vfr = videos["vfr"]
    assert [r.time for r in loc.stream(vfr, every=0.5)] == pytest.approx([0.0, 1.0, 1.7, 2.5])
    assert [r.time for r in loc.stream(videos["plain"], fps=4)] == pytest.approx(
        [0.0, 0.3, 0.5, 0.8, 1.0, 1.3, 1.5, 1.8, 2.0, 2.3, 2.5, 2.8, 3.0, 3.3, 3.5, 3.8])
    with pytest.raises(InputError, match="^fps: expected None when every= is given"):
        loc.stream(vfr, every=0.5, fps=2)
    for name, bad in (("every", 0), ("fps", -1.0), ("batch_size", 0), ("smoothing", 0.0), ("every", float("nan"))):
        with pytest.raises(InputError, match=f"^{name}: "):
            loc.stream(vfr, **{name: bad})


@pytest.mark.parametrize("batch_size", [3, 7, 64], ids=["B3", "B7", "B64"])
def test_batches_give_the_maps_of_one_frame_at_a_time(videos, batch_size):
    """40 frames: the last batch is not full (B3: 1 frame, B7: 5, B64: all 40)."""
    calls = []

    def counting(frames, audio):
        calls.append(len(frames))
        return _maps(frames, audio)

    one = list(Localizer(_maps, frontend="numpy").stream(videos["plain"]))
    many = list(Localizer(counting, frontend="numpy").stream(videos["plain"], batch_size=batch_size))
    assert calls == [batch_size] * (40 // batch_size) + ([40 % batch_size] if 40 % batch_size else [])
    assert [r.time for r in many] == [r.time for r in one]
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a.result.similarity, b.result.similarity)
        assert a.result.window == b.result.window and a.result.box == b.result.box


def test_a_video_without_sound_is_refused_when_the_stream_opens(loc, videos, tmp_path):
    with pytest.raises(InputError, match=r"^source: expected a video with a sound track \(or audio=.*no sound stream"):
        loc.stream(videos["silent"])
    import soundfile

    soundfile.write(tmp_path / "sound.wav", _tone(0.0, 2.0), RATE)
    results = list(loc.stream(videos["silent"], audio=tmp_path / "sound.wav"))
    assert [round(r.time, 1) for r in results] == TEN_FPS[:10]
    assert results[5].result.window == pytest.approx((0.0, 2.0)) and results[5].result.on_screen > 0.7
    with pytest.raises(InputError, match="^audio: expected an existing sound file"):
        loc.stream(videos["silent"], audio=tmp_path / "missing.wav")


def test_a_file_that_breaks_midway_keeps_the_results_before_it(loc, videos):
    results, error = [], None
    try:
        for r in loc.stream(videos["broken"], batch_size=4):
            results.append(r)
    except InputError as exc:
        error = exc
    assert error is not None and error.argument == "source"
    assert str(error).startswith(f"source: {videos['broken']} could not be read to its end (")
    assert 0 < len(results) < 40
    assert [r.time for r in results] == pytest.approx(TEN_FPS[: len(results)])


def test_a_missing_or_unopenable_source_is_named(loc, tmp_path):
    missing = str(tmp_path / "nothing.mp4")  # not a file: FFmpeg is asked, as for a URL
    with pytest.raises(InputError, match=f"^source: expected a source FFmpeg can open, received '{missing}'"):
        loc.stream(missing)
    with pytest.raises(InputError, match="^source: expected a video file, a URL or device"):
        loc.stream(42)


# ------------------------------------------------------------------------- pushed


def _push_all(source, sound_end, frames, rate=RATE):
    """Push the tone from 0 to sound_end seconds (in 0.1 s chunks), then frames {time: index}."""
    samples = _tone(0.0, sound_end, rate)
    step = rate // 10
    for first in range(0, samples.size, step):
        source.push_audio(samples[first : first + step], rate)
    for t, i in frames.items():
        source.push_frame(_picture(i), t)


def _heard_before(t: float, rate: int = RATE, clip: float = 3.0) -> np.ndarray:
    """The tone pushed from 0 s, between t - clip and t (silence before 0)."""
    whole = _tone(0.0, t, rate)
    before = round((clip - t) * rate)
    return np.concatenate([np.zeros(max(0, before), np.float32), whole[max(0, -before) :]])


@pytest.mark.parametrize("rate", [16000, 44100])
def test_a_pushed_frame_hears_the_clip_before_it(loc, rate):
    source = PushSource()
    results = loc.stream(source, batch_size=4)
    frames = {0.5: 1, 2.0: 2, 3.2: 3, 4.9: 4}
    _push_all(source, 5.0, frames, rate)
    source.close()
    results = list(results)
    assert [r.time for r in results] == list(frames) and all(r.dropped == 0 for r in results)
    for r in results:
        assert r.result.window == pytest.approx((r.time - 3.0, r.time))
        reference = loc(_picture(frames[r.time]), _heard_before(r.time, rate), sample_rate=rate)
        np.testing.assert_allclose(r.result.similarity, reference.similarity, rtol=1e-5)
        assert r.result.on_screen == pytest.approx(reference.on_screen, abs=1e-6)


def test_pushed_sound_may_be_stereo_pcm_and_have_gaps(loc):
    source = PushSource()
    results = loc.stream(source)
    first, last = ((_tone(*span) * 32767).astype(np.int16) for span in ((0.0, 1.0), (2.0, 3.0)))
    source.push_audio(np.stack([first, first], axis=1), RATE)  # [T, 2] int16 PCM
    source.push_audio(last, RATE, time=2.0)  # silence from 1 to 2 s
    source.push_frame(_picture(1), 3.0)
    source.close()
    (result,) = list(results)
    heard = np.concatenate([first, np.zeros(RATE, np.int16), last]).astype(np.float32) / 32768
    reference = loc(_picture(1), heard, sample_rate=RATE)
    np.testing.assert_allclose(result.result.similarity, reference.similarity, rtol=1e-5)


def test_a_pushed_frame_waits_for_its_sound_but_not_longer_than_sound_wait(loc):
    """No sound at all: frame t goes to the model once a frame SOUND_WAIT newer has come."""
    source = PushSource()
    results = loc.stream(source, batch_size=64)  # room for all: nothing is dropped here
    got, done = [], threading.Event()

    def read():
        for r in results:
            got.append(r.time)
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        times = [round(0.1 * i, 1) for i in range(13)]  # 0.0 .. 1.2
        for i, t in enumerate(times):
            source.push_frame(_picture(i), t)
        waited = [t for t in times if times[-1] - t >= SOUND_WAIT - 1e-9]
        deadline = clock.monotonic() + 30
        while len(got) < len(waited) and clock.monotonic() < deadline:
            clock.sleep(0.01)
        clock.sleep(0.1)  # time for a wrong extra result to show
        assert got == waited  # 0.0, 0.1, 0.2: the others still wait for their sound
        source.push_audio(np.zeros(RATE // 2, np.float32), RATE, time=0.7)  # sound up to 1.2 s
    finally:
        source.close()
    assert done.wait(30)
    assert got == times


def test_ready_frames_beyond_the_batch_are_dropped_oldest_first(loc):
    source = PushSource()
    results = loc.stream(source, batch_size=3)
    _push_all(source, 2.0, {0.2: 0, 0.4: 1, 0.6: 2, 0.8: 3, 1.0: 4})  # all ready, nobody reading yet
    source.close()
    results = list(results)
    assert [r.time for r in results] == [0.6, 0.8, 1.0]
    assert [r.dropped for r in results] == [2, 2, 2]


def test_a_slow_model_on_a_live_source_drops_frames_and_never_falls_behind():
    """Frames every 20 ms, a model call of 150 ms: without dropping, the last frame would come
    out ~5 s after it was pushed; with it, each comes out within about two model calls."""
    period, count, model_seconds = 0.02, 40, 0.15

    def slow(frames, audio):
        clock.sleep(model_seconds)
        return _maps(frames, audio)

    source, pushed = PushSource(), {}
    results = Localizer(slow, frontend="numpy").stream(source)

    def camera():
        try:
            began = clock.monotonic()
            for i in range(count):
                clock.sleep(max(0.0, began + (i + 1) * period - clock.monotonic()))
                source.push_audio(_tone(i * period, (i + 1) * period), RATE)
                t = round((i + 1) * period, 6)
                pushed[t] = clock.monotonic()
                source.push_frame(_picture(i), t)
        finally:
            source.close()

    thread = threading.Thread(target=camera, daemon=True)
    thread.start()
    arrived = [(r, clock.monotonic()) for r in results]
    thread.join(10)
    times = [r.time for r, _ in arrived]
    assert times == sorted(set(times))
    assert times[-1] == pytest.approx(count * period)  # the newest frame is never the one dropped
    dropped = [r.dropped for r, _ in arrived]
    assert dropped == sorted(dropped) and dropped[-1] > 0
    assert len(arrived) + dropped[-1] == count  # every frame localized or counted
    late = max(when - pushed[r.time] for r, when in arrived)
    assert late < 1.2, f"a frame came out {late:.2f} s after it was pushed"


def test_a_failing_source_raises_after_the_results_before(loc):
    source = PushSource()
    results = loc.stream(source)
    _push_all(source, 1.0, {0.5: 1})
    source.close(error=OSError("camera unplugged"))
    first = next(results)
    assert first.time == 0.5
    with pytest.raises(InputError, match=r"^source: push source failed \(camera unplugged\)"):
        next(results)


def test_push_source_refuses_bad_pushes_and_a_second_stream(loc):
    source = PushSource()
    loc.stream(source)
    with pytest.raises(InputError, match="^frame: expected an RGB uint8 array"):
        source.push_frame(np.zeros((4, 4), np.uint8), 0.0)
    source.push_frame(_picture(0), 1.0)
    with pytest.raises(InputError, match=r"^time: expected seconds after the frame before \(1\)"):
        source.push_frame(_picture(1), 1.0)
    source.push_audio(np.zeros(800, np.float32), 16000)
    with pytest.raises(InputError, match="^sample_rate: expected 16000 Hz, the rate of the sound before"):
        source.push_audio(np.zeros(800, np.float32), 8000)
    with pytest.raises(InputError, match="^samples: "):
        source.push_audio(np.full(800, np.nan, np.float32), 16000)
    with pytest.raises(InputError, match="^source: expected a source that no other stream reads"):
        loc.stream(source)
    with pytest.raises(InputError, match="^format: expected None for a PushSource"):
        loc.stream(PushSource(), format="v4l2")


# ------------------------------------------------------------------------- smoothing


def test_smoothing_is_an_exponential_average_of_the_raw_maps_over_time(loc):
    times = [0.5, 0.6, 0.9, 0.95, 2.0]  # uneven gaps: the weight follows the seconds, not the frames

    def run(smoothing):
        source = PushSource()
        results = loc.stream(source, batch_size=len(times), smoothing=smoothing)
        _push_all(source, 2.0, {t: 2 * i for i, t in enumerate(times)})
        source.close()
        return list(results)

    raw, smooth = run(None), run(0.2)
    expected = raw[0].result.similarity
    for i, (a, b) in enumerate(zip(raw, smooth)):
        if i:
            keep = 0.5 ** ((times[i] - times[i - 1]) / 0.2)
            expected = keep * expected + (1 - keep) * a.result.similarity
        np.testing.assert_allclose(b.result.similarity, expected, rtol=1e-5)
        assert b.result.score == pytest.approx(float(expected.max()), rel=1e-5)
        assert b.result.on_screen == a.result.on_screen  # the frame's own calibrated answer
    assert not np.allclose(raw[1].result.similarity, smooth[1].result.similarity)


# ------------------------------------------------------------------------- live (FFmpeg)


GRAPH = "testsrc=duration=2:size=64x48:rate=10[out0];sine=frequency=440:duration=2:sample_rate=16000[out1]"


def test_a_live_source_takes_format_and_every_frame_is_localized_or_counted(loc):
    with pytest.raises(InputError, match="^source: expected a source FFmpeg can open"):
        loc.stream(GRAPH)  # without format="lavfi" FFmpeg reads it as a file name
    results = list(loc.stream(GRAPH, format="lavfi", batch_size=2))
    times = [r.time for r in results]
    assert times == sorted(set(times)) and results
    assert len(results) + results[-1].dropped == 20
    for r in results:
        assert r.result.window == pytest.approx((r.time - 3.0, r.time))


def test_a_live_source_with_a_separate_sound(loc):
    source = LiveSource("testsrc=duration=1:size=64x48:rate=10", format="lavfi",
                        audio="sine=frequency=440:duration=1", audio_format="lavfi")
    results = list(loc.stream(source, batch_size=10))
    assert results and len(results) + results[-1].dropped == 10
    with pytest.raises(InputError, match=r"^source: expected a source with a picture and a sound track \(or audio="):
        loc.stream("testsrc=duration=1", format="lavfi")


# ------------------------------------------------------------------------- writing


def test_the_writer_keeps_times_pads_odd_sizes_and_copies_the_sound(videos, tmp_path):
    from avsdk.video import VideoWriter

    times = [0.0, 0.25, 0.3, 1.0]
    with VideoWriter(tmp_path / "out.mp4", sound_from=videos["short-sound"], rate=10) as out:
        for i, t in enumerate(times):
            out.write(_picture(i)[:47, :63], t)  # 63 x 47: odd sides
    with av.open(str(tmp_path / "out.mp4")) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height, sound.codec_context.name) == (64, 48, "aac")
        frames = list(container.decode(video))
    assert [f.time for f in frames] == pytest.approx(times)
    assert abs(float(frames[1].to_ndarray(format="rgb24").astype(int).mean()) - _picture(1).mean()) < 4
    with av.open(str(tmp_path / "out.mp4")) as container:
        sound = list(container.decode(audio=0))
    # the whole track, at its time (0.5 to 2 s), though the picture ends at 1 s; AAC adds ~64 ms each side
    assert sound[0].time == pytest.approx(0.5, abs=0.1)
    assert sound[-1].time + sound[-1].samples / RATE == pytest.approx(2.0, abs=0.1)
    with VideoWriter(tmp_path / "silent.mkv", sound_from=videos["silent"]) as out:
        out.write(_picture(0), 0.0)
    with av.open(str(tmp_path / "silent.mkv")) as container:
        assert [s.type for s in container.streams] == ["video"]
    with pytest.raises(InputError, match="^target: expected a path ending in .mp4, .mov, .mkv"):
        VideoWriter(tmp_path / "out.avi")
