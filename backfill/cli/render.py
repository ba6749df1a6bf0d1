"""Human-readable output (tables) with rich. Presentation only; takes plain documents.

Every table fits 80 columns: compact headers, long names folded onto a second line, the
grid folded into blocks of whole weeks. Tables are aligned columns without box drawing
(headers in bold on a terminal), so cron mail gets plain text. When the stream cannot
encode a symbol (``PYTHONIOENCODING=ascii``), ASCII stands in.
"""

from __future__ import annotations

import codecs
import sys
from datetime import UTC, date, datetime
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..monitor.verdict import left as time_left
from . import streams
from .streams import QuietConsole

if TYPE_CHECKING:
    from ..journal.record import Record
    from ..summary import Summary

WIDTH = 80  # what output goes to when it is not a terminal (cron mail, CI logs)
# What a symbol becomes on a stream that cannot encode it.
ASCII = str.maketrans({
    "…": "...", "—": "-", "–": "-", "·": ".", "×": "x", "●": "#", "○": "o", "◌": "~",
    "✗": "!", "━": "=", "→": "->", "≤": "<=", "≥": ">=", "µ": "u", "⚠": "!",
})


def can_encode(stream: Any, sample: str = "●…—━") -> bool:
    """Whether ``stream``'s encoding holds the symbols used here."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        codecs.lookup(encoding)
        sample.encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return False
    return True


class AsciiStream:
    """A text stream that writes symbols as ASCII, and any other character it cannot
    encode as '?', instead of raising UnicodeEncodeError."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.encoding = getattr(stream, "encoding", None) or "ascii"

    def write(self, text: str) -> int:
        safe = text.translate(ASCII).encode(self.encoding, "replace").decode(self.encoding)
        return self._stream.write(safe)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def safe_stream(stream: IO[str]) -> IO[str]:
    return stream if can_encode(stream) else AsciiStream(stream)  # type: ignore[return-value]


def console(stream: Any = None) -> Console:
    """A console for ``stream``: the terminal's width on a terminal, else 80 columns."""
    stream = stream or sys.stdout
    # Names and server messages are printed as typed: every one goes through escape(), and
    # no ':name:' emoji codes are replaced.
    return QuietConsole(file=safe_stream(stream), width=None if stream.isatty() else WIDTH,
                        emoji=False)


def _table(out: Console, title: str | None = None) -> Table:
    """A table for ``out``: aligned columns, no box drawing (header in bold on a
    terminal), two spaces between columns."""
    return Table(title=title, title_justify="left", box=None, padding=(0, 1), pad_edge=False,
                 show_edge=False, title_style="bold" if out.is_terminal else "",
                 header_style="bold" if out.is_terminal else "")


def _sym(out: Console, text: str) -> str:
    """``text`` as the console can show it: symbols in ASCII when it cannot encode them
    (done before layout, so that '...' for '…' still fits the width)."""
    return text.translate(ASCII) if out.options.ascii_only else text


def _span(out: Console, first: str | None, last: str | None, today: str) -> str:
    if not first or not last:
        return "-"
    year = today[:4]
    short = first[:4] == last[:4] == year
    return _sym(out, f"{first[5:]}…{last[5:]}" if short else f"{first}…{last}")


