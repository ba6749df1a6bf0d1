"""Human-readable output (tables) with rich. Presentation only; takes plain documents."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def console(stream: Any = None) -> Console:
    """A console; when not a terminal, wide enough that tables do not wrap in logs."""
    stream = stream or sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160)


def print_plan(doc: dict[str, Any], out: Console | None = None) -> None:
    out = out or console()
    table = Table(title="Plan", title_justify="left")
    table.add_column("workspace (today)")
    table.add_column("report")
    table.add_column("schedule")
    table.add_column("dates")
    for col in ("files", "fetch", "expired", "future", "dropped"):
        table.add_column(col, justify="right")
    for ws in doc["workspaces"]:
        for i, rp in enumerate(ws["reports"]):
            span = f"{rp['first_date']} … {rp['last_date']}" if rp["first_date"] else "—"
            fetch = str(rp["fetch"]) + (" *" if rp["today"] else "")
            table.add_row(
                f"{ws['name']} ({ws['today']})" if i == 0 else "", rp["name"], rp["schedule"],
                span, str(rp["dates"]), fetch, str(rp["expired"]), str(rp["future"]),
                str(rp["dropped"]),
            )
    out.print(table)
    t = doc["totals"]
    out.print(
        f"{t['dates']} files planned: {t['fetch']} to fetch ({t['boundary']} on their last day, "
        f"{t['today']} generated today and maybe not ready *), {t['expired']} expired "
        f"(never requested), {t['future']} not generated yet, {t['dropped']} dropped by the "
        "90-day cap."
    )
