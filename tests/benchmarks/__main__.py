"""``make bench``: run the benchmarks, print one table, write ``bench-output/bench.json``.

    python -m tests.benchmarks                      everything (about 15 minutes)
    python -m tests.benchmarks --quick              smaller sizes, one run each (~4 minutes)
    python -m tests.benchmarks --only rtt50-c64,cpu-c64 --clients moe-backfill,curl
    python -m tests.benchmarks --only engine        the transfer scenarios (bench_transfer)
    python -m tests.benchmarks --only plan,manifest the other modules, by name
    python -m tests.benchmarks --list               what can be selected

Every ``bench_*.py`` module next to this file is run through its ``main()`` (modules that
are not there are skipped); ``bench_transfer`` holds the client-against-client scenarios
and the others each contribute a row. The targets of issue 18 are checked at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import bench_transfer as transfer
from . import harness as h

HERE = Path(__file__).resolve().parent
# Arguments of the known modules' main() in --quick mode (a full run uses their defaults).
QUICK_ARGS: dict[str, tuple[Any, ...]] = {
    "plan": (100, 37, 90),
    "manifest": (200_000, 20_000),
    "simulator": (2.0, 32, 2),
    "storage": (500, 50),
    "soak": (20, 25),
}
ORDER = ("plan", "manifest", "storage", "simulator", "soak")


def modules() -> list[str]:
    """Names of the bench_*.py modules here other than bench_transfer, in a stable order."""
    found = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    found = [m for m in found if m != "transfer"]
    return sorted(found, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m))


def run_module(name: str, quick: bool) -> dict[str, Any]:
    mod = importlib.import_module(f"{__package__}.bench_{name}")
    main: Callable[..., dict[str, Any]] = mod.main
    if "quick" in inspect.signature(main).parameters:
        return main(quick=quick)
    if quick and name in QUICK_ARGS:
        return main(*QUICK_ARGS[name])
    return main()


# ------------------------------------------------------------------------------ rows


def module_rows(name: str, f: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows for the figures of one of the other modules."""
    row = {"server": "—", "client": "", "files": None, "files_per_s": None, "mb_per_s": None,
           "cpu_s_per_1000": None, "peak_rss_mib": None, "pct_ideal": None, "note": ""}
    if name == "plan":
        return [{**row, "scenario": f"plan {f['tasks']:,} tasks", "client": "planner",
                 "files": f["tasks"], "files_per_s": f["tasks_per_s"],
                 "cpu_s_per_1000": round(f["tasks_s"] / f["tasks"] * 1000, 4),
                 "peak_rss_mib": f["peak_rss_mib"],
                 "note": f"tasks() {f['tasks_s']} s (target ≤ 1 s), summarize "
                         f"{f['summarize_s']} s"}]
    if name == "manifest":
        return [{**row, "scenario": f"manifest load {f['lines']:,} lines",
                 "client": "load_manifest", "files": f["keys"],
                 "files_per_s": f["load_lines_per_s"], "peak_rss_mib": f["peak_rss_mib"],
                 "note": f"load {f['load_s']} s (target ≤ 2 s); writer "
                         f"{f['writer_records_per_s']:,} records/s"}]
    if name == "storage":
        return [{**row, "scenario": f"storage {f['small_files']:,} × 10 KiB",
                 "client": "Storage.save", "files": f["small_files"],
                 "files_per_s": f["one_chunk_files_per_s"],
                 "cpu_s_per_1000": round(f["one_chunk_cpu_us_per_file"] / 1000, 3),
                 "note": "32 tasks, fsync + rename + dir fsync"},
                {**row, "scenario": f"storage {f['large_mib']} MiB", "client": "Storage.save",
                 "files": 1, "mb_per_s": round(f["large_mib_per_s"] * 1.048576, 1),
                 "note": f"RSS growth {f['large_rss_growth_mib']} MiB"}]
    if name == "simulator":
        return [{**row, "scenario": "ceiling (demo files)", "server": "simulator",
                 "client": "raw keep-alive", "files_per_s": f["responses_per_s"],
                 "mb_per_s": f["mb_per_s"],
                 "note": f"{f['connections']} connections, server CPU "
                         f"{f['server_cpu_share']:.0%}"}]
    if name == "soak":
        return [{**row, "scenario": f"soak {f['files']:,} files, faults, {f['kills']} kills",
                 "server": "simulator", "client": "moe-backfill (CLI)", "files": f["files"],
                 "files_per_s": f["files_per_s"],
                 "note": f"{f['lost']} lost, {f['torn']} torn, {f['runs']} runs"}]
    return [{**row, "scenario": name, "note": "see bench.json"}]


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


