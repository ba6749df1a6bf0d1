"""Replacing a file atomically, never through a symbolic link the tool did not make.

:func:`replacing` hands out a new temporary file in the folder of the final name. The
folder is opened once, by descriptor (it is the caller's: the manifest's folder, the
metrics file's, the demo's output directory — a path the user named, followed like
``output_dir``); everything after is relative to that descriptor. The temporary file is
created ``O_CREAT | O_EXCL | O_NOFOLLOW``, so nothing planted at its name is written
to. On a clean exit it is flushed, fsynced, renamed over the final name and the folder
fsynced: a reader sees the old file or the whole new one, and a failure leaves no
temporary file. What is at the final name:

- ``link="refuse"`` (the default): a symbolic link there is :class:`LinkAtName`, and
  nothing is changed (the manifest, a demo's config: what a run opens ``O_NOFOLLOW``);
- ``link="replace"``: the link itself is replaced by the new file, never written through
  (a metrics file, the state files beside the manifest: nobody reads through them).

A link swapped in at the final name after the look is replaced by the rename: ``rename``
acts on the name, never on what a link there points to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class LinkAtName(OSError):
    """A symbolic link is at the final name; ``str()``: "PATH: is a symbolic link, not
    followed"."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ELOOP, "is a symbolic link, not followed")
        self.filename = str(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def refuse_link(folder_fd: int, name: str, path: Path) -> None:
    """LinkAtName if ``name`` in ``folder_fd`` is a symbolic link (missing is fine)."""
    try:
        st = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise LinkAtName(path)


@contextlib.contextmanager
def replacing(path: Path, *, link: Literal["refuse", "replace"] = "refuse",
              temp: str | None = None, mode: int = 0o644,
              buffering: int = -1) -> Iterator[BinaryIO]:
    """A new file to write that replaces ``path`` on a clean exit (see the module
    docstring). ``temp``: the temporary file's name (a fixed one is removed first: a
    crashed run's, or a planted link — ``unlink`` never follows); by default a random
    hidden name. OSError as raised (LinkAtName for a refused link); nothing is left
    behind after one."""
    path = Path(path)
    folder = os.open(path.parent, _DIR_FLAGS)
    try:
        if link == "refuse":
            refuse_link(folder, path.name, path)
        tmp = temp or f".{path.name}.{secrets.token_hex(4)}.tmp"
        if temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)
        fd = os.open(tmp, CREATE_FLAGS, mode, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb", buffering=buffering) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if link == "refuse":
                refuse_link(folder, path.name, path)
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
            raise
        os.fsync(folder)
    finally:
        os.close(folder)


def write_replacing(path: Path, data: bytes, *,
                    link: Literal["refuse", "replace"] = "refuse") -> None:
    """Replace ``path`` with ``data`` (:func:`replacing`)."""
    with replacing(path, link=link) as f:
        f.write(data)
