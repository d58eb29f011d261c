"""The numpy VGGish frontend (avsdk.melspec) against an independent float64 re-statement of
Google's mel_features.py, plus hand-made cases, and the implementation dispatch of avsdk.frontend."""
import math

import numpy as np
import pytest

from avsdk import frontend, melspec
from avsdk.errors import InputError, MissingDependencyError

SR = 16_000


# ---- an independent re-statement of the reference, in loops and an explicit DFT ---------------
def ref_mel_matrix():
    """mel_features.spectrogram_to_mel_matrix(64, 257, 16000, 125, 7500), written as loops."""
    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    lo, hi = mel(125.0), mel(7500.0)
    edges = [lo + (hi - lo) * i / 65 for i in range(66)]
    weights = np.zeros((257, 64))
    for k in range(1, 257):  # the DC row stays 0
        m = mel(8000.0 * k / 256)
        for band in range(64):
            left, centre, right = edges[band : band + 3]
            weights[k, band] = max(0.0, min((m - left) / (centre - left), (right - m) / (right - centre)))
    return weights


_DFT = None


def ref_log_mel(x):
    """float64 log-mel by an explicit 512-point DFT of each periodic-Hann-windowed frame."""
    global _DFT
    if _DFT is None:
        n = np.arange(400)[:, None]
        k = np.arange(257)[None, :]
        _DFT = np.exp(-2j * np.pi * n * k / 512)  # the 112 zero-padded samples contribute nothing
    x = np.asarray(x, dtype=np.float64)
    count = 1 + (len(x) - 400) // 160
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / 400) for i in range(400)])
    frames = np.stack([x[160 * f : 160 * f + 400] * window for f in range(count)])
    return np.log(np.abs(frames @ _DFT) @ ref_mel_matrix() + 0.01)


def chirp(seconds=3.0, amplitude=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * (100 + 2000 * t) * t)).astype(np.float32)


# ---- cases -----------------------------------------------------------------------------------
def test_mel_matrix_matches_restatement():
    ours = melspec.mel_filterbank()
    assert ours.shape == (257, 64)
    np.testing.assert_allclose(ours, ref_mel_matrix(), rtol=0, atol=1e-12)
    assert not ours[0].any(), "the DC bin gets weight 0"
    assert ours.max() <= 1.0
    used = np.flatnonzero(ours.any(axis=1))
    assert used.min() == 5 and used.max() == 239  # 125 Hz is bin 4 (weight 0), 7500 Hz bin 240


@pytest.mark.parametrize("signal", ["chirp", "noise", "square", "tone"])
def test_log_mel_matches_restatement(signal):
    rng = np.random.default_rng(1)
    t = np.arange(20_000) / SR
    x = {
        "chirp": chirp(20_000 / SR),
        "noise": rng.standard_normal(20_000).astype(np.float32) * 0.3,
        "square": np.sign(np.sin(2 * np.pi * 441 * t)).astype(np.float32),
        "tone": np.sin(2 * np.pi * 1000 * t).astype(np.float32),
    }[signal]
    ours = melspec.log_mel(x)
    ref = ref_log_mel(x)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    # float32 output: half an ulp of values up to ~|10|
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)


def test_float64_input_is_computed_in_float64():
    x = chirp(1.0).astype(np.float64) * (1 + 1e-9)
    np.testing.assert_allclose(melspec.log_mel(x), ref_log_mel(x), rtol=0, atol=2e-6)


@pytest.mark.parametrize("hertz", [250.0, 1000.0, 4000.0])
def test_pure_tone_lands_in_its_mel_band(hertz):
    x = np.sin(2 * np.pi * hertz * np.arange(4000) / SR)
    band = int(np.argmax(melspec.log_mel(x).mean(axis=0)))
    edges = np.linspace(melspec.hertz_to_mel(125.0), melspec.hertz_to_mel(7500.0), 66)
    centres = edges[1:-1]
    assert abs(band - int(np.argmin(abs(centres - melspec.hertz_to_mel(hertz))))) <= 1


def test_silence_is_log_offset():
    out = melspec.log_mel(np.zeros(1000, dtype=np.float32))
    np.testing.assert_array_equal(out, np.float32(math.log(0.01)))


@pytest.mark.parametrize(
    "samples, frames, examples",
    [(400, 1, 0), (559, 1, 0), (560, 2, 0), (15_599, 95, 0), (15_600, 96, 1), (30_959, 191, 1),
     (30_960, 192, 2), (48_000, 298, 3)],
)
def test_frame_and_example_counts(samples, frames, examples):
    assert melspec.num_frames(samples) == frames
    assert melspec.num_examples(samples) == examples
    assert melspec.log_mel(np.zeros(samples, np.float32)).shape == (frames, 64)
    if examples:
        assert melspec.log_mel_examples(np.zeros(samples, np.float32)).shape == (examples, 1, 96, 64)


