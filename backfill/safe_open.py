"""Opening a file the user named (config, manifest) without hanging or following a link.

``open()`` on a FIFO waits for a writer forever; ``/dev/zero`` reads without end (a
MemoryError); a symbolic link is followed wherever it points. :func:`open_regular` opens
with ``O_NONBLOCK`` (a FIFO opens at once) and, when asked, ``O_NOFOLLOW``, then looks at
what it opened (``fstat``) and refuses anything but a regular file, in one line that
names the kind. :func:`read_small` also bounds how much it reads.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(OSError):
    """The path is not a regular file; ``str()`` says what it is instead."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file")
        self.kind = kind
        self.filename = str(path)

    def __str__(self) -> str:
        return str(self.strerror)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is (``"a named pipe (FIFO)"``…), or None for a regular one."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Path, *, follow_symlinks: bool, write: bool = False) -> int:
    """A descriptor on the regular file at ``path`` (read-only, or append with ``write``).

    OSError as ``os.open`` raises it (FileNotFoundError, PermissionError, ...); a link at
    ``path`` without ``follow_symlinks``: NotRegularFile ("is a symbolic link");
    anything else that is not a regular file: NotRegularFile naming its kind.
    """
    flags = os.O_CLOEXEC | os.O_NONBLOCK | (os.O_WRONLY | os.O_APPEND if write else os.O_RDONLY)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks and os.path.islink(path):
            raise NotRegularFile(path, "a symbolic link") from None
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing without a reader
            raise NotRegularFile(path, "a named pipe (FIFO)") from None
        raise
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(path, kind)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_small(path: Path, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The whole regular file at ``path``; NotRegularFile, or ValueError past ``limit``
    bytes; other OSError as raised."""
    fd = open_regular(path, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


def dangling_link(path: Path) -> bool:
    """True when ``path`` is a symbolic link to nothing."""
    return os.path.islink(path) and not os.path.exists(path)
