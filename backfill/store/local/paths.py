"""Keys → paths under the local store's root, never leaving it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ...errors import FileStorageError


class Root:
    """The store's root directory; :meth:`target` maps a relative key to a path inside it.

    Refuses absolute paths, ``..`` and paths that resolve outside the root through a
    symbolic link (defence in depth: :func:`naming.render_path` already sanitises).
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(root).absolute()
        self._inside_dirs: set[PurePosixPath] = set()

    def target(self, rel: PurePosixPath) -> Path:
        """Absolute final path ``root/rel``; FileStorageError if it would leave the root."""
        final = self.final(rel)
        self.check_link(PurePosixPath(rel), final)
        return final

    def final(self, rel: PurePosixPath) -> Path:
        """:meth:`target` without looking at the file itself (no syscall once the
        directory is known): a commit looks at it in its worker thread, just before the
        rename, rather than on the event loop."""
        rel = PurePosixPath(rel)
        if rel.is_absolute() or not rel.parts or any(p in ("..", ".") for p in rel.parts):
            raise FileStorageError(f"{rel}: path would leave the output directory")
        final = self.path.joinpath(*rel.parts)
        # Resolving costs a syscall per component: do it once per directory, then only
        # look at the file itself (a symbolic link there is resolved too).
        if rel.parent not in self._inside_dirs:
            self._check_inside(rel, final.parent)
            self._inside_dirs.add(rel.parent)
        return final

    def check_link(self, rel: PurePosixPath, final: Path) -> None:
        """FileStorageError if ``final``'s folder, or ``final`` if it is a symbolic link,
        leads out of the root. Checked again at every commit, just before the rename (not
        cached: a workspace folder swapped for a link mid-run is caught)."""
        self._check_inside(rel, final.parent)
        if os.path.islink(final):
            self._check_inside(rel, final)

    def _check_inside(self, rel: PurePosixPath, path: Path) -> None:
        try:
            inside = path.resolve().is_relative_to(self.path.resolve())
        except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop (Python < 3.13)
            raise FileStorageError(f"{path}: cannot resolve the path") from exc
        if not inside:
            raise FileStorageError(f"{rel}: path would leave the output directory")
