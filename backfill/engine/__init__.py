"""The download engine: planner → bounded async pool → store + journal.

    facade.py     Backfill (set a run up, run it, stop it) and Options
    run.py        Run: one run's state; a feeder per workspace
    pool.py       WorkspacePool: workers over a workspace's files, growing on demand
    fetch.py      FileFetch: one file's attempts (admit → slots → send → commit → judge)
    slots.py      rate → adaptive → global, then a commit slot for a received body
    exchange.py   the request: client GET, the body to the store's receive
    guards.py     host breaker, throttle and auth guards; they judge each decision
    recorder.py   one outcome value → one journal record and the tallies

The engine emits events (:mod:`backfill.events`); it does not print.
"""

from __future__ import annotations

from .facade import Backfill, Options

__all__ = ["Backfill", "Options"]
