"""A file already at a final path that the manifest did not record (``replace=False``) is
never overwritten: the same bytes are adopted as they are, anything else fails that file
naming the path (issue 12, item 8)."""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import anyio.from_thread
import pytest

from backfill.errors import FileStorageError
from backfill.store.local import LocalStore

from .test_local_store import REL, chunked, make_zip

pytestmark = pytest.mark.anyio
SIZES = pytest.mark.parametrize("chunk_size", [1 << 20, 1024], ids=["group-commit", "part-file"])
PAST = 1_600_000_000_000_000_000  # an mtime (ns) a rewrite could not keep


def planted(path: Path, data: bytes) -> os.stat_result:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(PAST, PAST))
    return path.stat()


def unchanged(path: Path, before: os.stat_result) -> bool:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size)


@SIZES
async def test_the_same_bytes_are_adopted_not_rewritten(tmp_path: Path, chunk_size: int) -> None:
    body = make_zip()
    before = planted(tmp_path / REL, body)
    store = LocalStore(tmp_path, chunk_size=chunk_size)
    stored = await store.save(REL, chunked(body), expected_length=None)
    assert (stored.bytes, stored.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert unchanged(tmp_path / REL, before)  # the same inode, never written
    assert list(store.partials.iterdir()) == []


@SIZES
@pytest.mark.parametrize("other", ["different bytes", "same size", "a directory",
                                   "a symbolic link"])
async def test_anything_else_fails_that_file_untouched(
        tmp_path: Path, chunk_size: int, other: str) -> None:
    body, final = make_zip(compression=zipfile.ZIP_STORED), tmp_path / REL
    target = tmp_path / "target.zip"
    target.write_bytes(body)  # a link to the very bytes is still not a file of ours
    if other == "a directory":
        final.mkdir(parents=True)
    elif other == "a symbolic link":
        final.parent.mkdir(parents=True)
        final.symlink_to(target)
    else:
        theirs = make_zip(compression=zipfile.ZIP_STORED)  # same size, other bytes
        assert len(theirs) == len(body)
        planted(final, b"not ours" if other == "different bytes" else theirs)
    before = final.lstat()
    store = LocalStore(tmp_path, chunk_size=chunk_size)
    with pytest.raises(FileStorageError) as info:
        await store.save(REL, chunked(body), expected_length=None)
    what = "different bytes" if other == "same size" else other
    assert str(info.value) == (f"a file not written by this manifest is already at {final} "
                               f"({what}); move it away")
    after = final.lstat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert target.read_bytes() == body
    assert list(store.partials.iterdir()) == []


@SIZES
async def test_a_file_the_manifest_recorded_is_replaced(tmp_path: Path, chunk_size: int) -> None:
    """replace=True (verify found the recorded file corrupt, the run fetches it again)."""
    body = make_zip()
    planted(tmp_path / REL, b"corrupted copy")
    await LocalStore(tmp_path, chunk_size=chunk_size).save(REL, chunked(body),
                                                           expected_length=None, replace=True)
    assert (tmp_path / REL).read_bytes() == body


async def test_a_batch_killed_before_its_journal_lines_is_adopted_next_time(
        tmp_path: Path) -> None:
    """Files renamed by a group commit, the run killed before their journal lines: the
    next run's batch holds them and new ones together; the renamed are adopted in
    place, the new are written, in one batch."""
    bodies = {f"ws/f{i}.zip": make_zip() for i in range(6)}
    first = LocalStore(tmp_path)
    for rel in list(bodies)[:3]:  # committed, their records lost with the kill
        await first.save(PurePosixPath(rel), chunked(bodies[rel]), expected_length=None)
    before = {rel: (tmp_path / rel).stat() for rel in list(bodies)[:3]}

    store = LocalStore(tmp_path, commit_threads=1)
    started, release = anyio.Event(), anyio.Event()
    sizes: list[int] = []
    real = store._commit_batch

    def batch(jobs: list[Any]) -> None:
        sizes.append(len(jobs))
        if len(sizes) == 1:  # hold the only thread so that the others queue up
            anyio.from_thread.run_sync(started.set)
            anyio.from_thread.run(release.wait)
        real(jobs)

    store._group._run_batch = batch
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(store.save, PurePosixPath("ws/lead.zip"),
                                        chunked(make_zip()), expected_length=None))
        await started.wait()
        for rel, body in bodies.items():
            tg.start_soon(functools.partial(store.save, PurePosixPath(rel), chunked(body),
                                            expected_length=None))
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert sizes == [1, 6]  # the six in one batch
    for rel, st in before.items():
        assert unchanged(tmp_path / rel, st)
    assert {rel: (tmp_path / rel).read_bytes() for rel in bodies} == bodies
    assert list(store.partials.iterdir()) == []