def test_examples_are_consecutive_frames():
    x = chirp()
    frames = melspec.log_mel(x)
    examples = melspec.log_mel_examples(x)
    assert examples.shape == (3, 1, 96, 64) and examples.dtype == np.float32
    np.testing.assert_array_equal(examples.reshape(-1, 64), frames[:288])


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros(399, np.float32), "at least 400 samples"),
        (np.zeros(0, np.float32), "at least 400 samples"),
        (np.zeros((2, 1000), np.float32), "1-D"),
        (np.zeros(1000, np.int16), "float32 or float64"),
        ([0.0] * 1000, "numpy array"),
        (np.r_[np.zeros(500), np.nan, np.zeros(500)], "1 NaN/Inf samples, the first at index 500"),
        (np.full(1000, np.inf), "1000 NaN/Inf"),
    ],
)
def test_bad_waveforms_raise_clear_errors(bad, words):
    with pytest.raises(InputError, match="waveform16k") as info:
        melspec.log_mel(bad)
    assert words in str(info.value)


def test_examples_need_one_whole_example():
    with pytest.raises(InputError, match="15600"):
        melspec.log_mel_examples(np.zeros(15_599, np.float32))


# ---- dispatch (no extension needed) -----------------------------------------------------------
def test_numpy_implementation_is_the_reference():
    x = chirp()
    np.testing.assert_array_equal(frontend.log_mel_examples(x, implementation="numpy"),
                                  melspec.log_mel_examples(x))


def test_unknown_implementation_is_refused():
    with pytest.raises(InputError, match="^implementation: expected one of"):
        frontend.log_mel_examples(chirp(), implementation="cuda")


def test_compiled_implementation_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(frontend, "_compiled_module", lambda: None)
    assert frontend.active_implementation() == "numpy"
    with pytest.raises(MissingDependencyError, match="avsdk._frontend is not built"):
        frontend.log_mel_examples(chirp(), implementation="compiled")
    # "auto" falls back to numpy
    np.testing.assert_array_equal(frontend.log_mel_examples(chirp()), melspec.log_mel_examples(chirp()))


# ---- the old name of ``implementation``: ``backend`` (deprecated, kept for one release) ---------
OLD_KEYWORD_CALLS = {
    "log_mel_examples": lambda **kw: frontend.log_mel_examples(chirp(), **kw),
    "audio_to_examples": lambda **kw: frontend.audio_to_examples(chirp(), SR, **kw),
}


@pytest.mark.parametrize("call", OLD_KEYWORD_CALLS.values(), ids=OLD_KEYWORD_CALLS.keys())
def test_old_backend_keyword_warns_and_gives_the_same_result(call):
    new = call(implementation="numpy")
    with pytest.warns(DeprecationWarning, match="backend= is deprecated, use implementation=") as caught:
        old = call(backend="numpy")
    assert caught[0].filename == __file__  # attributed to the caller
    np.testing.assert_array_equal(old, new)
    with pytest.warns(DeprecationWarning), pytest.raises(InputError, match="^implementation: "):
        call(backend="cuda")  # the old keyword goes through the same check


@pytest.mark.parametrize("call", OLD_KEYWORD_CALLS.values(), ids=OLD_KEYWORD_CALLS.keys())
def test_old_and_new_keyword_together_is_an_input_error(call):
    with pytest.raises(InputError, match="^implementation: expected implementation= alone") as caught:
        call(implementation="numpy", backend="numpy")
    assert caught.value.argument == "implementation"


def test_old_and_new_keyword_together_positionally_is_an_input_error():
    with pytest.raises(InputError, match="^implementation: .*received implementation='numpy' and "
                                         "backend='compiled'"):
        frontend.log_mel_examples(chirp(), "numpy", backend="compiled")
    with pytest.raises(InputError, match="^implementation: "):
        frontend.audio_to_examples(chirp(), SR, 3.0, "numpy", backend="numpy")


def test_old_module_names_warn_and_are_the_new_ones():
    with pytest.warns(DeprecationWarning, match="active_backend is deprecated, use active_implementation"):
        active_backend = frontend.active_backend
    assert active_backend is frontend.active_implementation
    assert active_backend() in ("compiled", "numpy")
    with pytest.warns(DeprecationWarning, match="BACKENDS is deprecated, use IMPLEMENTATIONS"):
        from avsdk.frontend import BACKENDS
    assert BACKENDS == frontend.IMPLEMENTATIONS == ("auto", "compiled", "numpy")
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        frontend.no_such_name


def test_audio_to_examples_numpy_is_prepare_then_log_mel():
    from avsdk.audio import prepare_waveform

    rng = np.random.default_rng(3)
    stereo = rng.standard_normal((50_000, 2)).astype(np.float32)
    expected = melspec.log_mel_examples(prepare_waveform(stereo, 22_050))
    np.testing.assert_array_equal(frontend.audio_to_examples(stereo, 22_050, implementation="numpy"), expected)
    assert expected.shape == (3, 1, 96, 64)


def test_audio_to_examples_rejects_clips_shorter_than_an_example():
    with pytest.raises(InputError, match="clip_seconds"):
        frontend.audio_to_examples(chirp(), SR, clip_seconds=0.5, implementation="numpy")