def print_plan(doc: dict[str, Any], out: Console | None = None) -> None:
    out = out or console()
    table = _table(out, "Plan")
    table.add_column("workspace / report", overflow="fold")
    table.add_column("dates", no_wrap=True)
    # 'future' and 'dropped' are mostly 0: shown only when not (the line below has them)
    extra = [c for c in ("future", "dropped") if doc["totals"][c]]
    for col in ("files", "fetch", "expired", *extra):
        table.add_column(col, justify="right", no_wrap=True)
    for ws in doc["workspaces"]:
        table.add_row(f"[bold]{escape(ws['name'])}[/bold] (today {ws['today']})")
        for rp in ws["reports"]:
            sched = "" if rp["schedule"] == "daily" else f" ({rp['schedule']})"
            fetch = str(rp["fetch"]) + (" *" if rp["today"] else "")
            table.add_row(
                "  " + escape(rp["name"] + sched),
                _span(out, rp["first_date"], rp["last_date"], ws["today"]), str(rp["dates"]),
                fetch, str(rp["expired"]), *[str(rp[c]) for c in extra],
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


def _counts_table(summary: Summary, title: str, out: Console) -> Table:
    table = _table(out, title)
    table.add_column("workspace", overflow="fold")
    cols = ["completed", "missing", "expired", "pending", "failed"]
    for col in [*cols, "size"]:
        table.add_column(col, justify="right", no_wrap=True)
    for t in summary.workspaces.values():
        table.add_row(escape(t.name), *[str(t.counts[c]) for c in cols], _size(t.bytes))
    if len(summary.workspaces) > 1:
        totals = summary.totals
        table.add_row("total", *[str(totals[c]) for c in cols], _size(summary.bytes),
                      style="bold")
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
    if summary.rejected:
        n = len(summary.rejected)
        return (f"{n} report{'s' if n != 1 else ''} rejected by the server (exit 4): fix the "
                "name or app_id in the config, then run the same command again.")
    live = sum(totals[k] for k in ("completed", "missing", "pending", "failed"))
    if not live:
        if totals["expired"]:
            n = totals["expired"]
            return (f"Nothing to fetch: all {n} file{'s' if n != 1 else ''} of this range "
                    "are older than the API's 7-day window (expired; no request was sent). "
                    "Check --start/--end (and --today).")
        return ("Nothing to fetch: no report is generated in this range yet. "
                "Check --start/--end (and --today).")
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
        parts.append(f"{n} expire{'s' if n == 1 else ''} in {time_left(soonest, now)}")
    if not parts:
        return "All done: nothing failed."
    return "; ".join(parts) + "."


def print_summary(summary: Summary, out: Console | None = None) -> None:
    out = out or console(sys.stderr)
    now = datetime.now(UTC)
    title = (f"Run finished in {summary.duration_s:.1f} s: {summary.requests} requests, "
             f"{summary.retries} retries")
    out.print(_counts_table(summary, title, out))
    if summary.failures:
        out.print("Failures by reason:")
        for reason, n in summary.failures.most_common():
            out.print(f"  {n:>6}  {escape(reason)}")
    for t in summary.workspaces.values():
        for flag in t.flags:
            out.print(f"[yellow]{escape(t.name)}: {escape(flag)}[/yellow]")
    print_rejected(summary)
    out.print(escape(next_step(summary, now)))


def print_rejected(summary: Summary) -> None:
    """One line per report rejected as a whole, on stderr (shown even with ``-q``), never
    wrapped: a cron mail or a grep gets the report name and the server's message whole."""
    for r in summary.rejected:
        streams.write(sys.stderr, f"backfill: error: {r.sentence()}\n")


def print_status(summary: Summary, manifest: Any, out: Console | None = None) -> None:
    out = out or console()
    out.print(_counts_table(summary, f"Manifest {escape(str(manifest))}", out))
    now = datetime.now(UTC)
    if summary.at_risk:
        out.print("At risk (not fetched yet, closest to expiry first):")
        for r in summary.at_risk[:20]:
            out.print(escape(f"  {time_left(r.expires_at, now):>10} left  {r.workspace}  "
                             f"{r.filename}  {r.status}"))
            if r.reason:  # on a line of its own: a server's message is often long
                out.print(escape(f"{'':>14}{r.reason}"))
        if len(summary.at_risk) > 20:
            out.print(_sym(out, f"  … and {len(summary.at_risk) - 20} more"))


GLYPHS = {
    "completed": ("●", "green"), "missing": ("○", "yellow"), "expired": ("×", "grey50"),
    "pending": ("◌", "cyan"), "failed": ("✗", "red"),
}


def print_grid(records: list[Record], workspaces: Any, now: datetime,
               out: Console | None = None, max_days: int = 31) -> None:
    """(workspace, report) × date matrix, one coloured symbol per file, with a legend;
    folded into blocks of whole weeks so that each block fits the console's width."""
    out = out or console()
    if not records:
        out.print("The manifest is empty: nothing has run yet.")
        return
    days = sorted({r.date for r in records})[-max_days:]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in records:
        cells.setdefault((r.workspace, r.report), {})[r.date] = r.status.value
    labels = {key: _sym(out, _label(*key)) for key in cells}
    label_width = max(len("workspace / report"), *(len(v) for v in labels.values()))
    per_block = _days_per_block(out.width, label_width, len(days))
    out.print("Files by generation date", style="bold" if out.is_terminal else "")
    for start in range(0, len(days), per_block):
        block = days[start:start + per_block]
        table = Table(box=None, padding=(0, 0), show_edge=False, title_justify="left",
                      title=_sym(out, _block_title(block)) if len(days) > per_block else None)
        table.add_column("workspace / report", no_wrap=True, width=label_width)
        for d in block:
            table.add_column(d[8:10], justify="center", width=3)
        for key, row in sorted(cells.items()):
            glyphs = []
            for d in block:
                sym, style = GLYPHS.get(row.get(d) or "", ("·", "grey30"))
                glyphs.append(f"[{style}]{_sym(out, sym)}[/{style}]")
            table.add_row(escape(labels[key]), *glyphs)
        out.print(table)
    legend = "  ".join(f"[{style}]{sym}[/{style}] {name}" for name, (sym, style)
                       in GLYPHS.items()) + "  [grey30]·[/grey30] not in manifest"
    out.print(_sym(out, f"dates {days[0]} … {days[-1]}"))
    out.print(_sym(out, legend))


GRID_LABEL_MAX = 32


def _label(workspace: str, report: str) -> str:
    text = f"{workspace} / {report}"
    return text if len(text) <= GRID_LABEL_MAX else text[:GRID_LABEL_MAX - 1] + "…"


def _days_per_block(width: int, label_width: int, n_days: int) -> int:
    """All days when they fit, else as many whole weeks as fit (at least one)."""
    fit = max(1, (width - label_width) // 3)
    if n_days <= fit:
        return n_days
    return max(7, fit // 7 * 7)


def _block_title(block: list[str]) -> str:
    first, last = date.fromisoformat(block[0]), date.fromisoformat(block[-1])
    return f"{first:%d %b} … {last:%d %b %Y}"
