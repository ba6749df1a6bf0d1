"""Small files beside the manifest and the metrics file: read and written without
following a symlink, written atomically (a temporary file in the same directory, fsync,
rename over the final name, fsync of the directory). A reader (node_exporter, a second
``status --check``) sees the old file or the new one, never a torn one.

The temporary file is created with ``O_EXCL | O_NOFOLLOW`` relative to the directory's
descriptor, and ``rename`` replaces whatever sits at the final name (a planted symlink
included) instead of writing through it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..safe_write import write_replacing

MAX_STATE_BYTES = 1024 * 1024


def runs_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".runs.json")


def alerts_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".alerts.json")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``; OSError on failure (nothing half-written is left).
    A link at ``path`` is replaced, never written through (:mod:`backfill.safe_write`)."""
    write_replacing(path, text.encode(), link="replace")


def read_small(path: Path) -> str | None:
    """The text of a small regular file, None when there is none. OSError (ELOOP for a
    symlink) or ValueError (not a small UTF-8 regular file) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_STATE_BYTES:
            raise ValueError("not a small regular file")
        return os.read(fd, MAX_STATE_BYTES + 1).decode()
    finally:
        os.close(fd)
