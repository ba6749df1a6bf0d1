"""CSV → Parquet: each report's CSV becomes a typed, Hive-partitioned Parquet dataset.

Needs pyarrow, the optional extra ``moe-backfill[parquet]``; :func:`require` says so in
one line (exit 2) when it is missing. Modules:

- :mod:`.names` — snake_case column names, report slugs, the layout (pure);
- :mod:`.kinds` — the type lattice and its join (pure); :mod:`.schema` — merging days;
- :mod:`.infer` — whole-file type inference over Arrow chunks;
- :mod:`.source` — the two streaming passes over a zip's CSV members;
- :mod:`.parquet` — completing batches to the dataset schema, row groups, zstd;
- :mod:`.files` — atomic, symlink-refusing writes; :mod:`.ledger` — what was extracted;
- :mod:`.extract` — one download → one Parquet part, widening the dataset when needed.
"""

from __future__ import annotations

from ..errors import ConfigError

EXTRA = "parquet"
INSTALL_HINT = "pip install 'moe-backfill[parquet]'"


class MissingExtra(ConfigError):
    """An optional extra is not installed (exit 2)."""


def require() -> None:
    """Raise :class:`MissingExtra` naming the extra if pyarrow cannot be imported."""
    try:
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingExtra(f"tables need pyarrow, which is not installed: {INSTALL_HINT}"
                           ) from None
