"""Human-readable output (tables) with rich. Presentation only; takes plain documents."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from ..journal.record import Record
    from ..summary import Summary


def console(stream: Any = None) -> Console:
    """A console; when not a terminal, wide enough that tables do not wrap in logs."""
    stream = stream or sys.stdout
    # Names and server messages are printed as typed: every one goes through escape(), and
    # no ':name:' emoji codes are replaced.
    return Console(file=stream, width=None if stream.isatty() else 160, emoji=False)


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
                f"{escape(ws['name'])} ({ws['today']})" if i == 0 else "", escape(rp["name"]),
                rp["schedule"],
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
    for ws in doc["workspaces"]:
        nxt = ws.get("next_ready")
        if nxt:
            out.print(f"{escape(ws['name'])}: next file {escape(nxt['report'])} fetchable from "
                      f"{nxt['at'].replace('T', ' ')} ({ws['timezone']})")


def _size(n: int) -> str:
    f = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if f < 1024 or unit == "TB":
            return f"{f:.0f} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1024
    return f"{f:.1f} TB"


def _left(when: datetime, now: datetime) -> str:
    s = max(0, int((when - now).total_seconds()))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h"
    return f"{s // 60} min"


def _counts_table(summary: Summary, title: str, *, run: bool) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("workspace")
    cols = ["completed", "missing", "expired", "pending", "failed", "bytes"]
    if run:
        cols += ["requests", "retries"]
    for col in cols:
        table.add_column(col, justify="right")
    for t in summary.workspaces.values():
        row = [escape(t.name)] + [str(t.counts[c]) for c in cols[:5]] + [_size(t.bytes)]
        if run:
            row += [str(t.requests), str(t.retries)]
        table.add_row(*row)
    totals = summary.totals
    last = ["total"] + [str(totals[c]) for c in cols[:5]] + [_size(summary.bytes)]
    if run:
        last += [str(summary.requests), str(summary.retries)]
    table.add_row(*last, style="bold")
    return table


# Failures that a plain re-run repeats: the reason says what to change first.
SETUP_REASONS = ("certificate verify failed", "proxy refused")


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def next_step(summary: Summary, now: datetime) -> str:
    """The one sentence a user needs after a run."""
    totals = summary.totals
    if summary.interrupted:
        return "Interrupted: the manifest is consistent; run the same command again to resume."
    if summary.error:
        return f"Stopped: {summary.error}. Fix it and run the same command again."
    parts = []
    auth = summary.failures.get("auth", 0)
    setup = sum(n for reason, n in summary.failures.items() if reason.startswith(SETUP_REASONS))
    if auth:
        parts.append(f"{_files(auth)} rejected as unauthorized (401/403): fix api_key/"
                     "secret_key, then re-run")
    if setup:
        parts.append(f"{_files(setup)} failed on TLS or the proxy: fix [http] ca_bundle/proxy "
                     "as the reason says, then re-run")
    if rest := totals["failed"] - auth - setup:
        parts.append(f"{_files(rest)} failed: run the same command again to retry them")
    if totals["pending"]:
        parts.append(f"{totals['pending']} not generated yet (pending): a later run fetches them")
    risky = [r for r in summary.at_risk if r.expires_at > now]
    if risky:
        soonest = min(r.expires_at for r in risky)
        n = sum(1 for r in risky if r.expires_at == soonest)
        parts.append(f"{n} expire{'s' if n == 1 else ''} in {_left(soonest, now)}")
    if not parts:
        return "All done: nothing failed."
    return "; ".join(parts) + "."


def print_summary(summary: Summary, out: Console | None = None) -> None:
    out = out or console(sys.stderr)
    now = datetime.now(UTC)
    out.print(_counts_table(summary, f"Run finished in {summary.duration_s:.1f} s", run=True))
    if summary.failures:
        out.print("Failures by reason:")
        for reason, n in summary.failures.most_common():
            out.print(f"  {n:>6}  {escape(reason)}")
    for t in summary.workspaces.values():
        for flag in t.flags:
            out.print(f"[yellow]{escape(t.name)}: {escape(flag)}[/yellow]")
    out.print(escape(next_step(summary, now)))


def print_status(summary: Summary, manifest: Any, out: Console | None = None) -> None:
    out = out or console()
    out.print(_counts_table(summary, f"Manifest {escape(str(manifest))}", run=False))
    now = datetime.now(UTC)
    if summary.at_risk:
        out.print("At risk (not fetched yet, closest to expiry first):")
        for r in summary.at_risk[:20]:
            out.print(escape(f"  {_left(r.expires_at, now):>10} left  {r.workspace}  "
                             f"{r.filename}  {r.status}{': ' + r.reason if r.reason else ''}"))
        if len(summary.at_risk) > 20:
            out.print(f"  … and {len(summary.at_risk) - 20} more")


GLYPHS = {
    "completed": ("●", "green"), "missing": ("○", "yellow"), "expired": ("×", "grey50"),
    "pending": ("◌", "cyan"), "failed": ("✗", "red"),
}


def print_grid(records: list[Record], workspaces: Any, now: datetime,
               out: Console | None = None, max_days: int = 31) -> None:
    """(workspace, report) × date matrix, one coloured symbol per file, with a legend."""
    out = out or console()
    if not records:
        out.print("The manifest is empty: nothing has run yet.")
        return
    days = sorted({r.date for r in records})[-max_days:]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in records:
        cells.setdefault((r.workspace, r.report), {})[r.date] = r.status.value
    table = Table(title="Files by generation date", title_justify="left", box=None,
                  padding=(0, 0))
    table.add_column("workspace / report", no_wrap=True)
    for d in days:
        table.add_column(d[8:10], justify="center", width=3)
    for (ws, report), row in sorted(cells.items()):
        glyphs = []
        for d in days:
            status = row.get(d)
            sym, style = GLYPHS.get(status or "", ("·", "grey30"))
            glyphs.append(f"[{style}]{sym}[/{style}]")
        table.add_row(escape(f"{ws} / {report}"), *glyphs)
    out.print(table)
    out.print(f"dates {days[0]} … {days[-1]}   " + "  ".join(
        f"[{style}]{sym}[/{style}] {name}" for name, (sym, style) in GLYPHS.items())
        + "  [grey30]·[/grey30] not in manifest")
