"""One run's settings, resolved once: config + per-run options + the current instant.

:func:`resolve_run` turns them into a frozen :class:`ResolvedRun` (paths, concurrency,
max outage, each workspace's 'today', the windows) that the CLI's ``plan`` and the
engine both use, so no fact about a run is computed twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config, DateSpec, start_after_end
from .destination import OutputDir
from .errors import ConfigError
from .model import Window
from .naming import TEMP_SUFFIX
from .planner import todays, windows
from .shards.assign import Shard
from .shards.naming import shard_manifest

if TYPE_CHECKING:
    from .events import Event


@dataclass(slots=True)
class Options:
    """Per-run overrides of the config (CLI flags)."""

    today: date | None = None  # pins 'today' in every workspace
    start: DateSpec | None = None
    end: DateSpec | None = None
    workspaces: Sequence[str] = ()
    output_dir: OutputDir | None = None
    manifest: Path | None = None
    concurrency: int | None = None
    max_outage_s: float | None = None
    shard: Shard | None = None  # only this shard's workspaces, journalled in its own manifest
    events: list[Callable[[Event], None]] = field(default_factory=list)
    proxy_env: Mapping[str, str] | None = None  # the proxy variables to use; None: os.environ


@dataclass(frozen=True, slots=True)
class ResolvedRun:
    """Everything a run needs to know about itself, decided once."""

    config: Config
    output_dir: OutputDir
    manifest: Path  # the one this run appends to (a shard's own, or the main one)
    main_manifest: Path  # the main one, beside which shard manifests live
    shard: Shard | None
    remote_manifest: bool  # the manifest lives with the data in an object store
    concurrency: int
    max_outage_s: float
    today: Mapping[str, date]  # per workspace, each in its own time zone
    windows: tuple[Window, ...]


def resolve_today(config: Config, pinned: date | None, now: datetime) -> dict[str, date]:
    """Per-workspace today: pinned for all, or the date at ``now`` in each one's zone."""
    if pinned is not None:
        return {ws.name: pinned for ws in config.workspaces}
    return todays(config.workspaces, now)


def resolve_run(config: Config, options: Options, now: datetime) -> ResolvedRun:
    """The run ``options`` ask for at instant ``now``. ConfigError for a manifest path
    the sweep of partial downloads would delete, a start after the end, or dates
    outside what is handled."""
    o, run = options, config.run
    if o.output_dir is not None:
        run = dataclasses.replace(run, output_dir=o.output_dir)
    if o.manifest is not None:
        run = dataclasses.replace(run, manifest=o.manifest)
    output_dir, main = run.output_dir, run.manifest_path
    if main.name.endswith(TEMP_SUFFIX):
        raise ConfigError(f"--manifest {main}: must not end in "
                          f"'{TEMP_SUFFIX}' (the stale-download sweep would delete it)")
    today = resolve_today(config, o.today, now)
    # A pinned today names a date, not an hour: then every file of it counts as generated.
    wins = windows(config, today, start=o.start, end=o.end, only=o.workspaces,
                   now=None if o.today else now)
    shard = o.shard
    if shard is not None:
        wins = [w for w in wins if shard.owns(w.workspace.name)]
    check_range(config, o.start, o.end, today)  # plan and run alike, before anything
    return ResolvedRun(
        config=config, output_dir=output_dir,
        manifest=main if shard is None else shard_manifest(main, shard),
        main_manifest=main, shard=shard, remote_manifest=run.remote_manifest,
        concurrency=o.concurrency or run.concurrency,
        max_outage_s=o.max_outage_s if o.max_outage_s is not None else run.max_outage_s,
        today=today, windows=tuple(wins),
    )


def check_range(config: Config, start: DateSpec | None, end: DateSpec | None,
                today: Mapping[str, date] | None = None) -> None:
    """Start must not be after end: whatever 'today' is, and with ``today`` also in any
    workspace once relative dates are resolved in its own today (``--start 2026-12-01
    --end today`` in November). ConfigError (exit 2) naming both."""
    s, e = start or config.run.start, end or config.run.end
    where = ""
    if not start_after_end(s, e):
        late = [(ws.name, s.resolve(d), e.resolve(d)) for ws in config.workspaces
                if (d := (today or {}).get(ws.name)) is not None and s.resolve(d) > e.resolve(d)]
        if not late:
            return
        name, first, last = late[0]
        where = f" ({first} after {last} in {name})"
    raise ConfigError(f"usage: {'--start' if start else '[run] start'} {s} is after "
                      f"{'--end' if end else '[run] end'} {e}{where}")


def check_workspaces(config: Config, names: Sequence[str]) -> None:
    """ConfigError naming a --workspace that the config does not have."""
    known = {ws.name for ws in config.workspaces}
    for name in names:
        if name not in known:
            raise ConfigError(f"--workspace: no workspace named {name!r} in {config.path} "
                              f"(known: {', '.join(sorted(known))})")
