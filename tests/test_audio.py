"""Audio input: reading files, mono/16 kHz/3 s/min-max preparation, and its errors."""
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avsdk.audio import centre_or_tile, load_audio, prepare_waveform
from avsdk.errors import InputError

DATA = Path(__file__).parent / "data"
SR = 16_000


def reference_clip(x16k, length=48_000):
    """SSPL/SACL's _load_audio after resampling, restated: tile, take the centre, rescale."""
    x = np.asarray(x16k, dtype=np.float64)
    if x.shape[0] < length:
        x = np.tile(x, int(length / x.shape[0]) + 1)
    start = int(x.shape[0] / 2) - int(length / 2)
    x = x[start : start + length]
    return 2 * ((x - x.min()) / (x.max() - x.min() + 1e-3) - 0.5)


# ---- load_audio --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_load_audio_reads_wav_flac_ogg(tmp_path, fmt, subtype):
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 220 * t)], axis=1) * 0.5
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, stereo, 8000, format=fmt, subtype=subtype)
    samples, rate = load_audio(path)
    assert rate == 8000 and samples.dtype == np.float32 and samples.shape == (8000, 2)
    if fmt != "OGG":  # lossless: equal to 16-bit precision
        np.testing.assert_allclose(samples, stereo, atol=1 / 32768)


def test_load_audio_real_recording():
    samples, rate = load_audio(str(DATA / "complete.oga"))
    assert rate == 44_100 and samples.ndim == 2 and samples.shape[1] == 2
    assert 0.05 < np.abs(samples).max() <= 1.0


@pytest.mark.parametrize("source, expected", [
    ("/nonexistent/clip.wav", r"source: expected an existing audio file.*no such file"),
    ("TMP/notes.wav", "source: expected an audio file soundfile can read"),
    ("TMP", "a directory"),
    (42, "a path or a binary file object"),
    ("TMP/empty.wav", "at least one sample"),
], ids=["missing", "not-audio", "directory", "int", "no-samples"])
def test_load_audio_refuses_bad_sources(source, expected, tmp_path):
    (tmp_path / "notes.wav").write_text("not audio at all")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0), 16_000)
    if isinstance(source, str) and source.startswith("TMP"):
        source = Path(source.replace("TMP", str(tmp_path)))
    with pytest.raises(InputError, match=expected) as caught:
        load_audio(source)
    assert caught.value.argument == "source"


# ---- prepare_waveform --------------------------------------------------------------------------
def test_prepare_is_the_reference_clip_for_long_16k_audio():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(70_001).astype(np.float32)
    out = prepare_waveform(x, SR)
    assert out.shape == (48_000,) and out.dtype == np.float32
    np.testing.assert_array_equal(out, reference_clip(x).astype(np.float32))
    assert out.min() == -1.0 and out.max() < 1.0


@pytest.mark.parametrize("length", [400, 1_000, 16_000, 47_999, 48_000])
def test_prepare_tiles_short_audio_like_the_reference(length):
    x = np.random.default_rng(length).uniform(-0.3, 0.7, length)
    np.testing.assert_array_equal(prepare_waveform(x, SR), reference_clip(x).astype(np.float32))


def test_centre_or_tile_indices():
    x = np.arange(10)
    np.testing.assert_array_equal(centre_or_tile(x, 4), [3, 4, 5, 6])
    # 3 samples to 4: tile int(4/3)+1 = 2 times -> [0 1 2 0 1 2], centre 4 from index 1
    np.testing.assert_array_equal(centre_or_tile(np.arange(3), 4), [1, 2, 0, 1])


def test_stereo_is_averaged_and_resampled():
    t = np.arange(44_100 * 2) / 44_100
    left = np.sin(2 * np.pi * 300 * t)
    stereo = np.stack([left, left], axis=1).astype(np.float32)
    np.testing.assert_allclose(prepare_waveform(stereo, 44_100), prepare_waveform(left, 44_100), atol=1e-6)
    # 2 s at 44.1 kHz -> 32000 samples at 16 kHz, then tiled to 3 s
    out = prepare_waveform(left, 44_100)
    assert out.shape == (48_000,)


def test_resampling_keeps_a_tone_at_its_frequency():
    t = np.arange(48_000 * 3) / 48_000
    out = prepare_waveform(np.sin(2 * np.pi * 1000 * t), 48_000)
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * SR / out.size - 1000) < 1


def test_integer_pcm_and_lists_are_accepted():
    x = (np.random.default_rng(1).standard_normal(20_000) * 3000).astype(np.int16)
    np.testing.assert_allclose(prepare_waveform(x, SR), prepare_waveform(x / 32768.0, SR), atol=1e-6)
    assert prepare_waveform(list(x.astype(float)), SR).shape == (48_000,)


def test_silence_maps_to_minus_one():
    np.testing.assert_array_equal(prepare_waveform(np.zeros(20_000, np.float32), SR), -1.0)


def test_input_is_not_modified():
    x = np.random.default_rng(2).standard_normal((30_000, 2)).astype(np.float32)
    before = x.copy()
    prepare_waveform(x, 22_050)
    np.testing.assert_array_equal(x, before)


def test_clip_seconds():
    assert prepare_waveform(np.ones(100_000), SR, clip_seconds=1.5).shape == (24_000,)
    for bad in (0, -1.0, float("nan"), "3", True, 0.02):
        with pytest.raises(InputError, match="clip_seconds"):
            prepare_waveform(np.ones(100_000), SR, clip_seconds=bad)


@pytest.mark.parametrize(
    "audio, rate, words",
    [
        (np.zeros(0, np.float32), SR, "audio: expected at least one sample"),
        (np.zeros((0, 2), np.float32), SR, "audio: expected at least one sample"),
        (np.full(1000, np.nan, np.float32), SR, "all samples are NaN/Inf"),
        (np.r_[np.zeros(700), np.inf, np.nan, np.zeros(300)], SR, "2 NaN/Inf samples of 1002, the first at flat index 700"),
        (np.zeros((10, 10, 10)), SR, "audio: expected a waveform [T] or [T, channels]"),
        (np.zeros((2, 48_000)), SR, "transpose a [channels, T] array"),
        (np.zeros(1000, np.complex64), SR, "real float or integer samples"),
        (np.zeros(1000, bool), SR, "real float or integer samples"),
        ("clip.wav", SR, "audio: expected a numpy array"),
        (np.zeros(1000), 0, "sample_rate: expected a number of samples per second >= 1000"),
        (np.zeros(1000), -16_000, "sample_rate: expected a number of samples per second >= 1000"),
        (np.zeros(48_000), 1, "sample_rate: expected a number of samples per second >= 1000"),
        (np.zeros(1000), float("inf"), "sample_rate"),
        (np.zeros(1000), True, "sample_rate"),
        (np.zeros(1000), "16000", "sample_rate"),
        (np.zeros(399), SR, "at least one STFT window: 400 samples at 16 kHz"),
        (np.zeros(1000), 48_000, "1000 samples at 48000 Hz (333 at 16 kHz)"),
    ],
)
def test_bad_audio_raises_clear_errors(audio, rate, words):
    with pytest.raises(InputError) as info:
        prepare_waveform(audio, rate)
    assert words in str(info.value)
