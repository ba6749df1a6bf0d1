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
from .dirs import DIR_FLAGS

PART_SUFFIX = TEMP_SUFFIX  # naming keeps every final name from ending in it
PARTIALS = ".backfill-partial"


def partials_dir(root: Path, owner: str) -> Path:
    """The private folder of partial files for ``owner`` (a manifest) under ``root``."""
    return root.joinpath(*partials_names(owner))


def partials_names(owner: str) -> tuple[str, str]:
    """The private folder's names below the root: ``(PARTIALS, <id>)``."""
    return PARTIALS, hashlib.sha256(owner.encode()).hexdigest()[:16]


def drop_partials(root_fd: int, names: tuple[str, str]) -> None:
    """Remove the private folder ``names`` below the root (``root_fd``) and its parent if
    they are empty (blocking; reached without following a link)."""
    top, key = names
    with contextlib.suppress(OSError):  # a link, not empty (another manifest's), or gone
        fd = os.open(top, DIR_FLAGS, dir_fd=root_fd)
        try:
            with contextlib.suppress(OSError):
                os.rmdir(key, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(top, dir_fd=root_fd)


def part_name(rel: PurePosixPath) -> str:
    """The partial file's name for ``rel``: flat, unique per key, never a final name."""
    return hashlib.sha256(str(rel).encode()).hexdigest()[:32] + PART_SUFFIX


class Part:
    """The ``.part`` file of one save, in the store's private folder: its name there and,
    once :meth:`open`, its descriptor and the folder's (held until the rename or the
    discard, so both act in the folder the file was made in). ``path`` is for messages.
    ``fd`` is -1 once closed (or not opened yet)."""

    __slots__ = ("dir_fd", "fd", "name", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        self.fd = -1
        self.dir_fd = -1

    def open(self, dir_fd: int) -> None:
        """Create the file in the folder ``dir_fd`` (taken over: closed with the part):
        new (O_EXCL), never through a link (O_NOFOLLOW), readable for the zip check."""
        self.dir_fd = dir_fd
        self.fd = os.open(self.name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)

    def close(self) -> None:
        """Close the file (the folder's descriptor stays, for the rename)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def release(self) -> None:
        """Close the file and the folder's descriptor (after the rename)."""
        self.close()
        if self.dir_fd >= 0:
            fd, self.dir_fd = self.dir_fd, -1
            os.close(fd)

    def discard(self) -> None:
        """Close and remove the file. If removing fails, the original error matters more;
        the next run's sweep removes it."""
        self.close()
        if self.dir_fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self.name, dir_fd=self.dir_fd)
        self.release()


class LocalReceived:
    """A whole body taken in by :meth:`LocalStore.receive`, not yet durable.

    Hand it to :meth:`LocalStore.commit`, or :meth:`discard` it. Holds at most
    ``chunk_size`` bytes of the body in memory (``tail``; the rest is in the ``.part``
    file, whose ``fd`` is open for a large body and -1 for a small one).
    """

    __slots__ = ("final", "hasher", "part", "rel", "replace", "tail", "total")

    def __init__(self, rel: PurePosixPath, final: Path, part: Part, hasher: hashlib._Hash,
                 tail: bytes, total: int) -> None:
        self.rel = rel
        self.final = final
        self.replace = False  # set by commit: whether other bytes at the final name go
        self.part = part
        self.hasher = hasher
        self.tail = tail
        self.total = total

    def discard(self) -> None:
        """Forget the body: close and remove the ``.part`` file, if there is one."""
        self.part.discard()
