"""Time limits for reading one source while writing shards (avsdk.training.shards).

Two levels, because a source can hang in Python or inside C code (FFmpeg) that never returns
to the interpreter:

- the soft limit (:func:`within`): a SIGALRM timer raises :class:`TimedOut` in the reading
  thread; the source is skipped and the shard goes on;
- the hard limit (:class:`Watch`): faulthandler's watchdog, a thread in C that needs neither
  the GIL nor the main thread, writes the stacks to a watch file that names the source first,
  and ends the process. The next attempt at the shard records the source
  (:func:`hung_sources`) and skips it.

Processes that write shards end with their parent (:func:`end_with_parent`), so a killed run
leaves none behind.
"""
from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ingest import Source


class TimedOut(BaseException):
    """Raised by the SIGALRM handler of within. A BaseException, so that the ``except
    Exception`` of read_pairs and of the decoders lets it through."""


def within(seconds: float | None, work):
    """``work()``, or TimedOut raised in it after ``seconds`` (the soft limit): SIGALRM from
    ITIMER_REAL. Without a limit, or where that is not usable, ``work()`` runs with no limit: in
    a thread other than the main one, and where SIGALRM has a handler set outside Python or a
    real-time timer is already running (neither is taken over). The handler and the timer are
    restored. A hang in C code that never returns to the interpreter is not interrupted: the
    handler runs only when it does (the hard limit, Watch, is for that)."""
    if (seconds is None or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGALRM) is None or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        return work()
    armed = True

    def alarm(signum, frame):
        nonlocal armed
        if armed:  # not once the work is done: an alarm delivered late is ignored
            armed = False
            raise TimedOut

    previous = signal.signal(signal.SIGALRM, alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        return work()
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Watch:
    """The hard limit, in a process that write_shards started: faulthandler's watchdog, a thread
    in C that needs neither the GIL nor the main thread, writes the stacks of all threads to
    ``path`` and ends the process (status 1) when a source is still running after ``seconds``.
    ``path`` names the source first, so the next attempt at the shard knows which one hung
    (hung_sources); it is removed when the shard is written."""

    def __init__(self, path: Path, seconds: float):
        self.path, self.seconds = path, seconds
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def arm(self, source: Source) -> None:
        line = json.dumps({"key": source.key, "origin": source.origin, "seconds": self.seconds}) + "\n"
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.write(self.fd, line.encode())  # the stacks follow it
        faulthandler.dump_traceback_later(self.seconds, exit=True, file=self.fd)

    def disarm(self) -> None:
        faulthandler.cancel_dump_traceback_later()

    def close(self) -> None:
        self.disarm()
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


def watched_hang(path: Path) -> dict | None:
    """The source that a watch file says outlived the hard limit ({key, origin, seconds,
    stacks}), or None (no file; or the process ended otherwise, during that source)."""
    try:
        first, _, rest = path.read_text(errors="replace").partition("\n")
        source = json.loads(first)
    except (OSError, ValueError):
        return None
    return {**source, "stacks": rest} if rest.startswith("Timeout (") else None


def hung_sources(out: Path, name: str) -> dict[str, dict]:
    """{key: record} of the sources of shard ``name`` that outlived the hard limit in earlier
    attempts, from ``<name>.hung`` (JSON lines); a hang that the last attempt's watch file shows
    is appended to it first (and fsynced), then the watch file removed."""
    watch, record = out / f"{name}.watch", out / f"{name}.hung"
    hang = watched_hang(watch)
    if hang is not None:
        with open(record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(hang) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    watch.unlink(missing_ok=True)
    hung = {}
    if record.is_file():
        for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                item = json.loads(line)
                hung[item["key"]] = item
            except (ValueError, KeyError, TypeError):  # a line cut short by a crash
                continue
    return hung


_PARENT_WATCHED = False


def end_with_parent() -> None:
    """In a process that write_shards started: end with its parent (Linux: PR_SET_PDEATHSIG), so
    that a killed run leaves no process behind that writes a shard while the rerun does."""
    global _PARENT_WATCHED
    if _PARENT_WATCHED:
        return
    _PARENT_WATCHED = True
    import multiprocessing

    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it ended before prctl
        os._exit(1)


def import_readers() -> None:
    import importlib

    for module in ("av", "PIL.Image", "soundfile", "avsdk.audio", "avsdk.frames", "avsdk.preprocess",
                   "avsdk.video", "avsdk.visibility"):
        try:
            importlib.import_module(module)
        except ImportError:  # read_pairs says what is missing, as a Skipped
            pass
