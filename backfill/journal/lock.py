"""The run lock: one writer per manifest, for the whole run."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from ..errors import LockedError, OutputDirError, StorageError, os_error_reason
from ..safe_open import kind_of


def lock_path(manifest_path: Path) -> Path:
    """``<manifest>.lock``."""
    return manifest_path.with_name(manifest_path.name + ".lock")


def open_lock_file(path: Path) -> int:
    """A read-write descriptor of the lock file ``path`` (made, with its folders, if
    missing): never through a link (a lock file is truncated), never a FIFO or device.
    OutputDirError (exit 2, nothing written) naming the path otherwise."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                     | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        why = "is a symbolic link" if os.path.islink(path) else os_error_reason(exc)
        raise OutputDirError(f"{path}: cannot create the lock file ({why})") from None
    kind = kind_of(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise OutputDirError(f"{path}: cannot use the lock file (is {kind})")
    os.set_blocking(fd, True)
    return fd


class ManifestLock:
    """Exclusive lock on ``<manifest>.lock`` for a whole run (a sync context manager).

    ``flock(LOCK_EX | LOCK_NB)``: the kernel drops it when the process dies, so a killed
    run never leaves a stale lock. The holder's PID is written into the file so that a
    refused run can name it: LockedError ``"<manifest> is in use by another run (pid N)"``.
    The lock file is left in place (deleting it would let two runs lock different inodes).
    """

    def __init__(self, manifest_path: Path) -> None:
        self.manifest_path = Path(manifest_path)
        self.path = lock_path(self.manifest_path)
        self._fd = -1

    def acquire(self) -> None:
        if self._fd >= 0:
            raise RuntimeError("ManifestLock is already held")
        fd = open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(
                    f"{self.manifest_path} is in use by another run (pid {holder})"
                ) from None
            raise StorageError(
                f"{self.path}: cannot lock ({os_error_reason(exc)})"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)  # closing releases the lock
            raise StorageError(f"{self.path}: cannot write the lock file "
                               f"({os_error_reason(exc)})") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock

    def __enter__(self) -> ManifestLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


