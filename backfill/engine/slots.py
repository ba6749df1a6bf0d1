"""The slots one attempt holds, taken in one order and always given back.

    rate (the workspace's request rate) → adaptive (the workspace's limit) → global
    (the run's concurrency) → [commit slot, taken with a received body]

The request slots are held for the request only; a body comes back holding a *commit
slot* instead, so the disk work runs after the request's slots are free (a slow fsync
never idles a connection) while the commit slots bound the bodies waiting in memory
(``concurrency`` × ``chunk_size`` at most). A free slot is taken without a trip through
the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ..store import Received
from .workspace import WorkspaceRun


class Held:
    """The slots of one attempt (yielded by :meth:`Slots.request`)."""

    __slots__ = ("_commit", "commit_held")

    def __init__(self, commit: anyio.Semaphore) -> None:
        self._commit = commit
        self.commit_held = False

    async def keep_for_commit(self, received: Received) -> None:
        """Take a commit slot for ``received`` before the request slots go; if that is
        cancelled, the body is discarded."""
        try:
            try:
                self._commit.acquire_nowait()
            except anyio.WouldBlock:
                await self._commit.acquire()
        except BaseException:
            received.discard()
            raise
        self.commit_held = True


class Slots:
    """The run's global limiter and commit slots (``concurrency`` of each)."""

    def __init__(self, concurrency: int) -> None:
        self.global_limiter = anyio.CapacityLimiter(concurrency)
        self._commit = anyio.Semaphore(concurrency)

    @asynccontextmanager
    async def request(self, rt: WorkspaceRun) -> AsyncIterator[Held]:
        """Hold rate → adaptive → global for the block; the pool may grow once held."""
        token = object()
        assert rt.pool is not None
        with rt.pool.queued():
            if rt.rate is not None:
                await rt.rate.acquire()
            await rt.limiter.acquire(token)
            try:
                self.global_limiter.acquire_on_behalf_of_nowait(token)
            except anyio.WouldBlock:
                try:
                    await self.global_limiter.acquire_on_behalf_of(token)
                except BaseException:
                    rt.limiter.release(token)
                    raise
        rt.pool.grow()
        try:
            yield Held(self._commit)
        finally:
            self.global_limiter.release_on_behalf_of(token)
            rt.limiter.release(token)

    def release_commit(self) -> None:
        self._commit.release()
