"""Progress figures: a recent-rate ETA, 'paused' and 'waiting for retries', one
denominator. A hand-driven clock: no sleeping."""

from __future__ import annotations

import io

from backfill.cli.progress import Progress
from backfill.events import FileFinished, HostPaused, HostResumed, RetryScheduled, RunStarted
from backfill.journal import Status


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Progress, Clock]:
    clock = Clock()
    progress = Progress(stream=io.StringIO(), interval_s=1e9, clock=clock)
    progress(RunStarted({"w": 100}))
    return progress, clock


def finish(p: Progress, name: str, status: Status = Status.COMPLETED,
           fetched: bool = True) -> None:
    p(FileFinished("w", name, status, 1024, 1, None, fetched))


def test_eta_follows_the_recent_rate_not_the_whole_run() -> None:
    p, clock = make()
    for i in range(10):  # 10 files in the first 10 s: 1 file/s
        finish(p, f"a{i}")
        clock.now += 1
    clock.now += 600  # a slow patch: nothing for 10 minutes
    for i in range(20):  # then 2 files/s
        finish(p, f"b{i}")
        clock.now += 0.5
    fps, _, eta = p.rates()
    assert 1.9 < fps < 2.1  # the whole-run average would be 30 / 620 s ≈ 0.05
    assert eta is not None and 30 < eta < 40  # 70 left at 2/s
    assert "ETA 0m3" in p.line()


def test_paused_host_says_paused_instead_of_a_growing_eta() -> None:
    p, clock = make()
    finish(p, "a")
    p(HostPaused("https://api-02.moengage.com:443", 5))
    clock.now += 5
    line = p.line()
    assert "· paused ·" in line and "ETA" not in line
    p(HostResumed("https://api-02.moengage.com:443", 5.0))
    assert "paused" not in p.line()


def test_waiting_for_retries_when_nothing_finishes_but_retries_are_due() -> None:
    p, clock = make()
    p(RetryScheduled("w", "a.zip", 1, "http 503", 30.0))
    p(RetryScheduled("w", "b.zip", 1, "http 503", 30.0))
    clock.now += 60
    line = p.line()
    assert "waiting for retries (2)" in line and "ETA 0m00s" not in line
    finish(p, "a.zip")
    assert "waiting for retries" not in p.line()


def test_one_denominator_counts_add_up_to_done() -> None:
    p, _ = make()
    finish(p, "a")
    finish(p, "b", Status.FAILED)
    finish(p, "old", Status.EXPIRED, fetched=False)  # recorded without a request
    line = p.line()
    assert line.startswith("2/100 files · completed 1 failed 1 ·")
    assert sum(p.statuses.values()) == p.done


def test_restore_terminal_without_a_live_panel_is_harmless() -> None:
    p, _ = make()
    p.restore_terminal()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_restore_terminal_shows_the_cursor_the_live_panel_hid() -> None:
    stream = Terminal()
    progress = Progress(stream=stream)
    assert progress.live_mode
    progress.__enter__()  # never left: as when a second Ctrl-C calls os._exit
    progress(RunStarted({"w": 1}))
    assert "\x1b[?25l" in stream.getvalue()
    progress.restore_terminal()
    text = stream.getvalue()
    assert text.rindex("\x1b[?25h") > text.rindex("\x1b[?25l")
    progress.__exit__(None, None, None)


def test_plain_lines_fit_80_columns_and_an_ascii_stream_gets_ascii() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    clock = Clock()
    p = Progress(stream=stream, interval_s=0.0, clock=clock)
    with p:
        p(RunStarted({"w": 3}))
        p(HostPaused("https://api-02.moengage.com:443", 5))
        p(HostPaused("https://api-101.moengage.com:443", 5))
        finish(p, "a")
    stream.flush()
    text = raw.getvalue().decode("ascii")  # '·' was written as '.', nothing raised
    assert "1/3 files . completed 1" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "\n  " in text  # a long line continues, indented
