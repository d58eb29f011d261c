"""The heard audio window (start=, result.window, --start), `avsdk --version`, `localize --json`,
truncated WAV files, frames as file objects and ONNX graphs without their manifest."""
import io
import json
import struct
import warnings

import numpy as np
import pytest
from PIL import Image

from avsdk import __version__, cli
from avsdk.audio import centre_or_tile, heard_window, load_audio, min_max_rescale, prepare_waveform, to_mono_16k
from avsdk.audio_input import AudioSpec, audio_input
from avsdk.errors import InputError
from avsdk.frames import frame_input, load_frame
from avsdk.localizer import Localizer

RATE = 16000


def _spread(frames, log_mel):
    """A stand-in model: every map cell is how much the log-mel input [B, N, 1, 96, 64] varies
    over time (0 for silence, whose min-max rescaled clip is constant)."""
    bands = np.asarray(log_mel, np.float64).reshape(len(frames), -1, 64)
    return np.full((len(frames), 7, 7), bands.std(axis=1).mean(), np.float32)


@pytest.fixture
def early_sound():
    """10 s at 16 kHz: a tone in the first 2 s, silence after."""
    audio = np.zeros(10 * RATE, np.float32)
    audio[: 2 * RATE] = 0.5 * np.sin(np.arange(2 * RATE) / 3.0)
    return audio


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "frame.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------ the heard window


@pytest.mark.parametrize("start,window", [(None, (3.5, 6.5)), (0, (0.0, 3.0)), (2.25, (2.25, 5.25)),
                                          (7.0, (7.0, 10.0))], ids=["centre", "first", "inside", "last"])
def test_heard_window_is_the_samples_from_start(start, window):
    x = np.random.default_rng(1).standard_normal(10 * RATE)
    clip, got = heard_window(x, RATE, 3.0, start)
    assert got == window
    first = int(window[0] * RATE)
    np.testing.assert_array_equal(clip, x[first : first + 3 * RATE])


def test_the_default_window_is_the_centre_as_before():
    """start=None gives what prepare_waveform and audio_input gave before windows could move."""
    rng = np.random.default_rng(2)
    audio = (rng.standard_normal((7 * 44100, 2)) * 8000).astype(np.int16)  # stereo PCM, resampled
    old = min_max_rescale(centre_or_tile(to_mono_16k(audio, 44100), 3 * RATE))
    np.testing.assert_array_equal(prepare_waveform(audio, 44100), old)
    np.testing.assert_array_equal(prepare_waveform(audio, 44100, start=None), old)


@pytest.mark.parametrize("start", [-0.1, 7.01, float("nan"), float("inf"), True, "1"],
                         ids=["negative", "past-the-end", "nan", "inf", "bool", "str"])
def test_a_window_outside_the_sound_names_start(start):
    with pytest.raises(InputError, match=r"^start: expected None or seconds in \[0, 7\]") as error:
        heard_window(np.zeros(10 * RATE), RATE, 3.0, start)
    assert error.value.argument == "start"


def test_a_short_sound_is_heard_whole_from_0_only():
    x = np.sin(np.arange(RATE // 2) / 5.0)
    tiled, window = heard_window(x, RATE, 3.0)
    assert window == (0.0, 0.5)
    np.testing.assert_array_equal(heard_window(x, RATE, 3.0, start=0)[0], tiled)
    with pytest.raises(InputError, match=r"^start: expected None or 0 \(the 0.5 s sound"):
        heard_window(x, RATE, 3.0, start=0.1)


@pytest.mark.parametrize("frontend", ["numpy", "auto"])
@pytest.mark.parametrize("spec", [AudioSpec(), AudioSpec("waveform", 22050)], ids=["log_mel", "waveform"])
def test_localizer_default_hears_what_audio_input_gave(spec, frontend, picture):
    audio = (np.random.default_rng(3).standard_normal((5 * 44100, 2)) * 0.2).astype(np.float32)
    loc = Localizer(_spread, audio=spec, frontend=frontend)
    heard = loc.inputs(str(picture), audio, sample_rate=44100).audio
    np.testing.assert_array_equal(heard, audio_input(audio, 44100, spec, 3.0, frontend))


def test_start_hears_a_sound_the_centre_misses(early_sound, picture):
    loc = Localizer(_spread, frontend="numpy")
    centre = loc(str(picture), early_sound, sample_rate=RATE)
    first = loc(str(picture), early_sound, sample_rate=RATE, start=0.0)
    assert centre.window == (3.5, 6.5) and centre.score == 0.0  # silence: the old answer
    assert first.window == (0.0, 3.0) and first.score > 0.1
    with pytest.raises(InputError, match="^start: "):
        loc(str(picture), early_sound, sample_rate=RATE, start=8.0)


def test_the_level_is_that_of_the_window_heard(early_sound, picture):
    from avsdk.visibility import SILENCE_DB, Calibration

    calibration = Calibration(weights=(0.0, 0.0, 1.0), bias=0.0, mean=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0))
    loc = Localizer(_spread, frontend="numpy", visibility=calibration)
    assert loc.inputs(str(picture), early_sound, RATE).level_db() == SILENCE_DB
    assert loc.inputs(str(picture), early_sound, RATE, start=0.0).level_db() > -20.0


@pytest.mark.parametrize("time,window", [(10.0, (8.5, 11.5)), (0.5, (0.0, 2.0))], ids=["middle", "near-start"])
def test_a_video_window_is_in_seconds_of_the_video(time, window):
    from avsdk.video import VideoClip

    seconds = window[1] - window[0]  # read_clip cuts the sound at the video's start
    clip = VideoClip(frame=np.zeros((32, 32, 3), np.uint8), audio=np.full(int(seconds * RATE), 0.1, np.float32),
                     sample_rate=RATE, time=time)
    assert Localizer(_spread, frontend="numpy")._localize_clip(clip).window == pytest.approx(window)


# ------------------------------------------------------------------ command line


def test_version_prints_avsdk_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"avsdk {__version__}"


@pytest.fixture
def wav_10s(tmp_path, early_sound):
    import soundfile

    path = tmp_path / "early.wav"
    soundfile.write(path, early_sound, RATE)
    return path


@pytest.mark.parametrize("start,window", [(None, {"start": 3.5, "end": 6.5}), ("0", {"start": 0.0, "end": 3.0})],
                         ids=["centre", "first"])
def test_localize_json_carries_the_window(start, window, checkpoint, picture, wav_10s, tmp_path, capsys):
    out = tmp_path / "overlay.png"
    argv = ["localize", str(checkpoint), str(picture), str(wav_10s), "--json", "--out", str(out)]
    assert cli.main(argv + ([] if start is None else ["--start", start])) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"box", "peak", "score", "on_screen", "window", "overlay"}
    assert result["window"] == window and result["overlay"] == str(out) and out.is_file()
    x0, y0, x1, y1 = result["box"]
    assert 0 <= x0 < x1 <= 120 and 0 <= y0 < y1 <= 90 and isinstance(result["score"], float)


