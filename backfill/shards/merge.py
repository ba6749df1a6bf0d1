"""The merge rule for manifests written by several shards or runs. Pure; no I/O.

For one key ``(app_id, filename)``, of the records the inputs hold:

    1. a completed record with a file (``path`` set) beats any other record;
    2. otherwise (both with a file, or neither) the newer ``updated_at`` wins;
    3. a tie is broken by the record's bytes (:meth:`Record.to_line`), so the rule is a
       total order: the result does not depend on the order of the inputs, merging is
       idempotent, and no completed record is ever replaced by one that is not.

Two completed records of one key with different sha256 are a *conflict*: the winner is
chosen by the rule (the newer one), and every other sha256 is reported with the input
holding it (its best record), never hidden.

Each input is a manifest's *state* (last line per key already applied, as
``load_manifest`` gives it); inside one file the journal's own rule, the last line
wins, still holds (a later ``failed`` from ``verify`` supersedes that file's
``completed``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..journal import Record, Status

Key = tuple[str, str]


def has_file(record: Record) -> bool:
    """A completed record that names a stored file."""
    return record.status is Status.COMPLETED and record.path is not None


def wins(new: Record, old: Record) -> bool:
    """True if ``new`` beats ``old`` (records of one key) under the merge rule."""
    a, b = has_file(new), has_file(old)
    if a != b:
        return a
    if new.updated_at != old.updated_at:
        return new.updated_at > old.updated_at
    return new.to_line() > old.to_line()


@dataclass(frozen=True, slots=True)
class Conflict:
    """Completed records of one key whose sha256 differ.

    ``kept``: (input label, the winning record); ``others``: for every other sha256, the
    input label and best record holding it, ordered by sha256.
    """

    key: Key
    kept: tuple[str, Record]
    others: tuple[tuple[str, Record], ...]

    def describe(self) -> str:
        app_id, filename = self.key
        label, rec = self.kept
        rest = "; ".join(f"{lab} has sha256 {r.sha256}" for lab, r in self.others)
        return (f"{app_id} {filename}: kept sha256 {rec.sha256} ({label}, "
                f"{rec.updated_at or 'no time'}); {rest}")


@dataclass(slots=True)
class Merged:
    """The merge of several inputs: one record per key, where it came from, conflicts."""

    records: dict[Key, Record] = field(default_factory=dict)
    sources: dict[Key, str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


def merge(inputs: Sequence[tuple[str, Iterable[Record]]]) -> Merged:
    """Merge ``(label, records)`` inputs under the rule (module docstring).

    Each ``records`` is iterated twice (the second pass finds conflicts), so pass lists
    or manifest states, not generators. Records keep the order in which their keys first
    appear; conflicts are ordered by key.
    """
    out = Merged()
    best, where = out.records, out.sources
    for label, records in inputs:
        for rec in records:
            key = rec.key
            old = best.get(key)
            if old is None or wins(rec, old) or (rec == old and label < where[key]):
                best[key] = rec
                where[key] = label
    out.conflicts = _conflicts(inputs, out)
    return out


def _conflicts(inputs: Sequence[tuple[str, Iterable[Record]]], out: Merged) -> list[Conflict]:
    seen: dict[Key, dict[str | None, tuple[str, Record]]] = {}
    for label, records in inputs:
        for rec in records:
            if not has_file(rec):
                continue
            kept = out.records[rec.key]
            if rec.sha256 == kept.sha256:
                continue
            shas = seen.setdefault(rec.key, {})
            prev = shas.get(rec.sha256)
            if prev is None or wins(rec, prev[1]) or (rec == prev[1] and label < prev[0]):
                shas[rec.sha256] = (label, rec)
    return [
        Conflict(key, (out.sources[key], out.records[key]),
                 tuple(shas[sha] for sha in sorted(shas, key=lambda s: s or "")))
        for key, shas in sorted(seen.items())
    ]
