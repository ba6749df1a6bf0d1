"""Local directories: checked before a run writes anything, created durably."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from ...errors import OutputDirError, os_error_reason
from .durability import fsync_dir


def prepare_dirs(dirs: Iterable[Path]) -> None:
    """OutputDirError (exit 2) if a directory cannot be made or written; all are checked
    before any is created, so a refusal writes nothing. Then each is created."""
    dirs = sorted(set(dirs))
    for d in dirs:
        base = d
        while not base.exists() and base.parent != base:  # the nearest existing one
            base = base.parent
        if not base.is_dir():
            raise OutputDirError(f"{d}: not a directory" if base == d else
                                 f"{d}: cannot create directory ({base} is not a directory)")
        if not os.access(base, os.W_OK | os.X_OK):
            raise OutputDirError(f"{d}: directory is not writable" if base == d else
                                 f"{d}: cannot create directory ({base} is not writable)")
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where the directory should be
            raise OutputDirError(f"{d}: not a directory") from None
        except OSError as exc:
            raise OutputDirError(f"{d}: cannot create directory "
                                 f"({os_error_reason(exc)})") from None
        if not os.access(d, os.W_OK | os.X_OK):
            raise OutputDirError(f"{d}: directory is not writable")


class DurableDirs:
    """Creates directories (and missing parents) with every new entry made durable;
    remembers what exists. Thread-safe: worker threads share one."""

    def __init__(self) -> None:
        self._known: set[Path] = set()
        self._lock = threading.Lock()

    def ensure(self, directory: Path) -> None:
        if directory in self._known:
            return
        with self._lock:  # another thread may be creating the same directories
            missing: list[Path] = []
            d = directory
            while not d.is_dir():
                missing.append(d)
                if d.parent == d:
                    break
                d = d.parent
            for d in reversed(missing):
                try:
                    os.mkdir(d)
                except FileExistsError:
                    if not d.is_dir():
                        raise NotADirectoryError(errno.ENOTDIR, "not a directory") from None
                fsync_dir(d.parent)
            self._known.add(directory)
