"""Local directories: checked before a run writes anything, created durably, and walked
by descriptor below the root.

Below the store's root nothing is reached through a path string: :func:`walk` opens each
folder of a key by name from its parent's descriptor (``O_DIRECTORY | O_NOFOLLOW``), so a
symbolic link (or anything that is not a directory) met anywhere on the way is refused,
never followed, and a folder swapped for a link between two walks is met by the next one.
A folder that is missing is made with ``mkdir(name, dir_fd=parent)`` and made durable by
fsyncing the parent.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...errors import FileStorageError, OutputDirError, StorageError, os_error_reason
from .durability import fsync_dir

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def make_root(root: Path) -> None:
    """Create the store's root and its missing parents, each new entry made durable. The
    root is the user's own path: a link in it (``output_dir`` itself a link) is followed."""
    missing: list[Path] = []
    d = root
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


def open_dir(parent_fd: int, name: str, *, create: bool) -> int:
    """The folder ``name`` in ``parent_fd``, opened without following a link; if it is
    missing and ``create``, made first (and the parent fsynced). OSError as raised:
    FileNotFoundError when missing, NotADirectoryError for a link or a non-directory."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, dir_fd=parent_fd)
    except FileExistsError:
        pass  # made meanwhile (another thread, another run): open whatever is there now
    else:
        os.fsync(parent_fd)
    return os.open(name, DIR_FLAGS, dir_fd=parent_fd)


def walk(root_fd: int, root: Path, names: Sequence[str], *, create: bool,
         error: type[StorageError] = FileStorageError) -> int:
    """A new descriptor of the folder ``root/names[0]/…``, every step taken from its
    parent's descriptor without following a link (the caller closes it). ``error``
    (naming the folder's path) when one of them is a symbolic link or not a directory;
    any other OSError propagates (missing without ``create``, permission, disk full)."""
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(names):
            try:
                child = open_dir(fd, name, create=create)
            except NotADirectoryError:
                raise error(_not_followed(fd, name, root.joinpath(*names[: i + 1]))) from None
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise error(f"{root.joinpath(*names[: i + 1])}: is a symbolic link, "
                            "not followed") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_followed(parent_fd: int, name: str, path: Path) -> str:
    """Why ``name`` (met as a folder) was refused: a link, or something else."""
    try:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        return f"{path}: is a symbolic link, not followed"
    return f"{path}: not a directory"
