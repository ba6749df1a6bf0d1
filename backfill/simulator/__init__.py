"""An aiohttp.web imitation of the Campaign Report API (api.md), with fault injection.

    async with run_simulator(workspaces, seed=0, today=date(2026, 11, 27)) as sim:
        sim.base_url                  # "http://127.0.0.1:54321"
        sim.faults.rate_503 = 0.2     # read on every request
        sim.counters.requests[(app_id, filename, 200)]

Modules: ``catalog`` (which files exist, the clock), ``faults`` (what goes wrong, from a
hash), ``body`` (deterministic zip bodies, streamed when large), ``app`` (the server),
``cli`` (``backfill simulate``). The server (aiohttp) is loaded on first use of
:class:`Simulator`, so registering the ``simulate`` command costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .body import BodySpec, build_body, iter_body
from .catalog import Catalog, Clock, check_file
from .faults import KINDS, Fault, Faults, FirstN

if TYPE_CHECKING:
    from .app import Counters, Simulator, encode_path, run_simulator

__all__ = [
    "KINDS",
    "BodySpec",
    "Catalog",
    "Clock",
    "Counters",
    "Fault",
    "Faults",
    "FirstN",
    "Simulator",
    "build_body",
    "check_file",
    "encode_path",
    "iter_body",
    "run_simulator",
]


def __getattr__(name: str) -> Any:
    if name in ("Counters", "Simulator", "encode_path", "run_simulator"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
