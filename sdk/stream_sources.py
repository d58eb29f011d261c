"""Where a stream's frames and sound come from (avsdk.stream consumes them; docs/streams.md).

    FileSource("clip.mp4")                          every frame, the sound centred on it
    LiveSource("rtsp://cam/1")                      what FFmpeg opens: a camera, a URL
    LiveSource("/dev/video0", format="v4l2", audio="default", audio_format="pulse")
    PushSource()                                    frames and sound the application pushes

A source hands the stream batches of ``Item``: a frame, its time, and the sound the model hears
with it, cut from a buffer of sound by one of two rules:

    file: the clip_seconds centred on the frame, as Localizer.localize_video hears them: cut
          at the video's start and at the sound's end (a shorter window is heard whole,
          tiled), silent where the sound track has not begun;
    live: the clip_seconds just before the frame, silent where no sound was received.

Live sources never make the stream fall behind: frames ready for the model beyond the batch
size it takes next are dropped, oldest first, and counted.
"""
from __future__ import annotations

import threading
import time as clock
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from avsdk.errors import InputError, bad_input, require
from avsdk.stream_sound import SAMPLE_RATE, Item, SoundBuffer, is_finite_number, resampled_samples

#: seconds of picture a live frame waits for its sound: a frame this much older than the
#: newest one goes to the model with the sound there is (silence for the rest), so a microphone
#: that stops delays the picture by at most this, and frames never pile up
SOUND_WAIT = 1.0
_SOUND_BEFORE_FRAMES = 60.0  # seconds: a first frame up to this much older than the sound is still heard
_MIN_SOUND = 400 / SAMPLE_RATE  # one STFT window (avsdk.melspec): less is heard as silence


def _mono(samples, argument: str) -> np.ndarray:
    """Pushed sound ([T] or [T, channels], float or integer PCM) as mono float32."""
    from avsdk.audio import check_audio, pcm_to_unit

    x = check_audio(samples, argument)
    if x.dtype.kind in "iu":
        x = pcm_to_unit(x)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return np.array(x, dtype=np.float32)  # a copy: the caller may reuse its buffer


# ------------------------------------------------------------------------- files


