"""A private local place for bodies on their way to an object store.

A body is streamed to a file in this run's own directory while it is hashed, so memory
stays at about one write buffer (1 MiB) whatever the file size; bodies up to
``memory_bytes`` stay in memory. The directory is ``<root>/run-<pid>-<random>``, mode
0700, under a root the tool made for this destination; at start (under the destination's
lock) :meth:`Staging.sweep` deletes the run directories that a killed run left there and
nothing else. A shard run's root is a folder of its own below (``scope``,
``shard-I-of-N``), so shards on one machine never sweep each other's bodies. No symbolic link is
followed: the root and the run directory are checked with ``lstat`` and files are opened
with ``O_NOFOLLOW | O_EXCL``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import anyio.to_thread

from ...errors import BodyTooLarge, InvalidBody, OutputDirError, StorageError

DEFAULT_MEMORY_BYTES = 256 * 1024
WRITE_BYTES = 1024 * 1024


@dataclass(slots=True)
class Staged:
    """A whole body, checked for length and hashed: in ``body`` or in the file ``path``."""

    rel: PurePosixPath
    size: int
    sha256: str
    md5: str
    body: bytes | None
    path: Path | None

    @property
    def total(self) -> int:
        """The body's size in bytes (the Store protocol's name for it)."""
        return self.size

    def discard(self) -> None:
        """Remove the staged file, if there is one."""
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


def _private_dir(path: Path) -> None:
    """Create ``path`` mode 0700 (or accept it if it is our own real directory)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise OutputDirError(f"{path}: staging directory is not a directory of this user")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


class Staging:
    """This run's staging directory under ``root``; see the module docstring."""

    def __init__(self, root: Path, *, max_file_bytes: int,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, scope: str = "") -> None:
        self.base = root
        self.root = root / scope if scope else root  # a shard's own: siblings never sweep it
        self.max_file_bytes = max_file_bytes
        self.memory_bytes = memory_bytes
        self.run_dir = self.root / f"run-{os.getpid()}-{secrets.token_hex(4)}"
        self._made = False

    def open(self) -> None:
        """Create the root and this run's directory (private, no links followed)."""
        try:
            _private_dir(self.base.parent)
            _private_dir(self.base)
            if self.root != self.base:
                _private_dir(self.root)
            _private_dir(self.run_dir)
        except OSError as exc:
            raise OutputDirError(f"{self.root}: cannot create the staging directory "
                                 f"({exc.strerror or type(exc).__name__})") from None
        self._made = True

    def sweep(self) -> int:
        """Delete run directories other runs left under the root; return how many.
        Call it only while holding the destination's lock."""
        removed = 0
        for entry in os.scandir(self.root):
            if entry.name.startswith("run-") and entry.path != str(self.run_dir) \
                    and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)  # rmtree never follows links
                removed += 1
        return removed

    def close(self) -> None:
        """Remove this run's directory and whatever is still in it."""
        if self._made:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self._made = False

    async def receive(self, rel: PurePosixPath, chunks: AsyncIterable[bytes], *,
                      expected_length: int | None) -> Staged:
        """Take in the whole body, hashed and checked for length (InvalidBody,
        BodyTooLarge); a body larger than ``memory_bytes`` goes to a staged file."""
        limit = self.max_file_bytes
        if expected_length is not None and expected_length > limit:
            raise BodyTooLarge(f"body of {expected_length} bytes exceeds the {limit}-byte limit")
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        held: list[bytes] = []
        held_len = total = 0
        fd = -1
        path: Path | None = None
        try:
            async for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise BodyTooLarge(f"body exceeds the {limit}-byte limit")
                if expected_length is not None and total > expected_length:
                    raise InvalidBody(f"length mismatch: more than the {expected_length} "
                                      "bytes announced")
                held.append(chunk)
                held_len += len(chunk)
                if held_len >= max(self.memory_bytes, WRITE_BYTES if fd >= 0 else 0):
                    if fd < 0:
                        path = self.run_dir / f"{secrets.token_hex(8)}.body"
                        fd = await anyio.to_thread.run_sync(_create, path)
                    data, held, held_len = held, [], 0
                    await anyio.to_thread.run_sync(_write, fd, sha, md5, data)
            if expected_length is not None and total != expected_length:
                raise InvalidBody(f"truncated: got {total} of {expected_length} bytes")
            if fd >= 0:
                await anyio.to_thread.run_sync(_write, fd, sha, md5, held)
                os.close(fd)
                fd = -1
                return Staged(rel, total, sha.hexdigest(), md5.hexdigest(), None, path)
            body = b"".join(held)
            sha.update(body)
            md5.update(body)
            return Staged(rel, total, sha.hexdigest(), md5.hexdigest(), body, None)
        except OSError as exc:
            raise StorageError(f"{self.run_dir}: cannot stage the body "
                               f"({exc.strerror or type(exc).__name__})") from None
        finally:
            if fd >= 0:
                os.close(fd)
                if path is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(path)


def _create(path: Path) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600)


def _write(fd: int, sha: hashlib._Hash, md5: hashlib._Hash, data: list[bytes]) -> None:
    buf = b"".join(data) if len(data) > 1 else (data[0] if data else b"")
    sha.update(buf)
    md5.update(buf)
    view = memoryview(buf)
    while view:
        view = view[os.write(fd, view):]
