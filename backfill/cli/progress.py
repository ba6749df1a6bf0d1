"""Live progress on stderr, fed by engine events.

On a terminal: a rich live panel (files done / total, per-status counts, files/s, MB/s,
ETA, retries, paused or throttled hosts, one line per workspace when there are few).
Otherwise: a plain log line every ``interval_s`` seconds and one at the end, which suits
cron mail and CI logs.

The counts share one denominator: the files this run fetches (``done/total``, and the
per-status counts add up to ``done``). The ETA comes from the rate over the last
:data:`RATE_WINDOW_S` seconds, not the whole run; while a host is paused it reads
"paused", and while nothing finishes but retries are scheduled, "waiting for retries".
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections import Counter, deque
from collections.abc import Callable
from types import TracebackType
from typing import IO

from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..events import (
    Event,
    FileFinished,
    HostPaused,
    HostResumed,
    RetryScheduled,
    RunStarted,
    Throttled,
    WorkspaceStopped,
)
from . import streams
from .render import WIDTH, can_encode, safe_stream

MAX_WORKSPACE_LINES = 8
RATE_WINDOW_S = 30.0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _duration(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """An event subscriber; use as a context manager around the run."""

    def __init__(self, *, enabled: bool = True, quiet: bool = False, stream: IO[str] | None = None,
                 interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = safe_stream(stream or sys.stderr)  # ASCII where '·' cannot be written
        self.enabled = enabled and not quiet
        self.live_mode = self.enabled and self.stream.isatty()
        self.interval_s = interval_s
        self.planned: dict[str, int] = {}
        self.done = 0
        self.bytes = 0
        self.retries = 0
        self.statuses: Counter[str] = Counter()
        self.per_ws: dict[str, Counter[str]] = {}
        self.ws_done: Counter[str] = Counter()
        self.paused: set[str] = set()
        self.throttled: dict[str, int] = {}
        self.notes: list[str] = []
        self.retrying: set[tuple[str, str]] = set()  # files waiting for a retry
        self._clock = clock
        self._recent: deque[tuple[float, int]] = deque()  # (when, bytes) of recent files
        self._t0 = clock()
        self._last_line = self._t0
        self._live: Live | None = None

    # -------------------------------------------------------------- context manager

    def __enter__(self) -> Progress:
        self._t0 = self._last_line = self._clock()
        if self.live_mode:
            self._live = Live(get_renderable=self.render,
                              console=streams.QuietConsole(file=self.stream),
                              refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(et, e, tb)
            self._live = None
        if self.enabled and not self.live_mode and self.done:
            self._line()

    def restore_terminal(self) -> None:
        """Show the cursor again (the live panel hides it): for an exit that skips
        ``__exit__``, such as a second Ctrl-C."""
        if self._live is not None:
            self._live.console.show_cursor(True)
            self._live.console.file.flush()

    # -------------------------------------------------------------- events

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.planned = dict(event.to_fetch)
        elif isinstance(event, FileFinished):
            self.retrying.discard((event.workspace, event.filename))
            if event.fetched:  # the files counted in RunStarted: one denominator
                self.statuses[event.status.value] += 1
                self.per_ws.setdefault(event.workspace, Counter())[event.status.value] += 1
                self.ws_done[event.workspace] += 1
                self.done += 1
                self.bytes += event.bytes
                self._recent.append((self._clock(), event.bytes))
        elif isinstance(event, RetryScheduled):
            self.retries += 1
            self.retrying.add((event.workspace, event.filename))
        elif isinstance(event, HostPaused):
            self.paused.add(event.host)
            self._note(f"{event.host} paused after {event.failures} failures in a row; probing")
        elif isinstance(event, HostResumed):
            self.paused.discard(event.host)
            self._note(f"{event.host} is back after {event.paused_s:.1f} s")
        elif isinstance(event, Throttled):
            self.throttled[event.workspace] = event.limit
        elif isinstance(event, WorkspaceStopped):
            self._note(f"workspace {event.workspace} {event.reason}")
        if self.enabled and not self.live_mode:
            now = self._clock()
            if now - self._last_line >= self.interval_s:
                self._last_line = now
                self._line()

    def _note(self, text: str) -> None:
        # Shown in the live panel; without one, the event log writes these as warnings.
        self.notes = [*self.notes[-3:], text]

    # -------------------------------------------------------------- figures

    @property
    def total(self) -> int:
        return sum(self.planned.values())

    def rates(self) -> tuple[float, float, float | None]:
        """(files/s, bytes/s, eta seconds or None) over the last RATE_WINDOW_S seconds."""
        now = self._clock()
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        # from the oldest file still in the window: a burst, then silence, decays
        span = max(now - self._recent[0][0], 1.0) if self._recent else 1.0
        fps = len(self._recent) / span
        bps = sum(b for _, b in self._recent) / span
        left = self.total - self.done
        return fps, bps, (left / fps if fps > 0 and left > 0 else None)

    def _counts(self, c: Counter[str]) -> str:
        return " ".join(f"{k} {c[k]}" for k in
                        ("completed", "missing", "expired", "pending", "failed") if c[k])

    def state(self, fps: float, eta: float | None) -> str | None:
        """What the ETA slot says: 'ETA …', 'paused', 'waiting for retries', or None."""
        if self.paused:
            return "paused"
        if fps == 0 and self.retrying:
            return f"waiting for retries ({len(self.retrying)})"
        return f"ETA {_duration(eta)}" if eta is not None else None

    def line(self) -> str:
        fps, bps, eta = self.rates()
        parts = [f"{self.done}/{self.total} files", self._counts(self.statuses) or "-",
                 f"{fps:.1f} files/s", f"{_size(bps)}/s"]
        if (state := self.state(fps, eta)) is not None:
            parts.append(state)
        if self.retries:
            parts.append(f"retries {self.retries}")
        if self.paused:
            parts.append("paused: " + ", ".join(sorted(self.paused)))
        if self.throttled:
            parts.append("throttled: " + ", ".join(f"{w}→{n}" for w, n in
                                                   sorted(self.throttled.items())))
        return " · ".join(parts)

    def _line(self) -> None:
        # cron mail and CI logs: at most 80 columns, continuation lines indented
        text = textwrap.fill(f"backfill: {self.line()}", WIDTH, subsequent_indent="  ",
                             break_on_hyphens=False)
        if not streams.write(self.stream, text + "\n"):
            self.enabled = False  # stderr is gone: the run goes on without progress

    def render(self) -> RenderableType:
        total = max(self.total, 1)
        width = 30
        filled = int(width * min(self.done / total, 1.0))
        mark = "=" if not can_encode(self.stream) else "━"
        bar = Text(mark * filled, style="green") + Text(mark * (width - filled), style="grey37")
        head = Text.assemble(bar, "  ", self.line())
        parts: list[RenderableType] = [head]
        if 0 < len(self.planned) <= MAX_WORKSPACE_LINES:
            table = Table.grid(padding=(0, 2))
            for name, fetch in self.planned.items():
                extra = f"throttled to {self.throttled[name]}" if name in self.throttled else ""
                table.add_row(escape(name), f"{self.ws_done[name]}/{fetch}",
                              self._counts(self.per_ws.get(name, Counter())), extra)
            parts.append(table)
        parts.extend(Text(n, style="yellow") for n in self.notes)
        return Group(*parts)