class FileSource:
    """Every frame of a video file (those ``select`` keeps), each with the clip_seconds of sound
    centred on it; nothing is dropped.

    Times are avsdk.video's: seconds from the start of the file. ``audio``, a separate sound
    file, has its own start as time 0.
    """

    def __init__(self, path, audio=None):
        self.path, self.audio = Path(path), None if audio is None else Path(audio)
        self.name = str(path)

    def _open(self, av, path: Path, argument: str, kind: str):
        if not path.is_file():
            raise bad_input(argument, f"an existing {'video' if argument == 'source' else 'sound'} file", str(path),
                            described=True)
        try:
            container = av.open(str(path))
        except av.FFmpegError as exc:
            raise bad_input(argument, "a media file FFmpeg can read", f"{path} ({exc})", described=True) from exc
        stream = next((s for s in container.streams if s.type == kind), None)
        if stream is None:
            container.close()
            what = ("a video with a picture stream" if kind == "video" else
                    "a video with a sound track (or audio=, a separate sound file)" if argument == "source"
                    else "a media file with a sound track")
            raise bad_input(argument, what, f"{path} (no {'picture' if kind == 'video' else 'sound'} stream)",
                            described=True)
        return container, stream

    def start(self, select: Callable[[float], bool], batch_size: int, clip_seconds: float) -> None:
        """Open the file (InputError naming ``source`` or ``audio`` now, not at the first frame)."""
        from avsdk.video import start_of

        av = require("av", "video", "reading video files")
        self._av, self._select, self._batch, self._clip = av, select, batch_size, clip_seconds
        self._picture, video = self._open(av, self.path, "source", "video")
        try:
            self._sound, sound = self._open(av, self.audio or self.path, "audio" if self.audio else "source", "audio")
        except BaseException:
            self._picture.close()
            raise
        picture_streams = [s for s in self._picture.streams if s.type in ("video", "audio")]
        self._frames = self._picture.decode(video)
        self._origin = start_of(self._picture, picture_streams)
        self._sound_origin = self._origin if self.audio is None else start_of(self._sound, [sound])
        self._sounds = self._sound.decode(sound)
        self._rate = video.average_rate

    def batches(self) -> Iterator[tuple[list[Item], int]]:
        """Batches of at most batch_size items, and 0 (nothing is dropped); an FFmpeg error midway
        comes after the batch of the frames before it, as an InputError naming the file."""
        buffer, batch, error, previous = SoundBuffer(), [], None, None
        resampler = self._av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        half, sound_done = self._clip / 2.0, False
        try:
            for frame in self._frames:
                time = self._time(frame, previous)
                previous = time
                if time is None or not self._select(time):
                    continue
                while not sound_done and (buffer.end is None or buffer.end < time + half):
                    chunk = next(self._sounds, None)
                    if chunk is None:
                        sound_done = True
                        buffer.append(resampled_samples(resampler, None), SAMPLE_RATE)
                    else:
                        begins = None if chunk.time is None else chunk.time - self._sound_origin
                        buffer.append(resampled_samples(resampler, chunk), SAMPLE_RATE, begins)
                first, last = max(0.0, time - half), time + half
                if sound_done:  # the window stops where the sound does
                    last = min(last, buffer.end if buffer.end is not None else first)
                if last - first < _MIN_SOUND:  # no sound left to hear: silence, the whole clip
                    sound = np.zeros(round(self._clip * SAMPLE_RATE), np.float32)
                else:
                    sound = buffer.cut(first, last)
                buffer.forget(first)
                batch.append(Item(time, frame.to_ndarray(format="rgb24"), sound, SAMPLE_RATE, first))
                if len(batch) == self._batch:
                    yield batch, 0
                    batch = []
        except self._av.FFmpegError as exc:
            error = exc
        finally:
            self.close()
        if batch:
            yield batch, 0
        if error is not None:
            at = "" if previous is None else f" after {previous:.3f} s"
            raise InputError(f"source: {self.name} could not be read to its end ({error}){at}; "
                             "the frames before were localized", "source") from error

    def _time(self, frame, previous: float | None) -> float | None:
        """The frame's time; one without a timestamp follows the one before by a frame period."""
        if frame.time is not None:
            return frame.time - self._origin
        if previous is None or not self._rate:
            return None
        return previous + float(1 / self._rate)

    def close(self) -> None:
        for name in ("_picture", "_sound"):
            container = self.__dict__.pop(name, None)
            if container is not None:
                container.close()


# ------------------------------------------------------------------------- pushed and live


