"""The journal writer's batching policy, without a file or a clock."""

from __future__ import annotations

import math

from backfill.journal.batching import Action, Batching, Step, next_step

POLICY = Batching(write_interval_s=0.01, fsync_interval_s=0.5)


def step(**given: object) -> Step:
    args: dict[str, object] = dict(now=10.0, holds=False, holds_data=False, flush_waiting=False,
                                   ended=False, wrote_at=-math.inf, unsynced_since=None)
    args.update(given)
    return next_step(POLICY, **args)  # type: ignore[arg-type]


def test_records_gather_until_the_write_interval_has_passed() -> None:
    got = step(holds=True, holds_data=True, wrote_at=9.996)
    assert got.action is Action.SLEEP
    assert math.isclose(got.delay_s or 0, 0.006)


def test_records_are_written_at_once_when_no_write_was_made_recently() -> None:
    assert step(holds=True, holds_data=True, wrote_at=9.0) == Step(Action.WRITE, sync=False)


def test_a_flush_or_the_end_of_the_queue_does_not_wait_for_the_interval() -> None:
    assert step(holds=True, holds_data=True, flush_waiting=True, wrote_at=9.999) == Step(
        Action.WRITE, sync=True)
    assert step(holds=True, holds_data=True, ended=True, wrote_at=9.999) == Step(
        Action.WRITE, sync=False)


def test_a_write_fsyncs_when_data_has_waited_for_the_fsync_interval() -> None:
    assert step(holds=True, holds_data=True, unsynced_since=9.5).sync
    assert not step(holds=True, holds_data=True, unsynced_since=9.6).sync


def test_a_flush_with_everything_synced_needs_no_fsync() -> None:
    assert step(holds=True, flush_waiting=True) == Step(Action.WRITE, sync=False)


def test_idle_with_unsynced_data_waits_until_the_fsync_is_due_then_syncs() -> None:
    got = step(unsynced_since=9.8)
    assert got.action is Action.WAIT
    assert math.isclose(got.delay_s or 0, 0.3)
    assert step(unsynced_since=9.5) == Step(Action.WRITE, sync=True)


def test_idle_and_synced_waits_without_a_limit() -> None:
    assert step() == Step(Action.WAIT, delay_s=None)


def test_the_end_of_the_queue_syncs_what_is_left_then_is_done() -> None:
    assert step(ended=True, unsynced_since=9.99) == Step(Action.WRITE, sync=True)
    assert step(ended=True) == Step(Action.DONE)
