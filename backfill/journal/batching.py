"""When the journal writer writes and fsyncs: a pure decision, tested without I/O.

The writer drains its queue, then asks :func:`next_step` what to do with what it holds::

    holds records or flush requests
        a write was made less than write_interval_s ago,
        the queue is open and nobody waits for a flush  → SLEEP the rest of the interval
                                                          (more records gather)
        otherwise                                       → WRITE them all in one os.write;
                                                          fsync too if a flush waits or
                                                          data is unsynced ≥ fsync_interval_s
    holds nothing
        the queue has ended                             → WRITE (fsync) if data is unsynced,
                                                          else DONE
        all data is synced                              → WAIT until woken
        otherwise                                       → WAIT until the fsync is due
                                                          (WRITE with fsync once it is)

So a busy run pays one thread hop per batch of records, data is fsynced at least every
``fsync_interval_s``, and a flush or close never waits for an interval.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    WRITE = "write"  # write what is held (possibly nothing), fsync if ``sync``
    SLEEP = "sleep"  # sleep ``delay_s``, then drain again
    WAIT = "wait"  # wait for a new item, at most ``delay_s`` (None: no limit)
    DONE = "done"  # the queue has ended and everything is durable


@dataclass(frozen=True, slots=True)
class Batching:
    """The writer's settings: at most one write per ``write_interval_s``; data fsynced at
    least every ``fsync_interval_s``."""

    write_interval_s: float = 0.01
    fsync_interval_s: float = 0.5


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    sync: bool = False
    delay_s: float | None = None


def next_step(
    policy: Batching, *, now: float, holds: bool, holds_data: bool, flush_waiting: bool,
    ended: bool, wrote_at: float, unsynced_since: float | None,
) -> Step:
    """The writer's next step (see the module docstring).

    ``holds``: records or flush requests in hand; ``holds_data``: records among them;
    ``wrote_at``: time of the last write; ``unsynced_since``: time of the oldest data
    written or held but not fsynced yet, None if there is none.
    """
    if holds:
        wait = wrote_at + policy.write_interval_s - now
        if wait > 0 and not ended and not flush_waiting:
            return Step(Action.SLEEP, delay_s=wait)
        unsynced = unsynced_since if unsynced_since is not None else (
            now if holds_data else None)
        due = unsynced is not None and now - unsynced >= policy.fsync_interval_s
        return Step(Action.WRITE, sync=unsynced is not None and (flush_waiting or due))
    if ended:
        return Step(Action.WRITE, sync=True) if unsynced_since is not None else Step(Action.DONE)
    if unsynced_since is None:
        return Step(Action.WAIT)
    delay = unsynced_since + policy.fsync_interval_s - now
    if delay <= 0:
        return Step(Action.WRITE, sync=True)
    return Step(Action.WAIT, delay_s=delay)
