"""Parse a big file on two cores: its first half here, its second half in a forked child.

Used by :func:`~backfill.journal.state.load_manifest` for a manifest of
:data:`SPLIT_MIN_BYTES` or more when this process may run on two CPUs or more (a
1,000,000-record manifest is ~450 MB; one core parses it in ~3 s). The halves meet at a
line start; each side reads its own byte range with ``pread`` (no shared file offset).
The child's result is a list of pieces of plain types, sent back through a pipe one
length-prefixed ``marshal`` frame each (for 500,000 packed records marshal takes 0.14 s
to write and 0.10 s to read where pickle, which memoises every object, takes 0.42 s to
write; one piece at a time, so the parent never holds the whole stream as bytes; an
exception goes pickled). The child leaves with ``os._exit`` (no atexit handlers, no
flushing of the parent's buffers). Whatever goes wrong with the
child (no fork, a crash, a kill, an unpicklable result) costs time, never correctness:
its half is then parsed here. ``BACKFILL_LOAD_PROCESSES=1`` keeps it all in one process.
"""

from __future__ import annotations

import contextlib
import io
import marshal
import os
import pickle
import signal
import struct
import warnings
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, Final, TypeVar

A = TypeVar("A")

SPLIT_MIN_BYTES: Final = 64 << 20
_BUFFER: Final = 1 << 20
_FRAME: Final = struct.Struct("<Q")  # a frame's length; the top bit: a pickled exception
_ERROR: Final = 1 << 63


class _Range(io.RawIOBase):
    """Bytes ``[start, stop)`` of an open file, read with pread."""

    def __init__(self, fd: int, start: int, stop: int) -> None:
        super().__init__()
        self._fd, self._pos, self._stop = fd, start, stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._stop - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def byte_range(fd: int, start: int, stop: int) -> BinaryIO:
    """A buffered reader of bytes ``[start, stop)`` of ``fd`` (lines iterate at C speed)."""
    return io.BufferedReader(_Range(fd, start, stop), _BUFFER)


def cut_point(fd: int, size: int) -> int:
    """The offset of the first line that starts after the middle (``size``: none does)."""
    pos = size // 2
    while pos < size:
        chunk = os.pread(fd, 1 << 16, pos)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline >= 0:
            return pos + newline + 1
        pos += len(chunk)
    return size


def worth_splitting(size: int) -> bool:
    if size < SPLIT_MIN_BYTES or not hasattr(os, "fork"):
        return False
    if os.environ.get("BACKFILL_LOAD_PROCESSES", "").strip() == "1":
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus > 1


def parse_halves(fd: int, cut: int, size: int, here: Callable[[BinaryIO], A],
                 there: Callable[[BinaryIO], list[Any]]) -> tuple[A, list[Any] | Exception]:
    """``here(bytes [0, cut))`` in this process while a forked child runs
    ``there(bytes [cut, size))``; both results (the child's exception, if it raised
    one, in place of its result). An exception of ``here`` is raised (the child is
    then killed); a child that gives no answer has its half parsed here."""
    child = _fork(fd, cut, size, there)
    answer = _LOST
    try:
        first = here(byte_range(fd, 0, cut))
        answer = _receive(child)
    finally:
        _reap(child, answered=answer is not _LOST)
    if answer is _LOST:
        try:
            return first, there(byte_range(fd, cut, size))
        except Exception as exc:
            return first, exc
    return first, answer


_LOST: Final[Any] = object()
_Child = tuple[int, int] | None  # (pid, read end of the pipe), or None: no child


def _fork(fd: int, cut: int, size: int, there: Callable[[BinaryIO], list[Any]]) -> _Child:
    try:
        r, w = os.pipe()
    except OSError:
        return None
    try:
        with warnings.catch_warnings():  # 3.12+ warns about fork with threads; the
            warnings.simplefilter("ignore", DeprecationWarning)  # child runs no other
            pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child
        code = 1
        try:
            os.close(r)
            _quiet_signals()
            _widen(w)
            try:
                answer: list[Any] | Exception = there(byte_range(fd, cut, size))
            except Exception as exc:
                answer = exc
            with open(w, "wb", buffering=_BUFFER) as out:
                _send(out, answer)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _quiet_signals() -> None:
    """In the child: Ctrl-C or SIGTERM end it at once (the parent decides what they
    mean), and no signal of its own reaches the parent's event loop wake-up pipe."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)


def _widen(fd: int) -> None:
    """A 1 MiB pipe (Linux): fewer switches between writer and reader than 64 KiB."""
    with contextlib.suppress(AttributeError, OSError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)


def _send(out: BinaryIO, answer: Iterable[Any] | Exception) -> None:
    if isinstance(answer, Exception):
        data = pickle.dumps(answer)
        out.write(_FRAME.pack(len(data) | _ERROR))
        out.write(data)
        return
    for piece in answer:
        data = marshal.dumps(piece)
        out.write(_FRAME.pack(len(data)))
        out.write(data)
    out.write(_FRAME.pack(0))


def _receive(child: _Child) -> Any:
    """The child's pieces or exception; _LOST if it ended before its last frame."""
    if child is None:
        return _LOST
    pieces: list[Any] = []
    try:
        with open(child[1], "rb", buffering=_BUFFER, closefd=False) as pipe:
            while len(head := pipe.read(_FRAME.size)) == _FRAME.size:
                (n,) = _FRAME.unpack(head)
                if n == 0:
                    return pieces
                data = pipe.read(n & ~_ERROR)
                if len(data) != n & ~_ERROR:
                    break
                if n & _ERROR:
                    return pickle.loads(data)
                pieces.append(marshal.loads(data))
    except Exception:  # anything unexpected: parse its half here
        pass
    return _LOST


def _reap(child: _Child, *, answered: bool) -> None:
    """Wait for the child; killed first unless it answered (then it is leaving anyway,
    and a pid someone else reaped is never signalled)."""
    if child is None:
        return
    pid, r = child
    os.close(r)
    if not answered:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