class PushSource:
    """Frames and sound that the application pushes, from any threads, to ``Localizer.stream``.

        source = PushSource()
        for result in loc.stream(source):       # in the thread that reads the results
            ...
        source.push_audio(samples, 48000)       # from the microphone's callback
        source.push_frame(rgb, time)            # from the camera's: seconds, the sound's clock
        source.close()                          # the stream ends after the frames it holds

    Times are seconds on one clock for frames and sound: sound pushed without a ``time`` follows
    the sound before it (the first begins at 0.0). A frame waits until sound up to its time has
    been pushed, until a frame SOUND_WAIT seconds newer arrives, or until the source closes; it
    is then ready, heard with the clip_seconds just before it. Ready frames beyond the batch the
    model takes next are dropped, oldest first, and counted (StreamResult.dropped): the model
    always gets the newest frames, never a backlog. Pushes after ``close`` are ignored.
    """

    def __init__(self):
        self.name = "push source"
        self._lock = threading.Condition()
        self._sound = SoundBuffer()
        self._queue: deque[tuple[float, np.ndarray]] = deque()
        self._select: Callable[[float], bool] = lambda time: True
        self._batch, self._clip = 1, 3.0
        self._started = self._closed = self._sound_ended = False
        self._error: BaseException | None = None
        self._dropped = 0
        self._newest: float | None = None

    def push_frame(self, frame, time: float) -> None:
        """Queue ``frame`` (RGB uint8 [H, W, 3], copied), shown at ``time`` seconds (increasing).

        Raises:
            InputError: naming ``frame`` or ``time``.
        """
        array = np.asarray(frame)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
            raise bad_input("frame", "an RGB uint8 array [H, W, 3]", frame)
        if not is_finite_number(time):
            raise bad_input("time", "a finite number of seconds", time)
        with self._lock:
            if self._closed:
                return
            if self._newest is not None and time <= self._newest:
                raise bad_input("time", f"seconds after the frame before ({self._newest:g})", time)
            self._newest = float(time)
            if self._select(float(time)):
                self._queue.append((float(time), array.copy()))
            self._changed()

    def push_audio(self, samples, sample_rate: int, time: float | None = None) -> None:
        """Add sound: ``samples`` [T] or [T, channels] (float in [-1, 1] or integer PCM) at
        ``sample_rate`` Hz (the same for every push), beginning at ``time`` seconds (None: right
        after the sound before). A gap is heard as silence; samples at times already pushed
        are dropped.

        Raises:
            InputError: naming ``samples``, ``sample_rate`` or ``time``.
        """
        from avsdk.audio import check_rate

        rate = check_rate(sample_rate)
        if not float(rate).is_integer():
            raise bad_input("sample_rate", "a whole number of Hz", sample_rate)
        if time is not None and not is_finite_number(time):
            raise bad_input("time", "None or a finite number of seconds", time)
        mono = _mono(samples, "samples")
        with self._lock:
            if self._closed:
                return
            self._sound.append(mono, int(rate), None if time is None else float(time))
            self._changed()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream: the newest batch of the frames held still goes to the model (with the
        sound there is). With ``error`` (the capture failed), the stream then raises an
        InputError naming this source, after those results."""
        with self._lock:
            if not self._closed:
                self._closed, self._error = True, error
            self._changed()  # every frame held is ready now: the newest batch of them stays

    def _end_sound(self) -> None:
        """No more sound will come: frames stop waiting for it."""
        with self._lock:
            self._sound_ended = True
            self._changed()

    # -- the stream's side ---------------------------------------------------------------
    def start(self, select: Callable[[float], bool], batch_size: int, clip_seconds: float) -> None:
        with self._lock:
            if self._started:
                raise bad_input("source", "a source that no other stream reads", self.name, described=True)
            self._started = True
            self._select, self._batch, self._clip = select, batch_size, clip_seconds
            self._queue = deque(item for item in self._queue if select(item[0]))
            self._changed()

    def _ready(self) -> int:
        """How many frames at the head of the queue can go to the model."""
        count = 0
        for time, _ in self._queue:
            heard = self._sound.end is not None and self._sound.end >= time
            waited = self._newest - time >= SOUND_WAIT - 1e-9  # (1.2 - 0.2 is 0.999...)
            if not (heard or self._closed or self._sound_ended or waited):
                break
            count += 1
        return count

    def _changed(self) -> None:
        """Drop the ready frames beyond one batch (oldest first) and the sound no frame will
        hear, and wake the stream."""
        extra = self._ready() - self._batch
        for _ in range(max(0, extra)):
            self._queue.popleft()
            self._dropped += 1
        self._forget()
        self._lock.notify_all()

    def _forget(self) -> None:
        """Drop the sound before the window of the oldest frame held or to come (later frames
        come later; before the first frame, _SOUND_BEFORE_FRAMES seconds are kept)."""
        if self._queue or self._newest is not None:
            self._sound.forget((self._queue[0][0] if self._queue else self._newest) - self._clip)
        elif self._sound.end is not None:
            self._sound.forget(self._sound.end - self._clip - _SOUND_BEFORE_FRAMES)

    def batches(self) -> Iterator[tuple[list[Item], int]]:
        while True:
            with self._lock:
                while not self._ready() and not (self._closed and not self._queue):
                    self._lock.wait()
                count = min(self._ready(), self._batch)
                if not count:
                    break
                taken = [self._queue.popleft() for _ in range(count)]
                items = [Item(time, frame, self._sound.cut(time - self._clip, time), self._sound.rate or SAMPLE_RATE,
                              time - self._clip) for time, frame in taken]
                self._forget()
                dropped = self._dropped
            yield items, dropped
        if self._error is not None:
            raise InputError(f"source: {self.name} failed ({self._error}); the frames before were localized",
                             "source") from self._error


class LiveSource(PushSource):
    """A live picture and sound that FFmpeg opens: a camera and microphone, an RTSP or HTTP URL,
    a lavfi graph; read by threads that push into this source (PushSource's timing and drop
    policy apply).

    Args:
        url: what ``av.open`` opens: "rtsp://...", "/dev/video0", ...
        format, options: passed to ``av.open`` (e.g. "v4l2", {"video_size": "640x480"}).
        audio, audio_format, audio_options: a separate sound source (e.g. "default" with
            "pulse", "hw:0" with "alsa"); None takes the sound track of ``url``.

    Times are seconds since the stream began: each source's timestamps, counted from its first
    one, and a separate sound source's set off by when its first sound arrived.
    """

    def __init__(self, url: str, format: str | None = None, options: dict | None = None, audio: str | None = None,
                 audio_format: str | None = None, audio_options: dict | None = None):
        super().__init__()
        for argument, value in (("source", url), ("audio", audio)):
            if value is not None and not isinstance(value, (str, Path)):
                raise bad_input(argument, "a URL, device or file name (str)", value)
        for argument, value in (("options", options), ("audio_options", audio_options)):
            if value is not None and not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
                raise bad_input(argument, "None or a dict of FFmpeg options {name: value}", value)
        self.name = str(url)
        self._sources = [(str(url), format, options, "source")]
        if audio is not None:
            self._sources.append((str(audio), audio_format, audio_options, "audio"))
        self._threads: list[threading.Thread] = []
        self._began: float | None = None  # time.monotonic() of the first timestamp read

    def start(self, select: Callable[[float], bool], batch_size: int, clip_seconds: float) -> None:
        av = require("av", "video", "reading live sources")
        if self._started:  # before opening anything a second time
            raise bad_input("source", "a source that no other stream reads", self.name, described=True)
        opened = []
        try:
            for url, format, options, argument in self._sources:
                try:
                    container = av.open(url, format=format, options={k: str(v) for k, v in (options or {}).items()})
                except av.FFmpegError as exc:
                    raise bad_input(argument, "a source FFmpeg can open", f"{url!r} ({exc})", described=True) from exc
                opened.append(container)
                kinds = ("video", "audio") if argument == "source" and len(self._sources) == 1 else (
                    ("video",) if argument == "source" else ("audio",))
                streams = [next((s for s in container.streams if s.type == kind), None) for kind in kinds]
                if None in streams:
                    missing = "picture" if kinds[streams.index(None)] == "video" else "sound"
                    expected = (f"a source with a {missing} stream" if len(kinds) == 1 else
                                "a source with a picture and a sound track (or audio=, a separate sound source)")
                    raise bad_input(argument, expected, f"{url!r} (no {missing} stream)", described=True)
                self._threads.append(threading.Thread(target=self._read, args=(av, container, streams, argument),
                                                      name=f"avsdk {argument} reader", daemon=True))
        except BaseException:
            for container in opened:
                container.close()
            self._threads = []
            raise
        super().start(select, batch_size, clip_seconds)
        for thread in self._threads:
            thread.start()

    def _read(self, av, container, streams, argument: str) -> None:
        """Decode ``container`` until it ends or the source closes; push what it gives."""
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        shift = None  # seconds added to this container's timestamps
        try:
            for packet in container.demux(*streams):
                if self._closed:
                    return
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    if shift is None:
                        now = clock.monotonic()
                        with self._lock:
                            self._began = self._began if self._began is not None else now
                        shift = (now - self._began) - frame.time
                    if packet.stream.type == "video":
                        if self._newest is None or frame.time + shift > self._newest:  # else a repeated timestamp
                            self.push_frame(frame.to_ndarray(format="rgb24"), frame.time + shift)
                    else:
                        samples = resampled_samples(resampler, frame)
                        if samples.size:  # a resampler may hold back a first frame's few samples
                            self.push_audio(samples, SAMPLE_RATE, frame.time + shift)
            if argument == "source":
                self.close()
            else:
                self._end_sound()
        except Exception as exc:  # FFmpeg's errors, a camera unplugged: the stream raises it
            self.close(error=exc)
        finally:
            container.close()
