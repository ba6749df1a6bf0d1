"""Keys → folders under the local store's root, reached by descriptor, never leaving it.

The root (the user's ``output_dir``; a link there is the user's own and is followed) is
opened once. Everything below it is reached from that descriptor, one name at a time,
without following a link (:func:`.dirs.walk`), afresh at every commit: a workspace folder
swapped for a link in the middle of a run is met by the next walk and refused.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ...errors import FileStorageError, StorageError
from .dirs import make_root, walk


def key_parts(rel: PurePosixPath) -> tuple[str, ...]:
    """The names of ``rel`` (folders, then the file); FileStorageError if it would leave
    the root (absolute, ``..``, ``.``, empty: :func:`naming.render_path` already
    sanitises, this is defence in depth)."""
    rel = PurePosixPath(rel)
    if rel.is_absolute() or not rel.parts or any(p in ("..", ".") for p in rel.parts):
        raise FileStorageError(f"{rel}: path would leave the output directory")
    return rel.parts


class Root:
    """The store's root directory: :meth:`final` maps a key to its path (for messages),
    :meth:`folder` opens a folder below it by descriptor."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root).absolute()
        self._fd = -1
        self._lock = threading.Lock()

    def final(self, rel: PurePosixPath) -> Path:
        """Absolute final path ``root/rel``; FileStorageError if it would leave the root.
        Pure: no system call (the folders are walked when they are used)."""
        return self.path.joinpath(*key_parts(rel))

    def fd(self, *, create: bool) -> int | None:
        """The root's descriptor, opened once (blocking: call it in a worker thread). A
        missing root is made (durably) if ``create``, else None."""
        if self._fd >= 0:
            return self._fd
        with self._lock:  # worker threads share the one descriptor
            if self._fd < 0:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                try:
                    self._fd = os.open(self.path, flags)
                except FileNotFoundError:
                    if not create:
                        return None
                    make_root(self.path)
                    self._fd = os.open(self.path, flags)
        return self._fd

    def folder(self, names: Sequence[str], *, create: bool,
               error: type[StorageError] = FileStorageError) -> int:
        """A new descriptor of ``root/names…`` (the caller closes it), walked now from the
        root without following a link; FileNotFoundError if missing and not ``create``."""
        fd = self.fd(create=create)
        if fd is None:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory")
        return walk(fd, self.path, names, create=create, error=error)

    def close(self) -> None:
        """Close the root's descriptor (when no thread uses it any more)."""
        with self._lock:
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                os.close(fd)