COLUMNS = (("scenario", 34, "<"), ("server", 24, "<"), ("client", 18, "<"),
           ("files", 9, ">"), ("wall s", 7, ">"), ("files/s", 8, ">"), ("MB/s", 7, ">"),
           ("CPU s/1k", 8, ">"), ("peak RSS MiB", 12, ">"), ("% ideal", 7, ">"))


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["  ".join(f"{name:{align}{width}}" for name, width, align in COLUMNS) + "  note"]
    lines.append("-" * (len(lines[0]) + 20))
    for r in rows:
        cells = [r["scenario"], r["server"], r["client"], _num(r.get("files"), ",d"),
                 _num(r.get("wall_s"), ".2f"), _num(r.get("files_per_s"), ",.0f"),
                 _num(r.get("mb_per_s"), ",.1f"),
                 _num(r.get("cpu_s_per_1000"), ".3f"), _num(r.get("peak_rss_mib"), ",.0f"),
                 _num(r.get("pct_ideal"), ".1f")]
        line = "  ".join(f"{str(c)[:w]:{a}{w}}" for c, (_, w, a) in zip(cells, COLUMNS,
                                                                        strict=True))
        lines.append(line + "  " + _note(r))
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown, the way the README shows it."""
    head = ("| scenario | server | client | wall s | files/s | MB/s | CPU s / 1,000 files "
            "| peak RSS MiB | % ideal | note |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cells = [r["scenario"], r["server"], r["client"], _num(r.get("wall_s"), ".2f"),
                 _num(r.get("files_per_s"), ",.0f"), _num(r.get("mb_per_s"), ",.1f"),
                 _num(r.get("cpu_s_per_1000"), ".3f"), _num(r.get("peak_rss_mib"), ",.0f"),
                 _num(r.get("pct_ideal"), ".1f"), _note(r)]
        lines.append("| " + " | ".join(c if c != "—" else "" for c in cells) + " |")
    return "\n".join(lines)


def _note(r: dict[str, Any]) -> str:
    parts = []
    if r.get("note"):
        parts.append(r["note"])
    if r.get("rss_growth_mib") is not None and r["scenario"] in ("huge", "resume-1m"):
        parts.append(f"RSS growth {r['rss_growth_mib']:.0f} MiB")
    if r.get("server_cpu_share") is not None:
        parts.append(f"server CPU {r['server_cpu_share']:.0%}")
    if r.get("delay_cpu_share") is not None:
        parts.append(f"delay helper CPU {r['delay_cpu_share']:.0%}")
    if r.get("startup_cpu_s") is not None:
        parts.append(f"start-up CPU {r['startup_cpu_s']:.2f} s (in CPU s/1k)")
    if r.get("pct_server_bound") is not None:
        parts.append(f"{r['pct_server_bound']:.1f} % of the server bound "
                     f"({r['server_bound_files_per_s']:,.0f})")
    return "; ".join(parts)


# ------------------------------------------------------------------------------ targets


def _row(rows: list[dict[str, Any]], scenario: str, client: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["scenario"] == scenario and r["client"] == client), None)


def targets(rows: list[dict[str, Any]], mods: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 18's targets against what was measured; skipped when the figures are missing
    (scenario not selected, peer not installed). Wall time and CPU are whole-process."""
    out: list[dict[str, Any]] = []

    def add(name: str, ok: bool, measured: str) -> None:
        out.append({"target": name, "met": ok, "measured": measured})

    me = "moe-backfill"
    for sc in ("rtt50-c64", "rtt50-c64-tls"):
        r = _row(rows, sc, me)
        if not r:
            continue
        bound = (f"; raw keep-alive clients get {r['server_bound_files_per_s']:,.0f} "
                 f"({100 * r['server_bound_files_per_s'] / r['ideal_files_per_s']:.1f} %)"
                 if r.get("server_bound_files_per_s") else "")
        add(f"{sc}: ≥ 95 % of concurrency ÷ RTT", r["pct_ideal"] >= 95,
            f"{r['files_per_s']:,.0f} files/s = {r['pct_ideal']} % of "
            f"{r['ideal_files_per_s']:,.0f}{bound}")
        for peer in ("curl", "aria2c"):
            p = _row(rows, sc, peer)
            if p:
                add(f"{sc}: wall ≤ {peer}'s", r["wall_s"] <= p["wall_s"],
                    f"{r['wall_s']:.2f} s vs {p['wall_s']:.2f} s")
    for sc in ("rtt50-c64", "rtt50-c64-tls", "cpu-c64"):
        r, p = _row(rows, sc, me), _row(rows, sc, "aria2c")
        if r and p:
            add(f"{sc}: CPU per 1,000 files ≤ aria2c's", r["cpu_s_per_1000"] <= p[
                "cpu_s_per_1000"], f"{r['cpu_s_per_1000']:.3f} s vs {p['cpu_s_per_1000']:.3f} s "
                f"(whole process, start-up included)")
    p = _row(rows, "cpu-c64", "curl")
    for client, how in ((me, "one process"), ("moe-backfill-2p", "two processes")):
        r = _row(rows, "cpu-c64", client)
        if r and p:
            add(f"cpu-c64 (no latency): files/s ≥ curl's, {how}",
                r["files_per_s"] >= p["files_per_s"],
                f"{r['files_per_s']:,.0f} vs {p['files_per_s']:,.0f} files/s")
    r, p = _row(rows, "large-c16", me), _row(rows, "large-c16", "curl")
    if r and p:
        add("100 × 5 MiB, c16: ≥ 0.8 × curl's MB/s", r["mb_per_s"] >= 0.8 * p["mb_per_s"],
            f"{r['mb_per_s']:,.0f} vs {p['mb_per_s']:,.0f} MB/s "
            f"({r['mb_per_s'] / p['mb_per_s']:.2f} ×)")
    r = _row(rows, "huge", me)
    if r:
        grown = r["rss_growth_mib"] * 1.048576
        add("one big file: peak RSS grows by < 50 MB", grown < 50,
            f"{grown:.0f} MB ({r['mb_per_s']:,.0f} MB/s)")
    if "plan" in mods:
        f = mods["plan"]
        add(f"planning {f['tasks']:,} tasks ≤ 1 s", f["tasks_s"] <= 1, f"{f['tasks_s']} s")
    if "manifest" in mods:
        f = mods["manifest"]
        add(f"loading a {f['keys']:,}-record manifest ≤ 2 s", f["load_s"] <= 2,
            f"{f['load_s']} s, peak RSS {f['peak_rss_mib']} MiB")
    r = _row(rows, "resume-1m", me)
    if r:
        mb = r["peak_rss_mib"] * 1.048576
        add(f"resumed {r['files']:,}-file run: bookkeeping peak RSS ≤ 400 MB", mb <= 400,
            f"{mb:.0f} MB in {r['runs'][0]['wall_s']:.1f} s")
    for server in ("simulator", "nginx"):
        ceil = next((c for c in rows if c["scenario"] == "ceiling" and c["server"] == server),
                    None)
        served = [c for c in rows if c["server"] == server
                  and not c["scenario"].startswith("ceiling") and c.get("files_per_s")]
        if ceil and served:
            best = max(served, key=lambda c: c["files_per_s"])
            add(f"{server} faster than every client it served",
                ceil["files_per_s"] > best["files_per_s"],
                f"ceiling {ceil['files_per_s']:,.0f} files/s vs best client "
                f"{best['files_per_s']:,.0f} ({best['client']}, {best['scenario']})")
    r = _row(rows, "fetch-100k", me)
    if r:
        add(f"peak memory for {r['files']:,} planned files", True,
            f"{r['peak_rss_mib']:.0f} MiB peak RSS, {r['files_per_s']:,.0f} files/s")
    return out


