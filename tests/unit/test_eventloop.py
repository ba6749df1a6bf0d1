"""The event loop choice: uvloop where installed, unless BACKFILL_EVENT_LOOP says asyncio."""

from __future__ import annotations

import asyncio
import gc
import importlib.util

import pytest

from backfill import eventloop

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_is_chosen_when_asked_for() -> None:
    assert eventloop.use_uvloop({"BACKFILL_EVENT_LOOP": "asyncio"}) is False
    assert eventloop.use_uvloop({"BACKFILL_EVENT_LOOP": " AsyncIO "}) is False


def test_uvloop_is_used_exactly_when_installed() -> None:
    assert eventloop.use_uvloop({}) is HAVE_UVLOOP


@pytest.mark.parametrize("choice", ["asyncio", ""])
def test_run_runs_on_the_chosen_loop(monkeypatch: pytest.MonkeyPatch, choice: str) -> None:
    monkeypatch.setenv("BACKFILL_EVENT_LOOP", choice)

    async def loop_module(x: int) -> tuple[int, str]:
        return x + 1, type(asyncio.get_running_loop()).__module__

    value, module = eventloop.run(loop_module, 1)
    assert value == 2
    assert module.startswith("uvloop") is (HAVE_UVLOOP and choice == "")


def test_run_keeps_what_exists_out_of_the_collector_for_the_run_only() -> None:
    async def frozen_during() -> int:
        return gc.get_freeze_count()

    assert eventloop.run(frozen_during) > 1000  # modules and all: frozen while it runs
    assert gc.get_freeze_count() == 0  # given back after
