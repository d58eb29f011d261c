"""Audio input: read a file, and turn any waveform into the 3 s, 16 kHz, [-1, 1] clip.

The clip is the one of docs/method.md, "Inputs".

    audio, rate = load_audio("dog.flac")          # [T] or [T, channels] float32, rate in Hz
    clip = prepare_waveform(audio, rate)          # [48000] float32: mono, 16 kHz, centred, rescaled
    clip = prepare_waveform(audio, rate, start=0.0)   # the first 3 s instead of the centre ones

The window heard: the centre ``clip_seconds`` of the sound by default, or the one beginning
``start`` seconds in, anywhere in [0, duration - clip_seconds] (an InputError naming ``start``
otherwise). A sound no longer than the clip is heard whole, tiled, so its only start is 0.
``heard_window`` also says where the window lies, (start, end) in seconds.

A WAV file whose header promises more samples than it holds (a truncated download or
recording) is read as far as it goes, with a warning naming the file and both counts.

Non-finite samples: a NaN or Inf anywhere in the audio raises InputError (naming how many and
where) instead of being zeroed or dropped; a frontend fed them would return NaN features or a
clip whose min-max rescale is undefined, and silently repairing a user's signal hides a bug
upstream (a broken decoder, a division by zero).

Integer samples are PCM, divided by the full scale of their dtype as soundfile reads files:
uint8 (x - 128) / 128, int8 / 128, int16 / 32768, int32 / 2**31. Two cases are refused with an
InputError rather than guessed at, as both used to read as silence:

* int32 whose samples all fit int16's range [-32768, 32767]: 16-bit samples in a wider array
  (at 32-bit scale they lie below -90 dBFS). Cast them with ``.astype(np.int16)``; real 32-bit
  PCM that quiet is silence, which float zeros say without ambiguity.
* any other integer dtype (int64, which ``np.array`` makes of a list of ints, uint16, uint32,
  uint64): no PCM format stores samples so. Cast to the format's dtype (int16, int32) or float.
"""
from __future__ import annotations

import math
import numbers
import os
import struct
import warnings

import numpy as np

from .errors import bad_input
from .melspec import MIN_SAMPLES_FRAME, SAMPLE_RATE, WINDOW_LENGTH

MIN_SAMPLE_RATE = 1000  # Hz; telephone audio is 8000
#: float samples beyond this magnitude are refused: a sound is in [-1, 1], PCM values in a float
#: array reach 2**31; far beyond, mixing, resampling, the rescale and the level overflow to NaN
MAX_FLOAT_SAMPLE = 1e12
#: extensions soundfile reads here (libsndfile 1.2: WAV, FLAC, OGG Vorbis/Opus, MP3, ...)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")


def load_audio(source) -> tuple[np.ndarray, int]:
    """Read an audio file with soundfile.

    Args:
        source: path (str or PathLike) or a binary file object, any format libsndfile reads
            (wav, flac, ogg, ...).

    Returns:
        (samples, sample_rate): samples [T] float32 for mono, [T, channels] float32 otherwise,
        in [-1, 1] for integer PCM files; sample_rate in Hz.

    Raises:
        InputError: missing, unreadable or empty file, or an unsupported ``source`` type.
    Warns:
        UserWarning: a WAV file holds fewer samples than its header promises (truncated).
    """
    import soundfile

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise bad_input("source", "an existing audio file", f"{path!r} (no such file)", described=True)
        if os.path.isdir(path):
            raise bad_input("source", "an audio file", f"{path!r} (a directory)", described=True)
    elif not hasattr(source, "read"):
        raise bad_input("source", "a path or a binary file object", source)
    promised = _wav_promised_frames(source)
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise bad_input(
            "source", "an audio file soundfile can read (wav, flac, ogg, ...)", f"{source!r} ({exc})", described=True
        ) from exc
    if samples.size == 0:
        raise bad_input("source", "an audio file with at least one sample", f"{source!r} (empty)", described=True)
    if promised is not None and len(samples) < promised:
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", source)
        warnings.warn(f"{name!r}: its WAV header promises {promised} samples per channel but the file holds "
                      f"{len(samples)}; reading those (a truncated file?)", stacklevel=2)
    return samples, int(rate)


