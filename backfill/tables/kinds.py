"""Column types as a small lattice, and how two of them join. Pure: no pyarrow, no I/O.

A column's type is decided from every value in it (never a prefix) and only ever widens:

    null ─┬─ int ── decimal ── float ─┐
          ├─ date ────────────────────┤
          ├─ timestamp (no offset) ───┼── string
          ├─ timestamp_tz (offset) ───┤
          └─ bool ────────────────────┘

- ``null``: every cell empty (a header-only file); joins with anything as that thing.
- ``int``: ``[+-]?`` digits without a leading zero (``007`` is an id: string), ≤ 18 digits
  → int64, nullable.
- ``decimal``: integers and fixed-point numbers (``1906.19``): decimal128(precision,
  scale), exact; precision = most integer digits + most fraction digits seen (≤ 38, else
  string). An integral column that turns decimal later becomes decimal, never rounded.
- ``float``: numbers in exponent notation (``1.5e3``): float64.
- ``date``: ``YYYY-MM-DD``; ``timestamp``: ISO 8601 date-time without an offset
  (microseconds); ``timestamp_tz``: with ``Z`` or ``±HH:MM``, stored as the UTC instant.
- ``bool``: ``true``/``false`` in one of three spellings (``true``, ``True``, ``TRUE``).
- ``string``: anything else, and any two kinds that do not join otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_DECIMAL_DIGITS = 38
INT64_DIGITS = 18  # every 18-digit integer fits an int64


class Kind(enum.Enum):
    NULL = "null"
    INT = "int"
    DECIMAL = "decimal"
    FLOAT = "float"
    DATE = "date"
    TIMESTAMP = "timestamp"
    TIMESTAMP_TZ = "timestamp_tz"
    BOOL = "bool"
    STRING = "string"


_NUMERIC = (Kind.INT, Kind.DECIMAL, Kind.FLOAT)


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A kind, and for ``int``/``decimal`` the most integer and fraction digits seen."""

    kind: Kind
    int_digits: int = 0
    scale: int = 0

    @property
    def precision(self) -> int:
        return max(self.int_digits + self.scale, 1)


NULL = ColumnType(Kind.NULL)
STRING = ColumnType(Kind.STRING)


def decimal(int_digits: int, scale: int) -> ColumnType:
    """A decimal of these digits, or string if no decimal128 holds it."""
    if int_digits + scale > MAX_DECIMAL_DIGITS:
        return STRING
    return ColumnType(Kind.DECIMAL, int_digits, scale)


def integer(int_digits: int) -> ColumnType:
    """An int64 when every value has at most 18 digits, else a decimal of scale 0."""
    if int_digits > INT64_DIGITS:
        return decimal(int_digits, 0)
    return ColumnType(Kind.INT, int_digits)


def join(a: ColumnType, b: ColumnType) -> ColumnType:
    """The narrowest type that holds every value of both, losslessly."""
    if a.kind is Kind.NULL:
        return b
    if b.kind is Kind.NULL:
        return a
    if a.kind is Kind.STRING or b.kind is Kind.STRING:
        return STRING
    if a.kind in _NUMERIC and b.kind in _NUMERIC:
        return _join_numbers(a, b)
    return a if a.kind is b.kind else STRING


def _join_numbers(a: ColumnType, b: ColumnType) -> ColumnType:
    if Kind.FLOAT in (a.kind, b.kind):
        return ColumnType(Kind.FLOAT)
    digits = max(a.int_digits, b.int_digits)
    if a.kind is Kind.INT and b.kind is Kind.INT:
        return integer(digits)
    return decimal(digits, max(a.scale, b.scale))


def join_all(types: list[ColumnType]) -> ColumnType:
    out = NULL
    for t in types:
        out = join(out, t)
    return out
