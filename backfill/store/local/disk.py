"""The local store's blocking work on the disk, run in worker threads: open a ``.part``
file in the private folder, write it, finish it (check, fsync, place at its final name),
close the store. Every folder is reached by descriptor, afresh each time (:mod:`.paths`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import PurePosixPath

from anyio.from_thread import check_cancelled

from ...errors import InvalidBody, StorageError
from ...zipcheck import zipfile_problem
from ..base import Stored
from .durability import write_all, writev_all
from .part import LocalReceived, Part, drop_partials
from .paths import Root
from .place import place


class Disk:
    """The folders of one store (its root, its private folder ``partials``) and the
    blocking steps that write in them."""

    def __init__(self, root: Root, partials: tuple[str, str]) -> None:
        self.root = root
        self.partials = partials

    def open_folder(self, folder: PurePosixPath) -> int:
        """A new descriptor of ``root/folder``, walked afresh, made if missing."""
        return self.root.folder(folder.parts, create=True)

    def open_part(self, part: Part) -> None:
        # the private folder, walked afresh: a link planted at it stops the run (every
        # file would meet it), never followed
        part.open(self.root.folder(self.partials, create=True, error=StorageError))

    def write_chunks(self, part: Part, hasher: hashlib._Hash, data: list[bytes]) -> None:
        """Append ``data`` to ``part`` (created at the first call), hashed on the way."""
        if part.fd < 0:
            self.open_part(part)
        if len(data) > 64:  # many tiny chunks (a drip): one buffer, within IOV_MAX
            data = [b"".join(data)]
        for chunk in data:
            hasher.update(chunk)
        writev_all(part.fd, data)

    def finish(self, r: LocalReceived) -> Stored:
        """A large body's last step: the tail written, the file zip-checked (read back by
        its descriptor), fsynced, placed in its folder (walked now), the folder fsynced."""
        part = r.part
        r.hasher.update(r.tail)
        write_all(part.fd, r.tail)
        with os.fdopen(os.dup(part.fd), "rb") as f:  # the file itself, not its name
            f.seek(0)
            problem = zipfile_problem(f, checkpoint=check_cancelled)
        if problem:
            raise InvalidBody(str(problem))
        os.fsync(part.fd)
        part.close()
        sha256 = r.hasher.hexdigest()
        folder = self.open_folder(r.rel.parent)
        try:
            place(part, folder, r.final.name, r.final, replace=r.replace, size=r.total,
                  sha256=sha256)
            os.fsync(folder)
        finally:
            os.close(folder)
        part.release()
        return Stored(r.rel, r.total, sha256)

    def close(self) -> None:
        """Remove the private folder if empty, close the root (no thread uses it now)."""
        root_fd = self.root.fd(create=False)
        if root_fd is not None:
            drop_partials(root_fd, self.partials)
        self.root.close()
