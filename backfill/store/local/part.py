"""A body between receive and commit: its private ``.part`` file and what is in memory."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path, PurePosixPath

from ...naming import TEMP_SUFFIX

PART_SUFFIX = TEMP_SUFFIX  # naming keeps every final name from ending in it


class Part:
    """The open ``.part`` file of one save; ``fd`` is -1 once closed (or not opened yet)."""

    __slots__ = ("fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def discard(self) -> None:
        """Close and remove the file. If removing fails, the original error matters more;
        the next run's sweep removes it."""
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class LocalReceived:
    """A whole body taken in by :meth:`LocalStore.receive`, not yet durable.

    Hand it to :meth:`LocalStore.commit`, or :meth:`discard` it. Holds at most
    ``chunk_size`` bytes of the body in memory (``tail``; the rest is in the ``.part``
    file, whose ``fd`` is open for a large body and -1 for a small one).
    """

    __slots__ = ("final", "hasher", "part", "rel", "tail", "total")

    def __init__(self, rel: PurePosixPath, final: Path, part: Part, hasher: hashlib._Hash,
                 tail: bytes, total: int) -> None:
        self.rel = rel
        self.final = final
        self.part = part
        self.hasher = hasher
        self.tail = tail
        self.total = total

    def discard(self) -> None:
        """Forget the body: close and remove the ``.part`` file, if there is one."""
        self.part.discard()