# ------------------------------------------------------------------------------ main


def _set_nice(value: int) -> int:
    """Set this process's niceness (inherited by every server and client); the one in
    force afterwards (unchanged where not permitted)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, value)
    return os.getpriority(os.PRIO_PROCESS, 0)


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in transfer.scenarios(False)]
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    p.add_argument("--only", default="", help="comma-separated scenarios, modules or 'engine'")
    p.add_argument("--clients", default="",
                   help=f"comma-separated of {', '.join(transfer.CLIENTS)}")
    p.add_argument("--repeats", type=int, help="runs per client (default 3, --quick 1)")
    p.add_argument("--out", type=Path, default=h.OUTPUT / "bench.json")
    p.add_argument("--profile", type=Path, help="py-spy profiles of moe-backfill runs here")
    p.add_argument("--list", action="store_true", help="list what --only can select")
    p.add_argument("--engine-src", type=Path,
                   help="run moe-backfill from this checkout (e.g. a git worktree of an "
                        "older commit) for a before/after comparison")
    p.add_argument("--nice", type=int, default=-10,
                   help="niceness of the bench and everything it starts (default -10, "
                        "as root: other work on a shared machine takes less of the "
                        "clients' and servers' CPU; every client gets the same)")
    args = p.parse_args(argv)
    nice = _set_nice(args.nice)
    # SIGTERM unwinds like Ctrl-C, so servers, the delay helper and the network namespace
    # are cleaned up (a background job ignores SIGINT).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.engine_src:
        os.environ["BENCH_ENGINE_SRC"] = str(args.engine_src.resolve())
    mods = modules()
    if args.list:
        print("transfer scenarios (--only engine: all of them):", ", ".join(names))
        print("modules:", ", ".join(mods))
        return 0
    only = {s for s in args.only.split(",") if s}
    unknown = only - set(names) - set(mods) - {"engine", "transfer"}
    if unknown:
        p.error(f"unknown --only {', '.join(sorted(unknown))} (see --list)")
    clients = [c for c in args.clients.split(",") if c] or None
    if clients and set(clients) - set(transfer.CLIENTS):
        p.error(f"--clients: one of {', '.join(transfer.CLIENTS)}")
    chosen_scenarios = names if not only or only & {"engine", "transfer"} else [
        n for n in names if n in only]
    chosen_mods = mods if not only else [m for m in mods if m in only]

    started = time.time()
    load = os.getloadavg()
    print(f"moe-backfill benchmarks{' (quick)' if args.quick else ''}: "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at start, nice {nice}",
          flush=True)
    for tool, hint in (("curl", "curl"), ("aria2c", "aria2c"), ("nginx", "nginx")):
        found = h.nginx_binary() if tool == "nginx" else (
            h.curl_binary() if tool == "curl" else h.aria2c_binary())
        if found is None:
            print(f"  {tool} not installed: {transfer.INSTALL[hint]} (its rows are skipped)")
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    if chosen_scenarios:
        try:
            res = transfer.main(args.quick, chosen_scenarios, args.repeats, clients,
                                args.profile, log=lambda m: print(m, flush=True))
            rows += res["rows"]
            results["environment"] = res["environment"]
        except Exception as exc:  # keep the other figures
            traceback.print_exc()
            failures["transfer"] = f"{type(exc).__name__}: {exc}"
    mod_figures: dict[str, dict[str, Any]] = {}
    for name in chosen_mods:
        print(f"bench_{name}:", flush=True)
        try:
            mod_figures[name] = run_module(name, args.quick)
        except Exception as exc:
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}"
            continue
        rows += module_rows(name, mod_figures[name])

    checked = targets(rows, mod_figures)
    print()
    print(table(rows))
    if checked:
        print()
        for t in checked:
            print(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}")
    for name, why in failures.items():
        print(f"  [FAILED] {name}: {why}")
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "quick": args.quick,
        "argv": sys.argv[1:] if argv is None else argv,
        "environment": results.get("environment") or transfer.environment(),
        "host": platform.node(),
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
        "nice": nice,
        "engine_src": os.environ.get("BENCH_ENGINE_SRC"),
        "rows": rows,
        "modules": mod_figures,
        "targets": checked,
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(f"\nfigures written to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