def _wav_promised_frames(source) -> int | None:
    """The sample frames a RIFF/WAVE header's data chunk declares; None for other files, a size
    a stream writer leaves unknown, or a file object that cannot seek back.

    libsndfile trims a data chunk that runs past the end of the file without a word (only its
    log says "should be"), so the header is read here."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                return _data_frames(handle)
        if not (hasattr(source, "seekable") and source.seekable()):
            return None
        position = source.tell()
        try:
            return _data_frames(source)
        finally:
            source.seek(position)
    except (OSError, ValueError, struct.error):
        return None


def _data_frames(handle) -> int | None:
    riff = handle.read(12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        return None
    block_align = 0
    for _ in range(64):  # the chunks before "data": fmt and a few of fact, LIST, bext, JUNK
        header = handle.read(8)
        if len(header) < 8:
            return None
        name, size = header[:4], struct.unpack("<I", header[4:])[0]
        if name == b"data":
            unknown = size == 0xFFFFFFFF  # what a writer that cannot seek back leaves
            return None if unknown or not block_align else size // block_align
        if name == b"fmt ":
            block_align = struct.unpack("<H", handle.read(size)[12:14])[0]
        else:
            handle.seek(size, 1)
        handle.seek(size % 2, 1)  # chunks are padded to an even size
    return None


def to_mono_16k(audio, sample_rate, argument: str = "audio", check_finite: bool = True) -> np.ndarray:
    """Validate, mix to mono and resample to 16 kHz (soxr, high quality).

    ``check_finite`` is kept for the callers that pass it: float samples are always scanned for
    their extremes, which finds NaN/Inf and magnitudes beyond MAX_FLOAT_SAMPLE, so that errors
    point at the caller's samples (not at a clip that overflowed to NaN).

    Args:
        audio: [T] or [T, channels], float samples or integer PCM (uint8, int8, int16, int32
            by their full scale; see the module docstring for the integer arrays refused).
        sample_rate: positive rate of ``audio`` in Hz.

    Returns:
        [T'] at 16 kHz, T' >= 400: float32 for float32 mono input, float64 otherwise. The input
        array itself is never modified (it may be returned as is when already mono 16 kHz).

    Raises:
        InputError: wrong rank or dtype (int64, uint16 and wider; int32 holding only int16-range
            values), empty, any NaN/Inf or magnitude beyond MAX_FLOAT_SAMPLE, a channel axis that
            looks like it comes first, a non-positive rate, or fewer than 400 samples at 16 kHz.
    """
    rate = check_rate(sample_rate)
    x = check_audio(audio, argument)
    if x.dtype.kind in "iu":
        x = pcm_to_unit(x)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float64)
    elif x.dtype.itemsize < 4:
        x = x.astype(np.float64)
    if rate != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ")
    if x.size < MIN_SAMPLES_FRAME:
        raise bad_input(
            argument,
            f"at least one STFT window: {WINDOW_LENGTH} samples at 16 kHz ({WINDOW_LENGTH / SAMPLE_RATE} s)",
            f"{np.shape(audio)[0]} samples at {rate:g} Hz ({x.size} at 16 kHz)",
            described=True,
        )
    return x


def clip_samples(clip_seconds) -> int:
    """Number of 16 kHz samples in a clip of ``clip_seconds`` (>= one 400-sample window)."""
    if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, numbers.Real) or not math.isfinite(clip_seconds):
        raise bad_input("clip_seconds", "a finite number of seconds", clip_seconds)
    count = int(round(float(clip_seconds) * SAMPLE_RATE))
    if count < MIN_SAMPLES_FRAME:
        raise bad_input("clip_seconds", f">= {MIN_SAMPLES_FRAME / SAMPLE_RATE} s (one STFT window)", clip_seconds)
    return count


def centre_or_tile(x: np.ndarray, length: int) -> np.ndarray:
    """The centre ``length`` samples of ``x`` [T]; a shorter ``x`` is first tiled past ``length``.

    As the SSPL/SACL loaders do it: tile ``int(length / T) + 1`` times, then take
    ``[T'//2 - length//2 : ... + length]``.
    """
    if x.size < length:
        x = np.tile(x, length // x.size + 1)
    start = x.size // 2 - length // 2
    return x[start : start + length]


def min_max_rescale(x: np.ndarray) -> np.ndarray:
    """``2 * ((x - min) / (max - min + 1e-3) - 0.5)`` in float64, returned as float32.

    The 1e-3 keeps silence defined (a constant clip maps to -1) and leaves the peak just
    below +1.
    """
    x = x.astype(np.float64, copy=False)
    lo, hi = x.min(), x.max()
    return (2.0 * ((x - lo) / (hi - lo + 1e-3) - 0.5)).astype(np.float32)


def heard_window(audio, sample_rate, clip_seconds=3.0, start=None) -> tuple[np.ndarray, tuple[float, float]]:
    """The window of ``audio`` a model hears, mono at 16 kHz, and where it lies in ``audio``.

    Args:
        audio, sample_rate: as :func:`prepare_waveform`.
        clip_seconds: the window's length (the model's clip).
        start: seconds into ``audio`` where the window begins, in [0, duration - clip_seconds];
            None for the centre window. A sound no longer than the clip is heard whole, tiled
            (centre_or_tile), and takes only None or 0.

    Returns:
        (clip [round(clip_seconds * 16000)] not rescaled, (start, end) in seconds of ``audio``;
        (0, duration) for a tiled sound).

    Raises:
        InputError: see :func:`to_mono_16k` and :func:`clip_samples`; ``start`` not a finite
            number or a window that does not lie within the sound.
    """
    length = clip_samples(clip_seconds)
    x = to_mono_16k(audio, sample_rate)
    if x.size <= length:  # heard whole, tiled: no other window exists
        if start is not None:
            _window_start(start, x.size, length)
        return centre_or_tile(x, length), (0.0, x.size / SAMPLE_RATE)
    first = x.size // 2 - length // 2 if start is None else _window_start(start, x.size, length)
    return x[first : first + length], (first / SAMPLE_RATE, (first + length) / SAMPLE_RATE)


def _window_start(start, samples: int, length: int) -> int:
    """``start`` seconds as the first 16 kHz sample of a window of ``length`` samples within a
    sound of ``samples``; a sound no longer than the window has only 0."""
    latest = max(0, samples - length)
    sound, clip = samples / SAMPLE_RATE, length / SAMPLE_RATE
    if latest:
        expected = f"None or seconds in [0, {latest / SAMPLE_RATE:g}] (a {clip:g} s window within {sound:g} s of sound)"
    else:
        expected = f"None or 0 (the {sound:g} s sound is no longer than the {clip:g} s clip: it is heard whole)"
    if isinstance(start, bool) or not isinstance(start, numbers.Real) or not math.isfinite(start):
        raise bad_input("start", expected, start)
    first = int(round(float(start) * SAMPLE_RATE))
    if not 0 <= first <= latest:
        raise bad_input("start", expected, start)
    return first


def prepare_waveform(audio, sample_rate, clip_seconds=3.0, start=None) -> np.ndarray:
    """Mono, 16 kHz, the ``clip_seconds`` window (centred or from ``start``; a shorter sound tiled),
    min-max rescaled to [-1, 1].

    As in docs/method.md, "Inputs".

    Args:
        audio: [T] or [T, channels] samples, as load_audio returns: float (any scale) or integer
            PCM as uint8, int8, int16 or int32 (divided by its full scale first, e.g. int16 /
            32768, as files are read). int32 whose values all fit int16, int64 (a list of ints
            through np.array) and wider unsigned dtypes are refused: see the module docstring.
        sample_rate: rate of ``audio`` in Hz (> 0).
        clip_seconds: clip length; 3 s gives [48000].
        start: where the window begins in seconds, None for the centre (see :func:`heard_window`).

    Returns:
        [round(clip_seconds * 16000)] float32.

    Raises:
        InputError: see :func:`heard_window`.
    """
    return min_max_rescale(heard_window(audio, sample_rate, clip_seconds, start)[0])


def pcm_to_unit(x: np.ndarray) -> np.ndarray:
    """Integer PCM (a dtype check_audio accepted) to float64 in [-1, 1) by its full scale (int16 /
    32768, uint8 (x - 128) / 128), as soundfile and librosa read files: the rescale's 1e-3 is not
    scale-free, so the scale matters."""
    half = float(2 ** (8 * x.dtype.itemsize - 1))
    offset = half if x.dtype.kind == "u" else 0.0
    return (x.astype(np.float64) - offset) / half


def check_rate(sample_rate) -> float:
    """``sample_rate`` as an int when it is whole (else a float), refused (InputError naming
    ``sample_rate``) unless it is a real number >= MIN_SAMPLE_RATE."""
    # below the minimum a clip is a handful of samples, and resampling to 16 kHz would blow it
    # up (1 Hz: 16000 times, gigabytes for a minute of input)
    if (isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real)
            or not (math.isfinite(sample_rate) and sample_rate >= MIN_SAMPLE_RATE)):
        raise bad_input("sample_rate", f"a number of samples per second >= {MIN_SAMPLE_RATE}", sample_rate)
    return int(sample_rate) if float(sample_rate).is_integer() else float(sample_rate)


def _check_pcm(audio: np.ndarray, argument: str) -> None:
    """Refuse the integer arrays whose full scale is a guess (module docstring)."""
    if (audio.dtype.kind == "u" and audio.dtype.itemsize > 1) or audio.dtype.itemsize > 4:
        raise bad_input(argument, "float samples or integer PCM as uint8, int8, int16 or int32 (cast "
                        "16-bit values with .astype(np.int16), 32-bit ones with .astype(np.int32))", audio)
    if audio.dtype.itemsize == 4:
        lo, hi = int(audio.min()), int(audio.max())
        if lo >= -(2 ** 15) and hi < 2 ** 15:
            raise bad_input(
                argument, "int32 PCM at 32-bit full scale (2**31); 16-bit samples in an int32 array "
                "would read as near silence: cast those with .astype(np.int16)",
                f"int32 array of shape {audio.shape} whose samples all lie in int16's range "
                f"(from {lo} to {hi})", described=True)


def check_audio(audio, argument: str) -> np.ndarray:
    """``audio`` as a native-order numpy array [T] or [T, channels] of real float or integer PCM
    samples, refused with an InputError naming ``argument`` otherwise: empty, [channels, T],
    integer PCM whose full scale is a guess, NaN/Inf or overflowing float samples."""
    if not isinstance(audio, np.ndarray):
        if not isinstance(audio, (list, tuple)):
            raise bad_input(argument, "a numpy array [T] or [T, channels]", audio)
        audio = np.asarray(audio)
    if audio.dtype.kind not in "fiu" or audio.dtype.itemsize > 8:
        raise bad_input(argument, "real float or integer samples", audio)
    if not audio.dtype.isnative:  # big-endian data: the same samples in this machine's order
        audio = audio.astype(audio.dtype.newbyteorder("="))
    if audio.ndim not in (1, 2):
        raise bad_input(argument, "a waveform [T] or [T, channels]", audio)
    if audio.size == 0:
        raise bad_input(argument, "at least one sample", audio)
    if audio.dtype.kind in "iu":
        _check_pcm(audio, argument)
    if audio.ndim == 2 and audio.shape[1] > audio.shape[0]:
        raise bad_input(
            argument, "[T, channels] (time first, as soundfile returns; transpose a [channels, T] array)", audio
        )
    if audio.dtype.kind == "f":
        # the extremes in two passes without a temporary (NaN when any sample is NaN): refuses
        # NaN/Inf and magnitudes that overflow later (1e308 passes an
        # isfinite scan, then mixing or the min-max rescale makes NaN of it)
        low, high = float(audio.min()), float(audio.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            bad = np.flatnonzero(~np.isfinite(audio.reshape(-1)))
            what = "all samples are NaN/Inf" if bad.size == audio.size else (
                f"{bad.size} NaN/Inf samples of {audio.size}, the first at flat index {bad[0]}"
            )
            raise bad_input(argument, "finite samples", what, described=True)
        if max(-low, high) > MAX_FLOAT_SAMPLE:
            first = int(np.flatnonzero(np.abs(audio.reshape(-1)) > MAX_FLOAT_SAMPLE)[0])
            raise bad_input(argument, f"float samples of magnitude at most {MAX_FLOAT_SAMPLE:g} (a sound in "
                            "[-1, 1], or PCM values in a float array)", f"samples from {low:g} to {high:g} "
                            f"(the first beyond it at flat index {first})", described=True)
    return audio
