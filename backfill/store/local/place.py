"""Putting a finished ``.part`` file at its final name, in a folder held by descriptor.

The rule for what is already there (the engine says which applies, ``replace``):

- the manifest recorded a file at this key (``replace``): whatever is at the final name is
  replaced by the rename, atomically (a corrupt file ``verify`` found, fetched again);
- it did not: the rename happens only if the name is free (``RENAME_NOREPLACE``). A
  regular file there with the same size and sha256 is *adopted* — the same bytes, left as
  they are and made durable (the usual case: a run killed after its rename, before its
  journal line); anything else (other bytes, a link, a directory) is never overwritten:
  that file fails, naming the path.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from ...errors import FileStorageError
from .durability import rename_noreplace
from .part import Part

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never hangs


def place(part: Part, folder_fd: int, name: str, final: Path, *, replace: bool,
          size: int, sha256: str) -> None:
    """Rename ``part`` (fsynced and closed) to ``name`` in ``folder_fd``, or adopt the same
    bytes already there (``part`` then removed); FileStorageError when something else is
    there and not ``replace``. The caller makes the name durable (fsyncs the folder)."""
    if replace:
        os.replace(part.name, name, src_dir_fd=part.dir_fd, dst_dir_fd=folder_fd)
        return
    for _ in range(2):  # twice: a file removed between the rename and the look at it
        try:
            rename_noreplace(part.dir_fd, part.name, folder_fd, name)
            return
        except FileExistsError:
            pass
        what = _other_than(folder_fd, name, size, sha256)
        if what is None:  # the same bytes: adopted
            part.discard()
            return
        if what != "gone":
            raise FileStorageError(f"a file not written by this manifest is already at "
                                   f"{final} ({what}); move it away")
    raise FileStorageError(f"{final}: changed while it was checked")


def _other_than(folder_fd: int, name: str, size: int, sha256: str) -> str | None:
    """None if ``name`` is a regular file of ``size`` bytes with this sha256 (its data
    then fsynced, so an adopted file is as durable as a written one), else what it is.
    Only a regular file is opened (never a link, a FIFO or a device), and only to read."""
    try:
        st = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "gone"
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    if kind or st.st_size != size:
        return kind or "different bytes"
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=folder_fd)
    except FileNotFoundError:
        return "gone"
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since the look
            return "a symbolic link"
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or file_sha256(fd) != sha256:
            return "different bytes"
        os.fsync(fd)
        return None
    finally:
        os.close(fd)


_KINDS = {stat.S_IFREG: "", stat.S_IFLNK: "a symbolic link", stat.S_IFDIR: "a directory"}


def file_sha256(fd: int) -> str:
    """sha256 of the open file ``fd`` from its start (a fixed-size buffer; fd left open)."""
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        return hashlib.file_digest(f, "sha256").hexdigest()
