"""Small videos for the ingest and shard tests, written with PyAV: 64x48 pixels at 10 fps, a few
seconds long, with a sine tone (AAC in MP4), and the bad cases a real folder holds (and Hangs,
a source whose reading never ends).

Frame i of a video is a uniform colour that tells the videos apart; the tone's frequency tells
the classes apart (class "low": 440 Hz, "high": 1760 Hz).
"""
from __future__ import annotations

import csv
import fractions
import signal
import time
from pathlib import Path

import numpy as np

FPS, RATE, WIDTH, HEIGHT = 10, 16000, 64, 48
TONES = {"low": 440.0, "high": 1760.0}


def add_tracks(container, codec: str, fps: int, width: int, height: int, sound: str | None = None,
               rate: int = RATE, options: dict | None = None):
    """A yuv420p video track of ``codec`` at ``fps`` and, when ``sound`` names a codec, a mono
    sound track at ``rate``: (video, sound or None)."""
    video = container.add_stream(codec, rate=fps, options=options or {})
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    track = None
    if sound is not None:
        track = container.add_stream(sound, rate=rate)
        track.layout = "mono"
    return video, track


def mux_pictures(container, track, pictures, pts, time_base: fractions.Fraction) -> None:
    """Encode the RGB ``pictures`` (uint8 [H, W, 3] each) at timestamps ``pts`` (in
    ``time_base``) into the video ``track`` of ``container``, and flush the encoder."""
    import av

    for pixels, at in zip(pictures, pts):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts, frame.time_base = at, time_base
        container.mux(track.encode(frame))
    container.mux(track.encode())


def mux_sound(container, track, samples: np.ndarray, rate: int, first: int = 0) -> None:
    """Encode mono ``samples`` (int16: 16-bit PCM, float32: float) into the sound ``track`` of
    ``container`` in chunks of the codec's frame size (1024 where it has none), the first at
    pts ``first`` (in samples), and flush the encoder."""
    import av

    layout = {np.dtype(np.int16): "s16", np.dtype(np.float32): "flt"}[samples.dtype]
    step = track.codec_context.frame_size or 1024
    for start in range(0, samples.size, step):
        chunk = av.AudioFrame.from_ndarray(samples[None, start : start + step], format=layout, layout="mono")
        chunk.sample_rate, chunk.pts = rate, first + start
        container.mux(track.encode(chunk))
    container.mux(track.encode())


def make_video(path, seconds: float, tone_hz: float = 440.0, *, colour: int = 0, sound: bool = True,
               amplitude: float = 0.5, sound_seconds: float | None = None) -> Path:
    """An MP4 of ``seconds`` (H.264, or MPEG-4 Part 2 without libx264) with ``sound_seconds``
    (default: all of it) of a tone at ``amplitude`` (0: a silent track), or no sound track."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    count = int(round(seconds * FPS))
    with av.open(str(path), "w") as container:
        video, audio = add_tracks(container, codec, FPS, WIDTH, HEIGHT, "aac" if sound else None)
        mux_pictures(container, video, (_picture(colour, i) for i in range(count)), range(count),
                     fractions.Fraction(1, FPS))
        if audio is not None:
            t = np.arange(int(round((seconds if sound_seconds is None else sound_seconds) * RATE))) / RATE
            mux_sound(container, audio, (amplitude * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32), RATE)
    return path


def _picture(colour: int, i: int) -> np.ndarray:
    pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:] = ((colour * 37) % 256, (colour * 91 + 5 * i) % 256, 128)
    pixels[: HEIGHT // 2, : WIDTH // 2] = 255  # a corner that stays put
    return pixels


# bad files of make_folder: name -> the reason ingest gives
BAD = {
    "bad/no_sound.mp4": "no_sound_track",
    "bad/corrupt.mp4": "undecodable",
    "bad/silent.mp4": "silent",
    "bad/short_sound.mp4": "too_short",
    "bad/unlabelled.mp4": "unlabelled",
}


def make_folder(root, good: int = 24) -> tuple[Path, Path]:
    """``good`` labelled videos of 2-4 s in nested folders, the BAD files, a notes.txt that is
    no video, and labels.csv. Returns (folder, labels.csv)."""
    root = Path(root)
    folder = root / "videos"
    rows = []
    for i in range(good):
        label = ("low", "high")[i % 2]
        name = f"{label}/{'deep/' if i % 3 == 0 else ''}clip{i:02d}.mp4"
        make_video(folder / name, 2.0 + (i % 5) * 0.5, TONES[label], colour=i)
        rows.append({"path": name if i % 4 else name.rsplit(".", 1)[0], "label": label})  # with or without suffix
    make_video(folder / "bad/no_sound.mp4", 3.0, sound=False)
    (folder / "bad/corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    make_video(folder / "bad/silent.mp4", 3.0, amplitude=0.0)
    make_video(folder / "bad/short_sound.mp4", 3.0, sound_seconds=0.4)
    make_video(folder / "bad/unlabelled.mp4", 3.0)
    (folder / "notes.txt").write_text("not a video\n")
    rows += [{"path": name, "label": "low"} for name in BAD if name != "bad/unlabelled.mp4"]
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return folder, labels


class Hangs:
    """A source whose reading never ends: read_pairs waits forever on ``problem``. With
    ``in_c``, SIGALRM is blocked first, as it is in effect during a hang in C code (a decoder)
    that never returns to the interpreter, so that only a watchdog outside the thread ends it.
    Tests send it to another process as the reduction of a Source (see test_shards)."""

    def __init__(self, key: str, origin: str, in_c: bool = False):
        self.key, self.origin, self.in_c = key, origin, in_c

    @property
    def problem(self):
        if self.in_c:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
