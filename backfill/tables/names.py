"""Column names, report slugs and where each table file goes. Pure functions, no I/O.

Column names: a CSV header such as ``Campaign Name``, ``All Platform Sent``, ``CTR (%)``
or ``campaignId`` becomes ``campaign_name``, ``all_platform_sent``, ``ctr_pct``,
``campaign_id``: accents folded to ASCII, camelCase split, ``%`` → ``pct``, ``#`` →
``num``, every other run of non-alphanumerics → ``_``, lower case. A name that starts
with a digit gets a leading ``_`` (``7 Day Revenue`` → ``_7_day_revenue``), an empty one
becomes ``column_<n>`` (1-based position). The result is stable: it depends only on the
header row.

Names are made unique in header order: the second ``Sent`` is ``sent_2``. The columns the
tool adds (:data:`EXTRA_COLUMNS`) and the partition key ``date`` are reserved: a CSV
column normalised to one of them is prefixed ``csv_`` (``Date`` → ``csv_date``), because
readers with hive partitioning silently replace a file column named like the partition
key with the key's value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from pathlib import PurePosixPath

from ..naming import safe_component

EXTRA_COLUMNS: tuple[str, ...] = ("workspace", "app_id", "report", "generation_date",
                                  "source_file")
PARTITION_KEY = "date"
RESERVED: frozenset[str] = frozenset((*EXTRA_COLUMNS, PARTITION_KEY))
TABLES_DIR = "tables"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SYMBOLS = {"%": " pct ", "#": " num ", "ß": "ss"}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def snake_case(text: str) -> str:
    """One header cell as snake_case (may be empty, may start with a digit)."""
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = _CAMEL.sub("_", folded)
    return _NON_ALNUM.sub("_", folded.lower()).strip("_")


def column_names(header: Sequence[str]) -> list[str]:
    """The normalised, unique column names of a header row, in its order."""
    taken: set[str] = set(RESERVED)
    out: list[str] = []
    for position, cell in enumerate(header, start=1):
        base = snake_case(cell) or f"column_{position}"
        if base[0].isdigit():
            base = "_" + base
        if base in RESERVED:
            base = "csv_" + base
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out.append(name)
    return out


def report_slug(report: str) -> str:
    """``Daily campaign summary`` → ``daily_campaign_summary``: the dataset's folder name."""
    slug = snake_case(report)
    return safe_component(slug) if slug else safe_component(report)


def table_path(report: str, day: date, workspace: str) -> PurePosixPath:
    """``tables/<report_slug>/date=YYYY-MM-DD/<workspace>.parquet``, relative to output_dir."""
    return PurePosixPath(TABLES_DIR, report_slug(report), f"{PARTITION_KEY}={day.isoformat()}",
                         safe_component(f"{workspace}.parquet"))


def dataset_dir(report: str) -> PurePosixPath:
    """The folder holding one report's dataset, relative to output_dir."""
    return PurePosixPath(TABLES_DIR, report_slug(report))
