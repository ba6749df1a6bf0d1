"""Making local files durable: the one place that knows how (used by the local store and
the journal).

- :func:`fsync_dir` makes a directory's entries (a new name, a rename) durable.
- :func:`rename_noreplace` renames into a folder only if the name there is free.
- :func:`syncfs_function` finds ``syncfs(2)`` where it reports writeback errors
  (Linux ≥ 5.8): one call makes a whole batch of files durable.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync the directory ``path`` (its entries become durable)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_NOREPLACE = 1
# renameat2 said "not here" (an old kernel, a file system without the flag): fall back
_NO_RENAMEAT2 = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


@functools.cache
def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    if sys.platform != "linux":
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28, musl >= 1.2.4
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def rename_noreplace(src_dir_fd: int, src: str, dst_dir_fd: int, dst: str) -> None:
    """Rename ``src`` (in the folder ``src_dir_fd``) to ``dst`` (in ``dst_dir_fd``) unless
    something is at ``dst``: FileExistsError then, and nothing is changed.

    Atomic (``renameat2(RENAME_NOREPLACE)``) where the kernel and the file system have it;
    elsewhere ``dst`` is looked at just before ``os.replace`` (a name made in between
    would be replaced: the one window left, and only there)."""
    func = _renameat2()
    if func is not None:
        if func(src_dir_fd, os.fsencode(src), dst_dir_fd, os.fsencode(dst),
                _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in _NO_RENAMEAT2:
            raise OSError(err, os.strerror(err))
    try:
        os.stat(dst, dir_fd=dst_dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        return
    raise FileExistsError(errno.EEXIST, "already exists")


def syncfs_function() -> Callable[[int], None] | None:
    """``syncfs(fd)`` from the C library on Linux ≥ 5.8, else None.

    Older kernels do not report writeback errors to syncfs, so a failed write could go
    unnoticed: there, and where the call does not exist, files are fsynced one by one.
    """
    if sys.platform != "linux":
        return None
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if func(fd) != 0:  # the GIL is released during the call (a CDLL, not a PyDLL)
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def writev_all(fd: int, chunks: list[bytes]) -> None:
    """os.writev until all of ``chunks`` is written (no copy to gather them)."""
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views.pop(0))
        if n:
            views[0] = views[0][n:]
