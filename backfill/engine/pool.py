"""The workspace pool: one workspace's files worked through by workers that grow on demand.

The workers share one iterator over the workspace's outstanding files
(:func:`backfill.policy.outstanding`; ``next()`` never awaits, so each file goes to
exactly one worker, oldest first). The pool starts with one worker; whenever a worker
takes its slots and none of the others is waiting for one (:meth:`WorkspacePool.grow`),
another worker joins, up to ``cap`` — so a file waiting in a backoff or a commit never
idles the workspace, yet a workspace keeps only about one worker queued at the global
limiter instead of spawning its whole pool up front.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
import anyio.abc
import anyio.lowlevel

from ..policy import Outstanding

CHECKPOINT_EVERY = 256  # files: skipped files do not yield, so let other workspaces run


class WorkspacePool:
    """Runs ``handle(step)`` for every step of ``steps`` with at most ``cap`` workers.

    A handler that is about to wait for a slot wraps the wait in :meth:`queued` and calls
    :meth:`grow` once it holds the slot.
    """

    def __init__(
        self, steps: Iterator[Outstanding], handle: Callable[[Outstanding], Awaitable[None]],
        *, cap: int,
    ) -> None:
        self._steps = steps
        self._handle = handle
        self.cap = max(1, cap)
        self.workers = 0
        self.waiting = 0  # workers between taking a file and holding their slots
        self.exhausted = False
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        """Return once every step has been handled (or raise what a handler raised)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._add_worker()
        self._tg = None

    @contextmanager
    def queued(self) -> Iterator[None]:
        """Around a handler's wait for its slots (see :meth:`grow`)."""
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

    def grow(self) -> None:
        """A worker has just taken its slots: keep one more in line if none is."""
        if not self.waiting and self.workers < self.cap and not self.exhausted:
            self._add_worker()

    def _add_worker(self) -> None:
        assert self._tg is not None
        self.workers += 1
        self._tg.start_soon(self._work_through)

    async def _work_through(self) -> None:
        for n, step in enumerate(self._steps, 1):
            if not n % CHECKPOINT_EVERY:
                await anyio.lowlevel.checkpoint()
            await self._handle(step)
        self.exhausted = True
