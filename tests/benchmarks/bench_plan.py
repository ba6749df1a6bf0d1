"""How fast, and in how little memory, the planner streams a million tasks.

300 workspaces × 37 daily reports × 90 days = 999,000 tasks, with ``today`` pinned to the
last day so the window holds 7 fetchable, 1 boundary and 82 expired days. Three passes:

1. timed, nothing else running: tasks per second and peak RSS (``ru_maxrss``);
2. under tracemalloc: the peak of Python allocations while streaming — this is what
   shows that tasks are not kept (a list of 1M tasks would be hundreds of MB);
3. ``planner.summarize`` over the same windows (what ``backfill plan`` runs).

Run: ``python -m tests.benchmarks.bench_plan [workspaces] [reports] [days]``.
"""

from __future__ import annotations

import gc
import resource
import sys
import time
import tracemalloc
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from backfill import planner
from backfill.config import DateSpec, parse_config

TODAY = date(2026, 11, 27)


def build_config(workspaces: int, reports: int) -> Any:
    """A config like an agency's: many workspaces with the same daily report names."""
    names = [f"Campaign report {i:02d}" for i in range(reports)]
    raw = {
        "run": {"start": "-89d", "end": "today"},
        "defaults": {"api_key": "${UNUSED}", "reports": names},
        "workspace": [{"name": f"ws-{i:04d}", "app_id": f"APP{i:04d}",
                       "data_center": f"0{1 + i % 6}"} for i in range(workspaces)],
    }
    return parse_config(raw, Path("bench.toml"), secrets=False)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(workspaces: int = 300, reports: int = 37, days: int = 90) -> dict[str, Any]:
    """Run the benchmark; print and return the figures."""
    t0 = time.perf_counter()
    config = build_config(workspaces, reports)
    config_s = time.perf_counter() - t0
    today = {ws.name: TODAY for ws in config.workspaces}
    start = DateSpec(offset_days=-(days - 1))
    wins = planner.windows(config, today, start=start, end=DateSpec(offset_days=0))
    gc.collect()
    rss_before = _rss_mib()

    # 1. Timed streaming (parse_config above is not included): count by kind, keep nothing.
    kinds: Counter[str] = Counter()
    t0 = time.perf_counter()
    n = 0
    for task in planner.tasks(wins):
        kinds[task.kind.value] += 1
        n += 1
    tasks_s = time.perf_counter() - t0
    rss_after = _rss_mib()

    # 2. The same stream under tracemalloc: peak live Python memory while streaming.
    tracemalloc.start()
    for _ in planner.tasks(wins):
        pass
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # 3. What `backfill plan` computes.
    t0 = time.perf_counter()
    plans = planner.summarize(wins)
    summarize_s = time.perf_counter() - t0
    summarized = sum(rp.dates for wp in plans for rp in wp.reports)
    assert summarized == n, (summarized, n)

    figures = {
        "tasks": n,
        "workspaces": workspaces,
        "reports": reports,
        "days": days,
        "kinds": dict(kinds),
        "config_s": round(config_s, 3),
        "tasks_s": round(tasks_s, 3),
        "tasks_per_s": round(n / tasks_s),
        "summarize_s": round(summarize_s, 3),
        "peak_rss_mib": round(max(rss_after, _rss_mib()), 1),
        "rss_growth_while_streaming_mib": round(rss_after - rss_before, 1),
        "tracemalloc_peak_kib": round(traced_peak / 1024, 1),
    }
    print(f"planner: {n:,} tasks ({workspaces} workspaces × {reports} reports × {days} days)")
    print(f"  kinds: {dict(kinds)}")
    print(f"  config: {config_s:.2f} s; tasks(): {tasks_s:.2f} s "
          f"({figures['tasks_per_s']:,} tasks/s); summarize(): {summarize_s:.2f} s")
    print(f"  peak RSS {figures['peak_rss_mib']} MiB (+{figures['rss_growth_while_streaming_mib']}"
          f" MiB while streaming); tracemalloc peak while streaming "
          f"{figures['tracemalloc_peak_kib']} KiB")
    return figures


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
