"""A body between receive and commit: its private ``.part`` file and what is in memory.

Partial files live in a private folder of the run's own, ``<root>/.backfill-partial/<id>``
(:func:`partials_dir`; the id is the manifest's), on the same file system as the files, so
that the rename into place stays atomic. Two configs with their own manifests but one
output directory, or another program's ``*.part`` files there, are never touched: a
sweep deletes only inside that folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path, PurePosixPath

from ...naming import TEMP_SUFFIX

PART_SUFFIX = TEMP_SUFFIX  # naming keeps every final name from ending in it
PARTIALS = ".backfill-partial"


def partials_dir(root: Path, owner: str) -> Path:
    """The private folder of partial files for ``owner`` (a manifest) under ``root``."""
    key = hashlib.sha256(owner.encode()).hexdigest()[:16]
    return root / PARTIALS / key


def drop_partials(partials: Path) -> None:
    """Remove the private folder and its parent if they are empty (blocking)."""
    for directory in (partials, partials.parent):
        with contextlib.suppress(OSError):  # not empty (another manifest's), or gone
            os.rmdir(directory)


def part_name(rel: PurePosixPath) -> str:
    """The partial file's name for ``rel``: flat, unique per key, never a final name."""
    return hashlib.sha256(str(rel).encode()).hexdigest()[:32] + PART_SUFFIX


class Part:
    """The open ``.part`` file of one save, in the store's private folder; ``final_dir``
    is where it is renamed to. ``fd`` is -1 once closed (or not opened yet)."""

    __slots__ = ("fd", "final_dir", "path")

    def __init__(self, path: Path, final_dir: Path) -> None:
        self.path = path
        self.final_dir = final_dir
        self.fd = -1

    def open(self) -> None:
        """Create the file: new (O_EXCL), never through a link (O_NOFOLLOW)."""
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o644)

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