def test_localize_text_says_the_window_and_names_start(checkpoint, picture, wav_10s, capsys):
    assert cli.main(["localize", str(checkpoint), str(picture), str(wav_10s), "--start", "1"]) == 0
    assert "heard (s)              = 1.000 to 4.000" in capsys.readouterr().out
    assert cli.main(["localize", str(checkpoint), str(picture), str(wav_10s), "--start", "7.5"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --start: expected None or seconds in [0, 7]") and captured.out == ""


# ------------------------------------------------------------------ truncated WAV


def _wav_bytes(seconds=1.0, data_size=None) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * RATE), np.float32), RATE, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    if data_size is not None:  # overwrite the data chunk's size field
        at = data.index(b"data") + 4
        data = data[:at] + struct.pack("<I", data_size) + data[at + 4 :]
    return data


@pytest.mark.parametrize("as_file", [False, True], ids=["path", "file-object"])
def test_a_truncated_wav_warns_with_both_counts(as_file, tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_bytes()[: 44 + 2 * 6000])  # 16000 samples promised, 6000 there
    with pytest.warns(UserWarning, match=r"cut\.wav'?: its WAV header promises 16000 samples .* holds 6000"):
        if as_file:
            with open(path, "rb") as handle:
                samples, _ = load_audio(handle)
                assert handle.tell() > 0 and not handle.closed  # soundfile read on from where it was
        else:
            samples, _ = load_audio(path)
    assert len(samples) == 6000


@pytest.mark.parametrize("data_size", [None, 0xFFFFFFFF], ids=["whole", "streamed"])
def test_whole_and_streamed_wavs_do_not_warn(data_size, tmp_path):
    path = tmp_path / "ok.wav"
    path.write_bytes(_wav_bytes(data_size=data_size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples, _ = load_audio(path)
    assert len(samples) == RATE


# ------------------------------------------------------------------ frames as file objects


@pytest.mark.parametrize("opener", [lambda p: open(p, "rb"), lambda p: io.BytesIO(p.read_bytes())],
                         ids=["open-file", "bytesio"])
def test_a_frame_file_object_reads_as_its_path(opener, picture):
    with opener(picture) as handle:
        np.testing.assert_array_equal(load_frame(handle), load_frame(picture))
    with opener(picture) as handle:
        tensor, size = frame_input(handle)
    expected, expected_size = frame_input(picture)
    assert size == expected_size == (90, 120)
    np.testing.assert_array_equal(tensor, expected)
    loc = Localizer(_spread, frontend="numpy")
    audio = np.sin(np.arange(3 * RATE) / 4.0)
    with opener(picture) as handle:
        assert loc(handle, audio, sample_rate=RATE).box == loc(picture, audio, sample_rate=RATE).box


def test_a_frame_that_is_no_image_names_frame():
    loc = Localizer(_spread, frontend="numpy")
    with pytest.raises(InputError, match="^frame: expected an image file Pillow can read"):
        loc(io.BytesIO(b"not an image"), np.zeros(RATE), sample_rate=RATE)


# ------------------------------------------------------------------ ONNX without a manifest


def test_an_onnx_graph_without_its_manifest_warns_at_load(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    export = pytest.importorskip("avsdk.export.onnx_export", reason="the ONNX exporter is not installed")
    import torch

    from avsdk.export.manifest import manifest_path
    from avsdk.models import ModelConfig, build_model

    torch.manual_seed(0)
    path = export.export_onnx(build_model(ModelConfig(), pretrained=False).eval(), tmp_path / "edge.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Localizer.load(path)  # with its manifest: silent
    manifest_path(path).unlink()
    with pytest.warns(UserWarning, match=r"'.*edge\.onnx' has no manifest 'edge\.onnx\.json': running it with "
                      r"the default preprocessing \(transform 'stretch', 3\.0 s clips, log-mel audio, 224 px"):
        loc = Localizer.load(path)
    assert loc.clip_seconds == 3.0 and loc.visibility is None
