"""Reading back what the local store wrote: verify a file, open it, sweep partial files.

All of it by descriptor from the root, never following a link below it: a link planted
at a final name (or at one of its folders) is not read through — ``verify`` reports it
and ``open_read`` refuses it — so another file (``/etc/…``, a file of another tree) can
neither pass for a report nor be handed to a consumer; and the sweep deletes only the
entries of the private folder itself, never through a link in it or at it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from ...errors import FileStorageError, StorageError, os_error_reason
from .paths import Root, key_parts
from .place import READ_FLAGS, file_sha256


def open_final(root: Root, rel: PurePosixPath) -> int:
    """A read-only descriptor of the file at ``rel`` (blocking). FileStorageError naming
    the path for a link (at the name or a folder) or a folder that is not one; OSError
    as raised otherwise (FileNotFoundError when missing)."""
    parts = key_parts(rel)
    folder = root.folder(parts[:-1], create=False)
    try:
        return os.open(parts[-1], READ_FLAGS, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileStorageError(f"{root.final(rel)}: is a symbolic link, "
                                   "not followed") from None
        raise
    finally:
        os.close(folder)


def verify_file(root: Root, rel: PurePosixPath, sha256: str, size: int) -> str | None:
    """None if ``rel`` is a regular file of ``size`` bytes with this sha256, else why not
    (a link is not followed: ``"not a regular file (…)"``)."""
    try:
        fd = open_final(root, rel)
    except FileNotFoundError:
        return "missing"
    except FileStorageError as exc:
        return f"not a regular file ({exc})"
    except OSError as exc:
        return f"unreadable ({os_error_reason(exc)})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size != size:
            return f"size {st.st_size} != {size}"
        digest = file_sha256(fd)
    except OSError as exc:
        return f"unreadable ({os_error_reason(exc)})"
    finally:
        os.close(fd)
    return None if digest == sha256 else "sha256 mismatch"


def sweep_parts(root: Root, names: tuple[str, ...], suffix: str) -> int:
    """Delete every entry ending in ``suffix`` in the folder ``names`` below the root
    (not in its subfolders; a link there is removed itself, never followed); how many.
    StorageError naming the path if the folder is reached through a link."""
    path = root.path.joinpath(*names)
    try:
        fd = root.folder(names, create=False, error=StorageError)
    except FileNotFoundError:
        return 0  # nothing yet
    except OSError as exc:
        raise StorageError(f"{path}: {os_error_reason(exc)}") from exc
    removed = 0
    try:
        with os.scandir(fd) as entries:
            doomed = [e.name for e in entries
                      if e.name.endswith(suffix) and not e.is_dir(follow_symlinks=False)]
        for name in doomed:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"{Path(path, name)}: {os_error_reason(exc)}") from exc
            removed += 1
    finally:
        os.close(fd)
    return removed
