"""The merged view of a main manifest and the shard manifests beside it; merging files.

A plain run journals to ``manifest.jsonl``; ``run --shard I/N`` to
``manifest.shard-I-of-N.jsonl`` beside it. Every reader (status, verify, run, a shard
run) sees all of them at once, merged by the rule of :mod:`backfill.shards.merge`, so a
team can go from 1 to N shards and back (or from N to M) without fetching anything twice.

Memory: the view is one packed :class:`ManifestState` (each other file's records are
folded into the first one loaded), not a dict of records, so a million keys stay at
about 250 bytes each.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputDirError
from ..journal import ManifestLock, ManifestState, Record, compact, load_manifest
from .assign import Shard
from .merge import Conflict, Key, has_file, merge, wins
from .naming import is_shard_manifest


def shard_manifests(main: Path) -> list[tuple[Shard, Path]]:
    """The shard manifests beside ``main`` (regular files only), by count, then index."""
    found: list[tuple[Shard, Path]] = []
    try:
        entries = list(os.scandir(main.parent))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        shard = is_shard_manifest(main.name, entry.name)
        if shard is not None and entry.is_file(follow_symlinks=False):
            found.append((shard, main.parent / entry.name))
    found.sort(key=lambda sp: (sp[0].count, sp[0].index))
    return found


def fold(into: ManifestState, other: Iterable[Record], conflicts: set[Key]) -> int:
    """Fold ``other``'s records into ``into`` under the merge rule; adds to ``conflicts``
    the keys where two completed records disagree on sha256. Returns the keys ``into``
    did not have."""
    new = 0
    get, add = into.get, into.add
    for rec in other:
        old = get(rec.key)
        if old is None:
            new += 1
            add(rec)
            continue
        if has_file(rec) and has_file(old) and rec.sha256 != old.sha256:
            conflicts.add(rec.key)
        if wins(rec, old):
            add(rec)
    return new


@dataclass(slots=True)
class View:
    """What a reader sees: the merged ``state``, the files read (``paths``), their torn
    last lines, the keys in conflict, and (if kept) every file's own state."""

    state: ManifestState
    paths: list[Path] = field(default_factory=list)
    torn: list[tuple[Path, int]] = field(default_factory=list)
    conflict_keys: set[Key] = field(default_factory=set)
    parts: list[tuple[Path, ManifestState]] = field(default_factory=list)
    where: str | None = None  # the files are copies of manifests there (an object store)

    def label(self, path: Path) -> str:
        """How to name a file read: its path, or where its original lives."""
        return str(path) if self.where is None else f"{self.where}/{path.name}"

    def add_part(self, path: Path, part: ManifestState, *, keep: bool) -> None:
        self.paths.append(path)
        if part.torn_line is not None:
            self.torn.append((path, part.torn_line))
        if keep:
            self.parts.append((path, part))

    def conflicts(self) -> list[Conflict]:
        """The conflicts in full (needs the parts kept): the pure merge over the
        conflicting keys only."""
        keys = sorted(self.conflict_keys)
        subsets = [(str(p), [r for k in keys if (r := s.get(k)) is not None])
                   for p, s in self.parts]
        return merge(subsets).conflicts if keys else []


def part_paths(main: Path, own: Path | None = None) -> list[Path]:
    """The files a view of ``main`` reads: ``own`` first (the one a run appends to,
    default ``main``), then ``main``, then every shard manifest beside it."""
    paths = [own or main]
    for p in [main, *(p for _, p in shard_manifests(main))]:
        if p not in paths:
            paths.append(p)
    return paths


def load_view(main: Path, own: Path | None = None, *, keep_parts: bool = False,
              only: Callable[[str], bool] | None = None) -> View:
    """Load ``main``, ``own`` and the shard manifests beside ``main``, merged.

    The view's state is ``own``'s state with the others folded in; its ``lines`` counts
    ``own``'s lines plus one per key only the others have, and its ``torn_line`` is
    ``own``'s, so compaction of ``own`` is decided exactly as without shards.
    ``keep_parts`` keeps every file's own state too (verify, conflict reports); without it
    only the first is kept (memory). ``only(workspace)`` False leaves that workspace's
    records of the *other* files out as they are read (a shard run's view: its own
    workspaces only, so memory per shard scales with 1/N). ManifestError as
    ``load_manifest`` raises it.
    """
    paths = part_paths(main, own)
    first = load_manifest(paths[0])
    view = View(load_manifest(paths[0]) if keep_parts and len(paths) > 1 else first)
    view.add_part(paths[0], first, keep=keep_parts)
    base = view.state
    for path in paths[1:]:
        part = load_manifest(path, only)
        view.add_part(path, part, keep=keep_parts)
        base.lines += fold(base, part, view.conflict_keys)
    return view


def load_state(main: Path, own: Path | None = None, *,
               shard: Shard | None = None) -> ManifestState:
    """The merged state a run starts from (see :func:`load_view`); a ``shard`` run's
    holds only the records of the workspaces it owns from the other manifests."""
    return load_view(main, own, only=None if shard is None else shard.owns).state


def shard_loader(main: Path, shard: Shard | None) -> Callable[[Path], ManifestState]:
    """``own manifest → merged state`` for a run (``open_journal``'s ``load``)."""
    return functools.partial(load_state, main, shard=shard)


@dataclass(frozen=True, slots=True)
class MergeReport:
    """What ``backfill manifest merge`` did."""

    out: Path
    inputs: tuple[Path, ...]
    records: int
    conflicts: tuple[Conflict, ...]
    torn: tuple[tuple[Path, int], ...]


def merge_files(out: Path, inputs: Sequence[Path]) -> MergeReport:
    """Merge the manifests ``inputs`` into ``out`` (which may be one of them): one line
    per key, written atomically (temporary file, fsync, rename) under ``out``'s lock.

    LockedError if a run holds ``out``; ManifestError naming an unreadable input;
    OutputDirError (exit 2, nothing written) when ``out`` is a symbolic link: refused,
    as a run refuses a manifest that is one (the compaction refuses it too, at the rename).
    """
    if os.path.islink(out):
        raise OutputDirError(f"{out}: is a symbolic link, not followed")
    with ManifestLock(out):
        view = View(ManifestState())
        for path in inputs:
            part = load_manifest(path)
            view.add_part(path, part, keep=True)
            fold(view.state, part, view.conflict_keys)
        compact(out, view.state)
    return MergeReport(out, tuple(inputs), len(view.state), tuple(view.conflicts()),
                       tuple(view.torn))


def consolidate(main: Path) -> MergeReport:
    """Merge every shard manifest beside ``main`` into ``main`` and, when no two
    completed records conflict, delete those shard manifests (their records are in
    ``main`` now; their lock files stay, as every lock file does). Each file's lock is
    held meanwhile: LockedError if a run is using one, and nothing is changed."""
    shards = [p for _, p in shard_manifests(main)]
    with contextlib.ExitStack() as locks:
        for path in shards:
            locks.enter_context(ManifestLock(path))
        report = merge_files(main, [main, *shards])
        if not report.conflicts:
            for path in shards:
                path.unlink()
    return report
