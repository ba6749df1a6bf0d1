"""moe-backfill: asynchronous, resumable bulk backfill of MoEngage campaign reports.

    from backfill import Backfill, load_config

    summary = await Backfill(load_config("backfill.toml")).run()

Subscribe to :mod:`backfill.events` with :meth:`Backfill.subscribe` for progress or for
a scheduler (Airflow, Dagster); ``summary.document(run=True)`` is the ``run --json`` output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import Config, load_config
from .errors import BackfillError, ConfigError, LockedError, ManifestError, StorageError
from .events import Event
from .journal.record import Record
from .model import Status
from .summary import Summary

if TYPE_CHECKING:
    from .engine import Backfill, Options

__all__ = [
    "Backfill",
    "BackfillError",
    "Config",
    "ConfigError",
    "Event",
    "LockedError",
    "ManifestError",
    "Options",
    "Record",
    "Status",
    "StorageError",
    "Summary",
    "__version__",
    "load_config",
]


def __getattr__(name: str) -> Any:
    """The engine (aiohttp, the store) is loaded on first use: ``backfill plan`` and the
    pure modules never pay for it."""
    if name in ("Backfill", "Options"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
