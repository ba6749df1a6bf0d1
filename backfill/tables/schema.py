"""One report's table schema, and how the schemas of its days merge. Pure: no I/O.

A :data:`Columns` is the ordered list of ``(name, ColumnType)`` of the CSV columns (the
extra columns the tool adds are always last and always the same, see
:data:`~.names.EXTRA_COLUMNS`). Merging keeps the dataset's columns in their order with
each type joined (:func:`~.kinds.join`), then appends the columns it did not have, in the
order they first appear. So a dataset's schema only ever grows and widens: a column a
later day adds is null in the earlier days' files; a column a later day lacks is null in
that day's file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .kinds import ColumnType, join

Columns = list[tuple[str, ColumnType]]


def merge(base: Sequence[tuple[str, ColumnType]],
          more: Iterable[tuple[str, ColumnType]]) -> Columns:
    """``base`` widened and extended by ``more`` (see the module docstring)."""
    merged = dict(base)
    for name, t in more:
        merged[name] = join(merged[name], t) if name in merged else t
    return list(merged.items())


def merge_all(parts: Iterable[Sequence[tuple[str, ColumnType]]]) -> Columns:
    out: Columns = []
    for part in parts:
        out = merge(out, part)
    return out
