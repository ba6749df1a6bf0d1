"""The manifest file opened for appending: whole batches, made to end cleanly first.

:class:`AppendFile` is the writer's file descriptor. Before the first append it makes the
file end cleanly: when the writer opens a file whose last line is torn, it cuts that line off before
appending (it carries nothing loadable, and left in place it would become a corrupt
line in the middle of the file). A complete last record that only lacks its newline
is kept and given one.
"""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any

from ..errors import OutputDirError, StorageError, os_error_reason
from ..safe_open import kind_of
from .record import parse_line


class AppendFile:
    """``path`` opened with O_APPEND (directories made); counts what it writes.

    Blocking calls: run :meth:`open` and :meth:`write` in a worker thread. After a failed
    write it refuses every later one (a retried partial write could glue two lines).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1
        self.broken = False
        self.writes = self.fsyncs = self.bytes = 0
        self.tail_repaired: str | None = None

    def open(self) -> None:
        """At start-up: a manifest that cannot be opened is OutputDirError (exit 2, nothing
        written); never through a link, never a FIFO or a device."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # read-write: the tail is read back through this descriptor, never the name
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                         | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            reason = ("is a symbolic link" if os.path.islink(self.path)
                      else "is a named pipe (FIFO)" if exc.errno == errno.ENXIO
                      else os_error_reason(exc))
            raise OutputDirError(f"{self.path}: cannot open the manifest ({reason})") from None
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            os.close(fd)
            raise OutputDirError(f"{self.path}: cannot open the manifest (is {kind})")
        os.set_blocking(fd, True)
        try:
            self.tail_repaired = repair_tail(fd)
        except OSError as exc:
            os.close(fd)
            raise OutputDirError(
                f"{self.path}: cannot repair the manifest's last line ({os_error_reason(exc)})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def write(self, data: builtins.bytes, sync: bool) -> None:
        """Append ``data`` whole, then fsync if ``sync``; StorageError on failure."""
        if self.broken:
            raise self.stopped()
        try:
            if data:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view) :]
                self.writes += 1
                self.bytes += len(data)
            if sync:
                os.fsync(self.fd)
                self.fsyncs += 1
        except OSError as exc:
            self.broken = True
            raise StorageError(
                f"{self.path}: cannot write the manifest ({os_error_reason(exc)})"
            ) from None

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def stopped(self) -> StorageError:
        return StorageError(f"{self.path}: the manifest writer has stopped")


def _last_line(f: Any, size: int) -> tuple[int, builtins.bytes]:
    """(offset, text) of the last non-blank line of a binary file, text without newline.

    Linear in what it reads: blocks are read backwards and each is looked at once — first
    for the end of the text (trailing whitespace skipped), then for the newline before it;
    the line itself is read once at the end. (Joining each block onto the ones after it
    was quadratic: a 64 MiB torn tail took 27 s.)
    """
    block = 64 * 1024
    end = -1  # just past the last non-whitespace byte, once found
    pos = size
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step)
        if end < 0:
            text = data.rstrip()
            if not text:
                continue
            end = pos + len(text)
            data = text
        cut = data.rfind(b"\n", 0, end - pos)
        if cut >= 0:
            start = pos + cut + 1
            break
    else:
        if end < 0:
            return size, b""
        start = 0
    f.seek(start)
    return start, f.read(end - start)


def repair_tail(fd: int) -> str | None:
    """Make the file open at ``fd`` (read-write) end cleanly before appending (see the
    module docstring); what was done ("torn line removed", "newline added") or None.
    The tail is read through ``fd``: whatever is at the file's name now (a link swapped
    in since it was opened) is never read, nor cut by what it holds."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(size - 1)
        ends_with_newline = f.read(1) == b"\n"
        start, line = _last_line(f, size)
    if not line:
        return None
    try:
        parse_line(line)
    except ValueError:
        os.ftruncate(fd, start)
        os.fsync(fd)
        return "torn line removed"
    if ends_with_newline:
        return None
    os.write(fd, b"\n")
    os.fsync(fd)
    return "newline added"


