"""avsdk.cli, the part every command-line tool shares: one line and exit status 2 for user errors, flag names, path checks."""
import errno
import io
import os
import sys
from pathlib import Path

import pytest

from avsdk.cli import (command, flags, input_file, output_file, output_folder, quiet_broken_pipe,
                                write_output)
from avsdk.errors import InputError, bad_input


def test_command_turns_avsdk_errors_into_one_line_and_status_2(capsys):
    @command
    def main(value):
        raise bad_input("--epochs", "an int >= 1", value)

    assert main(0) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: --epochs: expected an int >= 1, received 0\n"


def test_command_keeps_the_traceback_of_bugs():
    @command
    def main():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        main()


def test_flags_rename_the_argument_of_an_input_error():
    with pytest.raises(InputError, match=r"^--batch-size: expected an int >= 2, received 1$") as info:
        with flags({"batch_size": "--batch-size"}):
            raise bad_input("batch_size", "an int >= 2", 1)
    assert info.value.argument == "--batch-size"
    with pytest.raises(InputError, match="^other: "):  # not in the table: unchanged
        with flags({"batch_size": "--batch-size"}):
            raise bad_input("other", "x", 1)


def test_path_checks(tmp_path):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    assert input_file("--in", existing) == existing
    with pytest.raises(InputError, match="^--in: expected an existing file"):
        input_file("--in", tmp_path / "missing.wav")

    assert output_folder("--out", tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()  # checked, not created
    with pytest.raises(InputError, match="^--out: .*an existing file"):
        output_folder("--out", existing)
    with pytest.raises(InputError, match="^--out: .*is a file"):
        output_folder("--out", existing / "run")

    assert output_file("--json", tmp_path / "a" / "r.json") == tmp_path / "a" / "r.json"
    with pytest.raises(InputError, match="^--json: .*an existing folder"):
        output_file("--json", tmp_path)
    with pytest.raises(InputError, match="^--json: .*is a file"):
        output_file("--json", existing / "r.json")
    with pytest.raises(InputError, match=r"^--out: expected a file name ending in \.png"):
        output_file("--out", tmp_path / "o.jpg", suffix=".png")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_unwritable_output_is_caught_even_for_root():
    # /proc takes no new files, whatever its permission bits tell root
    with pytest.raises(InputError, match="^--out: expected a writable location"):
        output_folder("--out", "/proc/avsdk-test")


def test_write_output_is_atomic_and_names_the_flag(tmp_path):
    path = tmp_path / "sub" / "r.json"
    assert write_output("--json", path, b"old") == path
    assert write_output("--json", path, lambda handle: handle.write(b"new")) == path
    assert path.read_bytes() == b"new"

    def full_disk(handle):
        handle.write(b"half of it")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(InputError) as caught:
        write_output("--json", path, full_disk)
    assert str(caught.value) == (f"--json: expected a file that can be written, received {str(path)!r} "
                                 "(No space left on device; nothing was written)")
    assert caught.value.argument == "--json"
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["r.json"]
    with pytest.raises(KeyError):  # not an OSError: a bug, kept as it is
        write_output("--json", path, lambda handle: {}["x"])


def test_quiet_broken_pipe_exits_1_without_a_traceback(monkeypatch, capsys):
    class ClosedPipe(io.TextIOBase):
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    @quiet_broken_pipe
    @command
    def main():
        print("a line for a reader that has gone")
        return 0

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main() == 1
    assert capsys.readouterr().err == ""
    monkeypatch.undo()
    assert quiet_broken_pipe(lambda: 3)() == 3
