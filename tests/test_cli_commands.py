"""The ``avsdk`` commands over streams (localize-video to a video, stream), Ctrl-C, and the
train / evaluate / export / pipeline commands that forward to those tools' own mains."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avsdk import cli
from avsdk.localizer import Localizer

av = pytest.importorskip("av", reason="PyAV (extra 'video') is not installed")

from test_stream import TEN_FPS, _maps, _write  # noqa: E402  (the same synthetic videos and model)

GRAPH = "testsrc=duration=1:size=64x48:rate=10[out0];sine=frequency=440:duration=1[out1]"


@pytest.fixture
def model(monkeypatch):
    """``Localizer.load`` of any name gives a fast stand-in model; the list gets each batch size."""
    calls = []

    def maps(frames, audio):
        calls.append(len(frames))
        return _maps(frames, audio)

    monkeypatch.setattr(Localizer, "load", classmethod(lambda cls, path, **kwargs: Localizer(maps, frontend="numpy")))
    return calls


@pytest.fixture
def video(tmp_path):
    return _write(tmp_path / "in.mkv", TEN_FPS[:20], (0.0, 2.0))


def _frames(path):
    with av.open(str(path)) as container:
        return [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


# ------------------------------------------------------------------------- localize-video


def test_localize_video_writes_every_frame_drawn_over_with_the_sound(model, video, tmp_path, capsys):
    from avsdk.overlay import draw_overlay

    out = tmp_path / "overlay.mp4"
    assert cli.main(["localize-video", "m.pt", str(video), "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"wrote {out}: 20 frames, 0.000 to 1.900 s, with the sound\n"
    assert captured.err == ""
    written = _frames(out)
    assert [t for t, _ in written] == pytest.approx(TEN_FPS[:20])
    with av.open(str(out)) as container:
        (sound,) = container.streams.audio
        assert sound.codec_context.name == "aac" and float(sound.duration * sound.time_base) > 1.9
    results = list(Localizer(_maps, frontend="numpy").stream(video))
    for (_, picture), r in zip(written, results):
        drawn = draw_overlay(r.frame, r.result.heatmap, r.result.box, r.result.peak).astype(int)
        assert np.abs(picture.astype(int) - drawn).mean() < 8  # H.264's error, not a different picture
        assert np.abs(picture.astype(int) - r.frame.astype(int)).mean() > 20


def test_localize_video_shows_progress_unless_told_not_to(model, video, tmp_path, capsys):
    assert cli.main(["localize-video", "m.pt", str(video), "--out", str(tmp_path / "a.mkv"), "--every", "0.5",
                     "--batch-size", "3"]) == 0
    assert "| 0/4 [" in capsys.readouterr().err  # tqdm's bar, its total from the file's length and --every
    assert model == [3, 1]
    assert len(_frames(tmp_path / "a.mkv")) == 4


def test_localize_video_keeps_one_frame_to_a_png(model, video, tmp_path, capsys):
    out = tmp_path / "frame.png"
    assert cli.main(["localize-video", "m.pt", str(video), "--time", "1", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("frame at 1.000 s\n") and out.is_file()
    assert model == [1]


@pytest.mark.parametrize("flags,error", [
    (["--out", "x.mp4", "--time", "1"], "error: --time: expected no --time with a video --out"),
    (["--out", "x.png", "--every", "1"], "error: --every: expected no --every without a video --out"),
    (["--batch-size", "4"], "error: --batch-size: expected no --batch-size without a video --out"),
    (["--out", "x.txt"], "error: --out: expected a file name ending in .png (the frame at --time) or .mp4 "),
    (["--out", "x.mp4", "--every", "0"], "error: --every: expected None or a number of seconds > 0"),
], ids=["time-and-video", "every-and-png", "batch-without-video", "suffix", "every-0"])
def test_localize_video_refuses_flags_that_do_not_go_together(model, video, tmp_path, capsys, flags, error):
    flags = [str(tmp_path / f) if f.startswith("x.") else f for f in flags]
    assert cli.main(["localize-video", "m.pt", str(video), *flags]) == 2
    assert capsys.readouterr().err.startswith(error)
    assert not list(tmp_path.glob("x.*"))


# ------------------------------------------------------------------------- stream


def test_stream_prints_a_json_line_per_result(model, video, capsys):
    assert cli.main(["stream", "m.pt", str(video), "--every", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["time"] for line in lines] == [0.0, 1.0]
    assert lines[1]["window"] == {"start": 0.0, "end": 2.0} and lines[1]["dropped"] == 0
    assert set(lines[0]) == {"time", "dropped", "box", "peak", "score", "on_screen", "window"}


def test_stream_passes_format_and_options_to_ffmpeg_and_writes_the_picture(model, tmp_path, capsys):
    out = tmp_path / "live.mkv"
    code = cli.main(["stream", "m.pt", "ignored", "--format", "lavfi", "--option", f"graph={GRAPH}",
                     "--out", str(out)])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and len(lines) + lines[-1]["dropped"] == 10
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video"]  # a live source's sound is not kept
    assert [t for t, _ in _frames(out)] == pytest.approx([line["time"] for line in lines], abs=1e-3)


def test_stream_refuses_an_option_without_a_value(model, capsys):
    assert cli.main(["stream", "m.pt", "x", "--format", "lavfi", "--option", "graph"]) == 2
    assert capsys.readouterr().err.startswith("error: --option: expected NAME=VALUE")


@pytest.mark.parametrize("command", ["stream", "localize-video"])
def test_ctrl_c_ends_the_stream_and_keeps_the_video_so_far(command, video, tmp_path, monkeypatch, capsys):
    calls = []

    def interrupted(frames, audio):
        calls.append(len(frames))
        if len(calls) == 5:
            raise KeyboardInterrupt
        return _maps(frames, audio)

    monkeypatch.setattr(Localizer, "load", classmethod(lambda cls, path, **kw: Localizer(interrupted,
                                                                                        frontend="numpy")))
    out = tmp_path / "partial.mp4"
    assert cli.main([command, "m.pt", str(video), "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [t for t, _ in _frames(out)] == pytest.approx(TEN_FPS[:4])


# ------------------------------------------------------------------------- Ctrl-C, forwarded tools


def test_command_turns_ctrl_c_into_one_line_and_status_130(capsys):
    @cli.command
    def main():
        raise KeyboardInterrupt

    assert main() == 130
    assert capsys.readouterr().err == "interrupted\n"


PROGS = {"train": "python -m avsdk.training.train", "evaluate": "python -m avsdk.training.evaluate",
         "export": "build_engine.py", "pipeline": "python -m avsdk.training.pipeline"}


@pytest.mark.parametrize("name", list(PROGS))
def test_a_tool_command_shows_that_tools_help(name, capsys):
    assert set(PROGS) == set(cli.TOOLS)
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {PROGS[name]} ")


@pytest.mark.parametrize("name", list(PROGS))
def test_a_tool_command_forwards_its_arguments_unchanged(name, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--no-such-flag"])
    assert done.value.code == 2
    assert f"{PROGS[name]}: error: " in capsys.readouterr().err


def test_evaluate_gets_the_flags_that_avsdk_itself_has_too(tmp_path, capsys):
    """--data and --transform go to the tool, not to avsdk's parser."""
    code = cli.main(["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(tmp_path),
                     "--transform", "crop"])
    assert code == 2
    assert capsys.readouterr().err == "error: --transform: expected 'stretch' or 'centre_crop', received 'crop'\n"


def test_avsdk_help_lists_the_new_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("stream", "train", "evaluate", "export", "pipeline"):
        assert name in out
