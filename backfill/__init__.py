"""moe-backfill: asynchronous, resumable bulk backfill of MoEngage campaign reports.

    from backfill import Backfill, load_config

    summary = await Backfill(load_config("backfill.toml")).run()

Subscribe to :mod:`backfill.events` with :meth:`Backfill.subscribe` for progress or for
a scheduler (Airflow, Dagster); ``summary.document(run=True)`` is the ``run --json`` output.
"""

from ._version import __version__
from .config import Config, load_config
from .engine import Backfill, Options
from .errors import BackfillError, ConfigError, LockedError, ManifestError, StorageError
from .events import Event
from .manifest import Record, Status
from .summary import Summary

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
