"""The workspace pool with a hand-written handler: every file once, oldest first, and
workers only as many as the handlers' waits call for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import anyio
import pytest

from backfill.config import Report, Secret, Workspace
from backfill.engine.pool import WorkspacePool
from backfill.model import Kind, Rerun, Task
from backfill.policy import Outstanding

pytestmark = pytest.mark.anyio
WS = Workspace(name="w", app_id="A", data_center="01", api_key=Secret("k"),
               secret_key=Secret("k"), timezone="UTC", reports=(Report("R"),))


def steps(n: int) -> Iterator[Outstanding]:
    for i in range(n):
        task = Task(WS, WS.reports[0], date(2026, 11, 1 + i % 28), f"f{i}.zip", 1,
                    Kind.FETCHABLE)
        yield Outstanding(task, Rerun.FETCH, None)


async def test_every_step_is_handled_once_in_order_by_one_worker_when_nothing_waits() -> None:
    seen: list[str] = []

    async def handle(step: Outstanding) -> None:
        seen.append(step.task.filename)

    pool = WorkspacePool(steps(600), handle, cap=8)
    await pool.run()
    assert seen == [f"f{i}.zip" for i in range(600)]
    assert pool.workers == 1 and pool.exhausted


async def test_the_pool_grows_while_slots_are_free_and_stops_at_its_cap() -> None:
    slots = anyio.Semaphore(3)
    release = anyio.Event()
    held: list[str] = []
    pool: WorkspacePool

    async def handle(step: Outstanding) -> None:
        with pool.queued():
            await slots.acquire()
        pool.grow()
        held.append(step.task.filename)
        try:
            await release.wait()
        finally:
            slots.release()

    pool = WorkspacePool(steps(20), handle, cap=5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run)
        await anyio.wait_all_tasks_blocked()
        # three workers hold the three slots, a fourth waits for one: no fifth is started
        assert len(held) == 3 and pool.workers == 4 and pool.waiting == 1
        release.set()
    assert sorted(held) == sorted(f"f{i}.zip" for i in range(20))
    assert pool.workers <= 5


async def test_a_handlers_error_ends_the_pool() -> None:
    async def handle(step: Outstanding) -> None:
        if step.task.filename == "f3.zip":
            raise RuntimeError("boom")

    with pytest.raises(BaseExceptionGroup) as info:
        await WorkspacePool(steps(10), handle, cap=4).run()
    assert info.group_contains(RuntimeError, match="boom")
