"""How the tool's event loop is started: anyio on asyncio, on uvloop when it is installed.

uvloop (``pip install 'moe-backfill[speed]'``) replaces asyncio's pure-Python selector loop,
transports and timers with libuv's; on the benchmarks' small-file runs it takes a good
part of the per-file CPU on the loop thread (README, "Benchmarks"). It is optional: without
it the standard loop runs the very same code. ``BACKFILL_EVENT_LOOP=asyncio`` keeps the
standard loop even where uvloop is installed (to compare, or to rule it out).

For the run, what exists before the loop starts (modules, the config, the plan's inputs:
~40,000 objects) is kept out of the cyclic collector's way (``gc.freeze``), and given
back to it after (``gc.unfreeze``): otherwise the first full collection of a run walked
them all — 32-39 ms with the event loop stopped, a stall every connection waits out,
measured on the benchmarks' 5,000-file runs (issue 18).
"""

from __future__ import annotations

import gc
import importlib.util
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, TypeVarTuple

import anyio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
ENV = "BACKFILL_EVENT_LOOP"


def use_uvloop(env: Mapping[str, str] | None = None) -> bool:
    """True when uvloop is installed and ``BACKFILL_EVENT_LOOP`` does not say ``asyncio``."""
    choice = (os.environ if env is None else env).get(ENV, "").strip().lower()
    if choice == "asyncio":
        return False
    return importlib.util.find_spec("uvloop") is not None


def run(func: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """``anyio.run(func, *args)`` on the loop :func:`use_uvloop` picks."""
    options: dict[str, Any] = {"use_uvloop": True} if use_uvloop() else {}
    gc.freeze()
    try:
        return anyio.run(func, *args, backend="asyncio", backend_options=options)
    finally:
        gc.unfreeze()
