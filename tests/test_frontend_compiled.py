"""The compiled frontend (avsdk._frontend, bindings/) against the numpy reference (ref vs cpp)."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_frontend = pytest.importorskip(
    "avsdk._frontend", reason="the compiled frontend is not built (pip install -e . --no-build-isolation)"
)

from avsdk import frontend, melspec  # noqa: E402
from avsdk.audio import load_audio, prepare_waveform  # noqa: E402
from avsdk.errors import InputError  # noqa: E402

DATA = Path(__file__).parent / "data"
SR = 16_000
ATOL = 1e-4  # the promised bound (docs/frontend.md); observed differences are ~5e-7


def both(x):
    ref = melspec.log_mel(x)
    cpp = _frontend.log_mel(x)
    assert cpp.dtype == np.float32 and cpp.shape == ref.shape
    return ref, cpp


def chirp(samples, amplitude=1.0):
    t = np.arange(samples) / SR
    return (amplitude * np.sin(2 * np.pi * (100 + 2000 * t) * t)).astype(np.float32)


@pytest.mark.parametrize("name", ["complete.oga", "bell.oga"])
def test_real_recordings(name):
    audio, rate = load_audio(DATA / name)
    clip = prepare_waveform(audio, rate)
    ref = melspec.log_mel_examples(clip)
    cpp = _frontend.log_mel_examples(clip)
    np.testing.assert_allclose(cpp, ref, rtol=0, atol=ATOL)
    ref_raw, cpp_raw = both(prepare_waveform(audio, rate, clip_seconds=1.0))
    np.testing.assert_allclose(cpp_raw, ref_raw, rtol=0, atol=ATOL)


def test_synthesised_wav_file(tmp_path):
    rng = np.random.default_rng(0)
    x = 0.6 * chirp(3 * 44_100) + 0.05 * rng.standard_normal(3 * 44_100)
    soundfile = pytest.importorskip("soundfile")
    soundfile.write(tmp_path / "s.wav", x, 44_100, subtype="PCM_16")
    audio, rate = load_audio(tmp_path / "s.wav")
    ref = frontend.audio_to_examples(audio, rate, implementation="numpy")
    cpp = frontend.audio_to_examples(audio, rate, implementation="compiled")
    assert cpp.shape == (3, 1, 96, 64)
    np.testing.assert_allclose(cpp, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "case",
    ["silence", "full-scale-square", "pure-tone", "chirp", "one-example", "one-short-of-two", "odd-length"],
)
def test_edge_cases(case):
    t = np.arange(48_000) / SR
    x = {
        "silence": np.zeros(48_000, np.float32),
        "full-scale-square": np.where(np.sin(2 * np.pi * 441 * t) >= 0, 1.0, -1.0).astype(np.float32),
        "pure-tone": np.sin(2 * np.pi * 1000 * t).astype(np.float32),
        "chirp": chirp(48_000),
        "one-example": chirp(melspec.MIN_SAMPLES_EXAMPLE),
        "one-short-of-two": chirp(400 + 191 * 160 - 1),
        "odd-length": chirp(37_777),
    }[case]
    ref, cpp = both(x)
    np.testing.assert_allclose(cpp, ref, rtol=0, atol=ATOL)
    examples = _frontend.log_mel_examples(x)
    assert examples.shape == (melspec.num_examples(x.size), 1, 96, 64)
    np.testing.assert_allclose(examples, melspec.log_mel_examples(x), rtol=0, atol=ATOL)
    if case == "one-short-of-two":
        assert examples.shape[0] == 1


def test_float64_and_strided_input():
    x = chirp(20_000).astype(np.float64) * 0.37
    np.testing.assert_allclose(_frontend.log_mel(x), melspec.log_mel(x), rtol=0, atol=ATOL)
    strided = chirp(40_000)[::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_allclose(_frontend.log_mel(strided), melspec.log_mel(strided), rtol=0, atol=ATOL)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    length=st.integers(min_value=400, max_value=40_000),
    log_amplitude=st.floats(min_value=-4, max_value=3),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    tone=st.floats(min_value=50, max_value=7_900),
    double=st.booleans(),
)
def test_property_matches_numpy(length, log_amplitude, seed, tone, double):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    x = 10.0**log_amplitude * (np.sin(2 * np.pi * tone * t) + 0.1 * rng.standard_normal(length))
    x = x.astype(np.float64 if double else np.float32)
    ref, cpp = both(x)
    np.testing.assert_allclose(cpp, ref, rtol=0, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=60_000),
    clip=st.sampled_from([15_600, 24_000, 48_000]),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_property_clip_matches_prepare_waveform(length, clip, seed):
    x = np.random.default_rng(seed).uniform(-2, 3, length).astype(np.float32)
    if length < 400:
        x = np.tile(x, 400 // length + 1)
    ref = prepare_waveform(x, SR, clip_seconds=clip / SR)
    cpp = _frontend.prepare_clip(x, clip)
    # the C++ multiplies by the reciprocal where numpy divides: at most a last-bit flip
    np.testing.assert_allclose(cpp, ref, rtol=0, atol=3e-7)
    examples = _frontend.clip_log_mel_examples(x, clip)
    np.testing.assert_allclose(examples, melspec.log_mel_examples(ref), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.r_[np.zeros(20_000), np.nan].astype(np.float32), "1 NaN/Inf samples of 20001, the first at index 20000"),
        (np.full(20_000, np.inf), "only NaN/Inf samples"),
        (np.zeros(20_000, np.int16), "float32 or float64"),
        (np.zeros((2, 20_000), np.float32), "1-D"),
        (np.zeros(0, np.float32), "at least 15600 samples"),
        (np.zeros(15_599, np.float32), "at least 15600 samples"),
        ([0.0] * 20_000, "numpy array"),
    ],
)
def test_bad_input_raises_input_error(bad, words):
    with pytest.raises(InputError, match="waveform16k") as info:
        frontend.log_mel_examples(bad, implementation="compiled")
    assert words in str(info.value)
    with pytest.raises(ValueError):  # the raw module too: never a crash or a silent answer
        _frontend.log_mel_examples(bad)


def test_raw_module_errors():
    with pytest.raises(_frontend.InputError, match="NaN"):
        _frontend.log_mel(np.full(1000, np.nan, np.float32))
    with pytest.raises(ValueError, match="float32 or float64"):
        _frontend.log_mel(np.zeros(1000, np.complex64))
    with pytest.raises(ValueError, match="clip_samples"):
        _frontend.prepare_clip(np.zeros(1000, np.float32), 0)
    with pytest.raises(ValueError, match="at least one sample"):
        _frontend.prepare_clip(np.zeros(0, np.float32), 100)
    with pytest.raises(ValueError, match="NaN"):
        frontend.audio_to_examples(np.r_[np.zeros(30_000), np.inf], SR, implementation="compiled")


def test_auto_uses_the_compiled_frontend():
    assert frontend.active_implementation() == "compiled"
    assert "FFT" in frontend.compiled_implementation()
    x = chirp(48_000)
    np.testing.assert_array_equal(frontend.log_mel_examples(x), _frontend.log_mel_examples(x))


def test_stereo_44k_through_both_implementations():
    rng = np.random.default_rng(5)
    stereo = (0.3 * rng.standard_normal((44_100 * 4, 2))).astype(np.float32)
    ref = frontend.audio_to_examples(stereo, 44_100, implementation="numpy")
    cpp = frontend.audio_to_examples(stereo, 44_100, implementation="compiled")
    np.testing.assert_allclose(cpp, ref, rtol=0, atol=ATOL)


def test_constants_agree():
    assert (_frontend.SAMPLE_RATE, _frontend.WINDOW_LENGTH, _frontend.HOP_LENGTH) == (SR, 400, 160)
    assert (_frontend.FFT_LENGTH, _frontend.NUM_MEL_BANDS, _frontend.EXAMPLE_FRAMES) == (512, 64, 96)
    for n in (0, 399, 400, 15_599, 15_600, 48_000):
        assert _frontend.num_frames(n) == melspec.num_frames(n)
        assert _frontend.num_examples(n) == melspec.num_examples(n)


@pytest.mark.parametrize("case", ["chirp", "square", "silence", "noise-odd-length"])
def test_every_instruction_set_kernel_matches_numpy(case):
    """The build holds one kernel per instruction set (AVX-512, AVX2, SSE2 on x86-64; NEON on
    aarch64); the CPU runs the best, so the others are forced here one by one."""
    t = np.arange(30_001) / SR
    x = {
        "chirp": chirp(30_001),
        "square": np.sign(np.sin(2 * np.pi * 300 * t)).astype(np.float32),
        "silence": np.zeros(30_001, np.float32),
        "noise-odd-length": np.random.default_rng(9).standard_normal(30_001).astype(np.float32),
    }[case]
    ref = melspec.log_mel(x)
    kernels = _frontend._available_kernels()
    assert kernels
    for kernel in kernels:
        np.testing.assert_allclose(_frontend._log_mel_with_kernel(kernel, x), ref, rtol=0, atol=ATOL, err_msg=kernel)
    with pytest.raises(ValueError, match="kernel"):
        _frontend._log_mel_with_kernel("avx9000", x)


def test_a_float_dtype_that_went_through_pickle_is_accepted():
    """The extension compared dtypes by identity: an unpickled float32 array (a multiprocessing
    result, say) was refused as "expected float32 ..., received dtype float32"."""
    import pickle

    x = pickle.loads(pickle.dumps(np.random.default_rng(0).standard_normal(48_000).astype(np.float32)))
    assert x.dtype is not np.dtype(np.float32)
    np.testing.assert_allclose(frontend.log_mel_examples(x, implementation="compiled"),
                               frontend.log_mel_examples(x, implementation="numpy"), atol=1e-5)


@pytest.mark.parametrize("rate", [16_000, 44_100])
@pytest.mark.parametrize("dtype", [">f4", ">f8"])
def test_big_endian_samples_equal_native_ones_on_both_implementations(rate, dtype):
    """Big-endian floats were refused by the compiled path at 16 kHz and raised soxr's
    TypeError at other rates; they are the same samples in another byte order."""
    x = np.random.default_rng(1).standard_normal(3 * rate).astype(dtype)
    native = x.astype(x.dtype.newbyteorder("="))
    for implementation in ("compiled", "numpy"):
        np.testing.assert_array_equal(frontend.audio_to_examples(x, rate, implementation=implementation),
                                      frontend.audio_to_examples(native, rate, implementation=implementation))
    if rate == 16_000:
        for implementation in ("compiled", "numpy"):
            np.testing.assert_array_equal(frontend.log_mel_examples(x, implementation=implementation),
                                          frontend.log_mel_examples(native, implementation=implementation))
