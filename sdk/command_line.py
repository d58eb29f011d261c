"""What avsdk's command-line tools share: a user error is one line and exit status 2.

    @command
    def main(argv=None) -> int:
        args = parser.parse_args(argv)
        with flags({"batch_size": "--batch-size"}):       # "batch_size: ..." -> "--batch-size: ..."
            config = TrainConfig(batch_size=args.batch_size, ...)
        output_folder("--out", args.out)                   # before any slow work
        ...
        write_output("--json", args.json, text.encode())   # atomically; OSError -> one line

avsdk's own errors (bad input, bad checkpoint, missing optional dependency) print
``error: <message>`` on stderr and exit with status 2; anything else is a bug and keeps its
traceback. Paths are checked up front so that a run does not fail after its slow part, and
every file a tool writes goes through write_output: a failure midway (a full disk) leaves the
previous file whole and is reported as one line naming the flag. A tool whose output is read
through a pipe (``avsdk ... | head -1``) is also decorated with quiet_broken_pipe.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from avsdk._atomic import write_atomic
from avsdk.errors import AvsdkError, bad_input, renamed


def command(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a CLI's ``main``: an AvsdkError becomes ``error: <message>`` on stderr, exit 2."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except AvsdkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def quiet_broken_pipe(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a CLI's ``main`` whose output may be piped: when the reader closes the pipe early
    (``avsdk localize ... | head -1``), exit with status 1 and no BrokenPipeError traceback.

    The recipe of Python's documentation (signal module, "Note on SIGPIPE"): stdout is flushed
    here, so that a closed pipe fails inside the handler rather than at interpreter exit, then
    pointed at devnull, so that the interpreter's last flush has nowhere to fail.
    """

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            _stdout_to_devnull()
            return 1

    return run


def _stdout_to_devnull() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's stand-in)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def flags(names: Mapping[str, str]):
    """Re-raise an InputError about an argument in ``names`` as one about its flag, so that the
    user reads the option they typed, not a dataclass field (``avsdk.errors.renamed``)."""
    return renamed(names)


def input_file(flag: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path; InputError naming ``flag`` unless it is an existing file."""
    path = Path(path)
    if not path.is_file():
        raise bad_input(flag, "an existing file", str(path))
    return path


def output_file(flag: str, path: str | os.PathLike, suffix: str | None = None) -> Path:
    """``path`` as a Path, checked to be writable as a file (ending in ``suffix`` if given)."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise bad_input(flag, f"a file name ending in {suffix}", str(path))
    if path.is_dir():
        raise bad_input(flag, "a file to write", f"{str(path)!r}, an existing folder", described=True)
    _check_writable(flag, path.parent, path)
    return path


def write_output(flag: str, path: str | os.PathLike, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (bytes, or a function that writes to a binary handle) to ``path``
    atomically (avsdk._atomic.write_atomic): readers, and a write that fails midway, see the
    previous file whole. An OSError (a full disk, a quota, an I/O error) becomes an InputError
    naming ``flag``, a one-line error for the command-line tools; returns the path written."""
    write = data if callable(data) else (lambda handle: handle.write(data))
    try:
        return write_atomic(path, write)
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise bad_input(flag, "a file that can be written", f"{str(path)!r} ({why}; nothing was written)",
                        described=True) from None


def output_folder(flag: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked to be a folder (existing or to create) one can write in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise bad_input(flag, "a folder to write in", f"{str(path)!r}, an existing file", described=True)
    _check_writable(flag, path, path)
    return path


def _check_writable(flag: str, folder: Path, path: Path) -> None:
    """Files can be created in ``folder``: its nearest existing ancestor is a folder that takes a
    file. The probe is a real (anonymous) file, as permission bits lie to root."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise bad_input(flag, "a path under a folder", f"{str(path)!r} ({existing} is a file)", described=True)
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise bad_input(flag, "a writable location", f"{str(path)!r} ({existing}: {exc.strerror})",
                        described=True) from None
