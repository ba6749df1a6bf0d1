"""Parse a big file on two cores: this process and a forked child share out its spans.

Used by :func:`~backfill.journal.state.load_manifest` for a manifest of
:data:`SPLIT_MIN_BYTES` or more when this process may run on two CPUs or more (a
1,000,000-record manifest is ~450 MB; one core parses it in ~3 s). The file is cut at
line starts into spans of about :data:`SPAN_BYTES`; their numbers wait in a pipe, and
each process takes the next one when it is free (a read of two bytes from a pipe is
atomic), so a child that gets little CPU on a busy machine parses few spans instead of
holding the parent up (with two fixed halves, the parent waited for it: 4.6-6.1 s
against 3.5-4.3 s in one process at load average 2-2.8). Each side reads its spans with
``pread`` (no shared file offset). The child sends its answer back through a pipe as
length-prefixed ``marshal`` frames (for 500,000 packed records marshal takes 0.14 s to
write and 0.10 s to read where pickle, which memoises every object, takes 0.42 s to
write; one piece at a time, so the parent never holds the whole stream as bytes) and
leaves with ``os._exit`` (no atexit handlers, no flushing of the parent's buffers).
Whatever goes wrong with the child (no fork, a crash, a kill, an exception) costs time,
never correctness: the caller parses the spans it did not get back itself.
``BACKFILL_LOAD_PROCESSES=1`` keeps it all in one process.
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
from typing import Any, BinaryIO, Final

SPLIT_MIN_BYTES: Final = 64 << 20
SPAN_BYTES: Final = 8 << 20
_TOKEN: Final = 2  # bytes per span number in the queue
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


def _line_start(fd: int, pos: int, size: int) -> int:
    """The offset of the first line that starts after ``pos`` (``size``: none does)."""
    while pos < size:
        chunk = os.pread(fd, 1 << 16, pos)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline >= 0:
            return pos + newline + 1
        pos += len(chunk)
    return size


def spans(fd: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of about :data:`SPAN_BYTES` that cover the file, each
    beginning at a line start."""
    out: list[tuple[int, int]] = []
    start, span = 0, max(SPAN_BYTES, 1)
    while start < size and len(out) < 1 << 14:  # the queue: 32 KiB, well inside a pipe
        stop = _line_start(fd, start + span - 1, size)
        out.append((start, stop))
        start = stop
    if start < size:
        out[-1] = (out[-1][0], size)
    return out


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


def share(fd: int, ranges: list[tuple[int, int]], here: Callable[[int, BinaryIO], None],
          there: Callable[[int, BinaryIO], None],
          answer: Callable[[list[int]], list[Any]]) -> tuple[list[int], list[Any] | None]:
    """Parse the ranges in this process (``here(i, lines)``) and in a forked child
    (``there(i, lines)``; then it sends ``answer(the numbers it parsed)``), each taking
    the next range when free. Returns the numbers parsed here and the child's answer,
    None when there is none (no fork, it died or raised): the ranges parsed neither here
    nor in an answer are then the caller's to parse. An exception of ``here`` is raised
    (the child is then killed)."""
    queue = _queue(len(ranges))
    child = None if queue is None else _fork(fd, ranges, queue, there, answer)
    reply: Any = _LOST
    mine: list[int] = []
    try:
        if queue is not None:
            while token := os.read(queue, _TOKEN):
                i = int.from_bytes(token, "big")
                here(i, byte_range(fd, *ranges[i]))
                mine.append(i)
        reply = _receive(child)
    finally:
        if queue is not None:
            os.close(queue)
        _reap(child, answered=reply is not _LOST)
    return mine, None if reply is _LOST or isinstance(reply, Exception) else reply


def _queue(n: int) -> int | None:
    """A pipe holding the numbers 0..n-1 (its write end closed: empty reads b"")."""
    try:
        r, w = os.pipe()
    except OSError:
        return None
    try:
        os.write(w, b"".join(i.to_bytes(_TOKEN, "big") for i in range(n)))
    except OSError:
        os.close(r)
        return None
    finally:
        os.close(w)
    return r


_LOST: Final[Any] = object()
_Child = tuple[int, int] | None  # (pid, read end of the pipe), or None: no child


def _fork(fd: int, ranges: list[tuple[int, int]], queue: int,
          there: Callable[[int, BinaryIO], None],
          answer: Callable[[list[int]], list[Any]]) -> _Child:
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
                done = []
                while token := os.read(queue, _TOKEN):
                    i = int.from_bytes(token, "big")
                    there(i, byte_range(fd, *ranges[i]))
                    done.append(i)
                result: list[Any] | Exception = answer(done)
            except Exception as exc:
                result = exc
            with open(w, "wb", buffering=_BUFFER) as out:
                _send(out, result)
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
