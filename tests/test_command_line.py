"""avsdk.command_line: one line and exit status 2 for user errors, flag names, path checks."""
from pathlib import Path

import pytest

from avsdk.command_line import command, flags, input_file, output_file, output_folder
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
