"""Clearing a previous demo's files, walked by descriptor: nothing removed through a link.

Only a folder whose ``demo.toml`` a demo wrote (its first line :data:`DEMO_MARK`, the
file itself no link) is cleared, and only of what its manifest recorded, then of the
folders left empty. Every folder below the demo's folder is opened by name from its
parent without following a link (:mod:`backfill.store.local.paths`), and a file is
removed by name in the folder so opened: a folder swapped for a link after the walk
is not followed, the removal acts in the folder the walk opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from ..errors import StorageError
from ..journal.state import load_manifest
from ..safe_open import read_small
from ..store.local.dirs import open_dir
from ..store.local.paths import Root, key_parts

DEMO_MARK = "# Written by `backfill demo`"


def clear_previous(out: Path) -> int:
    """Remove what a previous demo in ``out`` recorded: the files its manifest lists and the
    manifest, then directories left empty. Nothing is followed through a symlink, nothing
    outside ``out`` is touched, and a directory whose demo.toml a demo did not write is
    left alone. Returns the number of files removed."""
    manifest = out / "manifest.jsonl"
    try:
        text = read_small(out / "demo.toml", 1 << 20, follow_symlinks=False).decode("utf-8")
    except (OSError, ValueError):  # missing, a link, no regular file, not UTF-8
        return 0
    if not text.startswith(DEMO_MARK):
        return 0
    root = Root(out)
    removed = 0
    try:
        if manifest.is_file() and not manifest.is_symlink():
            for rec in load_manifest(manifest):
                if rec.path and _remove(root, PurePosixPath(rec.path)):
                    removed += 1
            manifest.unlink()
        fd = root.fd(create=False)
        if fd is not None:
            _prune(fd)
    finally:
        root.close()
    return removed


def _remove(root: Root, rel: PurePosixPath) -> bool:
    """Remove the regular file ``root/rel`` (its folders walked without following a link);
    False when it is not one (missing, a link, a folder) or cannot be reached."""
    try:
        *folders, name = key_parts(rel)
        fd = root.folder(folders, create=False)
    except (StorageError, OSError):
        return False
    try:
        if not stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
            return False
        os.unlink(name, dir_fd=fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _prune(fd: int) -> bool:
    """Remove the empty folders below the folder ``fd``, deepest first, each opened
    without following a link; True when ``fd`` holds nothing afterwards."""
    empty = True
    for name in os.listdir(fd):
        try:
            child = open_dir(fd, name, create=False)  # a link or a file: not a folder
        except OSError:
            empty = False
            continue
        try:
            gone = _prune(child)
        finally:
            os.close(child)
        if not (gone and _rmdir(fd, name)):
            empty = False
    return empty


def _rmdir(fd: int, name: str) -> bool:
    try:
        os.rmdir(name, dir_fd=fd)
    except OSError:
        return False
    return True
