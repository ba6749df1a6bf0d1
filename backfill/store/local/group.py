"""Group commit: small bodies made durable in batches, one thread hop per batch.

Whatever bodies are waiting go to one worker thread together, which writes every file,
makes their data durable, renames them, then makes the new names durable — the order
per file is unchanged (data on disk, then renamed, then the name on disk, and only then
returned). Data and names are made durable with one ``syncfs`` each per batch where the
kernel has it (one journal commit and device flush for the batch instead of two per
file), else with an fsync per file and one per directory per batch; a batch of one file
always takes the fsyncs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import PurePosixPath

import anyio
import anyio.to_thread

from ...errors import InvalidBody
from ...zipcheck import zip_problem
from .durability import write_all
from .part import LocalReceived, Part
from .place import place


class Job:
    """One small body in a group commit; ``sha256`` None: check and hash it in the thread."""

    __slots__ = ("error", "finished", "received", "sha256", "taken", "wake")

    def __init__(self, received: LocalReceived, sha256: str | None) -> None:
        self.received = received
        self.sha256 = sha256
        self.error: BaseException | None = None
        self.taken = False  # in a batch now
        self.finished = False
        # Made only when the owner has to wait (a leader never does): set when the job
        # finished, or when its owner should lead the next batch.
        self.wake: anyio.Event | None = None


class GroupCommit:
    """Runs jobs in batches, at most ``threads`` batches at a time, without a task of its own.

    A caller arriving while a thread is free takes every queued job (its own included) to
    that thread: it leads the batch. Otherwise it waits; when a batch ends, its jobs'
    owners are woken, and so is the owner of the oldest queued job, to lead the next.
    """

    def __init__(self, run_batch: Callable[[list[Job]], None], threads: int) -> None:
        self._run_batch = run_batch
        self._threads = threads
        self._queue: list[Job] = []
        self._running = 0

    async def run(self, job: Job) -> None:
        self._queue.append(job)
        while not job.finished:
            if not job.taken and self._running < self._threads:
                await self._lead()
                continue
            job.wake = wake = anyio.Event()
            try:
                await wake.wait()
            except BaseException:  # cancelled: leave nothing running on our behalf
                if not job.taken:
                    self._queue.remove(job)
                    self._pass_on()
                    raise
                with anyio.CancelScope(shield=True):  # a thread is at it: wait for the end
                    while not job.finished:
                        job.wake = wake = anyio.Event()
                        await wake.wait()
                raise

    async def _lead(self) -> None:
        batch, self._queue = self._queue, []
        for job in batch:
            job.taken = True
        self._running += 1
        try:
            # not abandoned on cancellation: the thread's work is waited for
            await anyio.to_thread.run_sync(self._run_batch, batch)
        finally:
            self._running -= 1
            for job in batch:
                job.finished = True
                if job.wake is not None:
                    job.wake.set()
            self._pass_on()

    def _pass_on(self) -> None:
        """Wake the owner of the oldest queued job if a thread is free for it."""
        if self._queue and self._running < self._threads:
            wake = self._queue[0].wake
            if wake is not None:  # None: its owner has not waited yet and will lead
                wake.set()


class Folders:
    """The final folders of one batch, each walked once from the root (``open_folder``)
    when the batch first needs it — afresh for every batch, never kept across batches —
    and closed when the batch ends. A folder that fails fails every job in it."""

    def __init__(self, open_folder: Callable[[PurePosixPath], int]) -> None:
        self._open = open_folder
        self._fds: dict[PurePosixPath, int | Exception] = {}

    def get(self, folder: PurePosixPath) -> int:
        got = self._fds.get(folder)
        if got is None:
            try:
                got = self._open(folder)
            except Exception as exc:  # OSError, FileStorageError: the jobs in it
                got = exc
            self._fds[folder] = got
        if isinstance(got, Exception):
            raise got
        return got

    def opened(self, folders: set[PurePosixPath]) -> list[int]:
        return [fd for f, fd in self._fds.items() if f in folders and isinstance(fd, int)]

    def close(self) -> None:
        for fd in self._fds.values():
            if isinstance(fd, int):
                os.close(fd)
        self._fds.clear()


def commit_batch(
    jobs: list[Job], *, open_part: Callable[[Part], None],
    open_folder: Callable[[PurePosixPath], int], syncfs: Callable[[int], None] | None,
) -> None:
    """In a worker thread: every file written and its data made durable, then placed at
    its final name (renamed, or the same bytes adopted: :func:`.place.place`), then the
    names made durable. A job's error is kept in the job (its .part removed), never
    raised. No file is renamed before its data is on disk, and nothing returns before
    the renames are.
    """
    written = _write_parts(jobs, open_part)
    grouped = syncfs is not None and len(written) > 1
    folders = Folders(open_folder)
    try:
        if grouped:
            _sync_filesystems([j.received.part.fd for j in written], syncfs)
        placed = _place_all(written, folders, fsync=not grouped)
        in_use = folders.opened({j.received.rel.parent for j in placed})
        if grouped:
            _sync_filesystems(in_use, syncfs)
        else:
            _fsync_dirs(placed, folders)
    except OSError as exc:  # a syncfs failed: nothing of this batch is known durable
        for job in written:
            if job.error is None:
                job.error = exc
                job.received.part.discard()
    finally:
        for job in written:
            job.received.part.release()
        folders.close()


def _place_all(written: list[Job], folders: Folders, *, fsync: bool) -> list[Job]:
    """Each written job's file at its final name; the jobs placed (renamed or adopted)."""
    placed: list[Job] = []
    for job in written:
        r = job.received
        assert job.sha256 is not None
        try:
            if fsync:
                os.fsync(r.part.fd)
            r.part.close()
            place(r.part, folders.get(r.rel.parent), r.final.name, r.final,
                  replace=r.replace, size=r.total, sha256=job.sha256)
        except Exception as exc:
            job.error = exc
            r.part.discard()
        else:
            placed.append(job)
    return placed


def _write_parts(jobs: list[Job], open_part: Callable[[Part], None]) -> list[Job]:
    """Check (if not done yet), hash and write each job's ``.part``; the jobs written."""
    written: list[Job] = []
    for job in jobs:
        r = job.received
        try:
            if job.sha256 is None:
                problem = zip_problem(r.tail)
                if problem is not None:
                    raise InvalidBody(problem)
                job.sha256 = hashlib.sha256(r.tail).hexdigest()
            open_part(r.part)
            write_all(r.part.fd, r.tail)
        except Exception as exc:  # InvalidBody, OSError: this file only
            job.error = exc
            r.part.discard()
        else:
            written.append(job)
    return written


def _fsync_dirs(placed: list[Job], folders: Folders) -> None:
    for folder in {job.received.rel.parent for job in placed}:
        try:
            os.fsync(folders.get(folder))
        except OSError as exc:
            for job in placed:
                if job.received.rel.parent == folder:
                    job.error = exc


def _sync_filesystems(fds: list[int], syncfs: Callable[[int], None] | None) -> None:
    """syncfs once for each file system the open files or folders ``fds`` are on."""
    assert syncfs is not None
    seen: set[int] = set()
    for fd in fds:
        dev = os.fstat(fd).st_dev
        if dev not in seen:
            seen.add(dev)
            syncfs(fd)
