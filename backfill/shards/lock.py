"""Shard runs beside each other, never beside a plain run.

Shard runs share the output directory, and a run's start-up sweep removes the partial
downloads that crashed runs left: it must not remove those of a run still going. So:

- a shard run holds a *shared* ``flock`` on the main manifest's lock file, which a plain
  run holds *exclusively* (:class:`~backfill.journal.ManifestLock`): a plain run and shard
  runs exclude each other (LockedError, exit 75), shard runs share it;
- among shard runs, ``<main manifest>.shards.lock``: a shard run that gets it exclusively
  (no other shard run is going) sweeps, then holds it shared like the others, which skip
  the sweep (what a crashed shard left is swept by the next run that is alone).

Like every flock, both die with the process.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from ..errors import LockedError, StorageError, os_error_reason
from ..journal import lock_path
from ..journal.lock import open_lock_file


def _try(fd: int, path: Path, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise StorageError(f"{path}: cannot lock ({os_error_reason(exc)})") from None
    return True


class ShardLocks:
    """A shard run's two shared locks (see the module docstring).

    :meth:`acquire` (blocking while a sibling that was alone sweeps: call it in a
    thread) sets :attr:`alone`; a run that is alone sweeps, then calls :meth:`swept`.
    LockedError when a run without --shard holds the main manifest.
    """

    def __init__(self, main_manifest: Path) -> None:
        self.main_manifest = main_manifest
        self.main_path = lock_path(main_manifest)
        self.group_path = main_manifest.with_name(main_manifest.name + ".shards.lock")
        self.alone = False
        self._fds: list[int] = []

    def acquire(self) -> None:
        fd = open_lock_file(self.main_path)
        self._fds.append(fd)
        if not _try(fd, self.main_path, fcntl.LOCK_SH):
            self.release()
            raise LockedError(f"{self.main_manifest} is in use by a run without --shard; "
                              "shard runs start when it has ended")
        group = open_lock_file(self.group_path)
        self._fds.append(group)
        self.alone = _try(group, self.group_path, fcntl.LOCK_EX)
        if not self.alone:
            fcntl.flock(group, fcntl.LOCK_SH)

    def swept(self) -> None:
        """After the sweep of a run that was alone: share the group lock with later ones."""
        if self.alone and len(self._fds) == 2:
            fcntl.flock(self._fds[1], fcntl.LOCK_SH)

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
