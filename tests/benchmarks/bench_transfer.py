"""Downloads end to end: moe-backfill against curl -Z, aria2c and a sequential urllib loop.

Every client gets the same files, the same signed headers and the same concurrency from
the same server (see ``harness.py`` for the servers and how each client is measured).

=============  =====================================================  =========  ====
scenario       files                                                  server     conc
=============  =====================================================  =========  ====
rtt50-c64      5,000 × 10 KiB (25 workspaces × 25 reports × 8 days),  nginx      64
               every packet delayed 25 ms each way in the kernel      +50 ms RTT
rtt50-c64-tls  the same over https (a CA made by the bench)           nginx TLS  64
rtt50-c16      the same as rtt50-c64 at concurrency 16                nginx      16
sim-rtt50-c64  moe-backfill only: 50 ms added by the simulator, which  simulator  64
               checks every signature (the tool's own behaviour)
cpu-c64        the same 5,000 files, no added latency: CPU-bound      nginx      64
large-c16      100 × 5 MiB                                            nginx      16
huge           1 × 300 MiB: peak RSS growth                           nginx      1
fetch-100k     100,000 × 10 KiB (125 × 100 × 8), one body served      nginx      64
               for every path: memory and CPU per file at scale
resume-1m      999,000 planned files (300 × 37 × 90 days), all        —          64
               already in the manifest: the bookkeeping of a resume
ceiling        server capacity: raw keep-alive clients, 10 KiB files  both       64
=============  =====================================================  =========  ====

The latency of the nginx scenarios is in the network path (``netns.py``): servers and
clients run in a network namespace the bench makes, whose loopback holds every TCP packet
25 ms (NFQUEUE + ``nfq_delay.c``), so every client pays exactly the same round trip. The
ideal bound of a latency scenario is concurrency ÷ RTT. Each client runs ``repeats``
times, interleaved with the others (so drift hits them alike); figures are medians. Wall
time and CPU are the whole process's, spawn to exit, start-up included. The page cache is
flushed (``sync``) before every run, since peers do not fsync and their dirty pages would
otherwise be written during the next client's run. Each run writes into a new directory
under a top directory (``harness.runs_dir``), and its output is set aside, not deleted,
until the bench ends (``harness.discard_run``): on this journal-less ext4 a new file next
to thousands just deleted cost 0.3-0.75 ms of kernel CPU to create.

Run: ``python -m tests.benchmarks.bench_transfer [--quick] [--only SCENARIO,...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from backfill.journal import Record, Status
from backfill.naming import report_filename

from . import harness as h
from . import netns

CLIENTS = ("moe-backfill", "curl", "aria2c", "urllib", "moe-backfill-2p")
# moe-backfill-2p: two moe-backfill processes side by side, each with half of the
# workspaces, its own output directory and manifest and half of the concurrency — what
# two shards of one run do, to use the second core (cpu-c64 only).
INSTALL = {
    "curl": "apt-get install curl",
    "aria2c": "apt-get install aria2",
    "nginx": "apt-get install nginx-light",
}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    data: h.Dataset
    concurrency: int
    server: str  # "simulator", "nginx" (falls back to the simulator), "nginx-same", "none"
    clients: tuple[str, ...]
    latency_s: float = 0.0  # round trip: nginx → in the kernel path, simulator → server-side
    tls: bool = False
    urllib_files: int | None = None  # the sequential loop gets only the first N files
    per_workspace: int | None = None
    note: str = ""

    @property
    def kernel_delay(self) -> bool:
        """Latency added to the packets (netns.py), not by the server."""
        return self.server == "nginx" and self.latency_s > 0

    @property
    def ideal(self) -> float | None:
        return self.concurrency / self.latency_s if self.latency_s else None


def scenarios(quick: bool) -> list[Scenario]:
    small = h.Dataset(8, 16, 8, 10 * 1024) if quick else h.Dataset(25, 25, 8, 10 * 1024)
    large = h.Dataset(5, 1, 4, 5 * 2**20) if quick else h.Dataset(5, 5, 4, 5 * 2**20)
    huge = h.Dataset(1, 1, 1, (100 if quick else 300) * 2**20)
    many = h.Dataset(25, 100, 8, 10 * 1024) if quick else h.Dataset(125, 100, 8, 10 * 1024)
    resume = h.Dataset(100, 37, 90, 10 * 1024) if quick else h.Dataset(300, 37, 90, 10 * 1024)
    every = CLIENTS
    peers = CLIENTS[:4]
    return [
        Scenario("rtt50-c64", small, 64, "nginx", peers, 0.05, urllib_files=100),
        Scenario("rtt50-c64-tls", small, 64, "nginx", peers, 0.05, urllib_files=50, tls=True),
        Scenario("rtt50-c16", small, 16, "nginx", CLIENTS[:3], 0.05),
        # Server-side latency from the simulator, which checks every request's signature:
        # the tool's own behaviour under latency, not a comparison (peers would pay the
        # simulator's Python turnaround, not the network's).
        Scenario("sim-rtt50-c64", small, 64, "simulator", CLIENTS[:1], 0.05,
                 note="latency server-side, every signature checked"),
        Scenario("cpu-c64", small, 64, "nginx", every),  # every: -2p included
        Scenario("large-c16", large, 16, "nginx", CLIENTS[:3]),
        Scenario("huge", huge, 1, "nginx", CLIENTS[:3]),
        Scenario("fetch-100k", many, 64, "nginx-same", CLIENTS[:1], per_workspace=8),
        Scenario("resume-1m", resume, 64, "none", CLIENTS[:1], per_workspace=4),
        Scenario("ceiling", small, 64, "both", ()),
    ]


def available(client: str) -> bool:
    if client == "curl":
        return h.curl_binary() is not None
    if client == "aria2c":
        return h.aria2c_binary() is not None
    return True


# ------------------------------------------------------------------------------ one run


def _engine_spec(sc: Scenario, base_url: str, work: Path, out: Path, ca_file: Path | None,
                 shard: tuple[int, int] = (0, 1)) -> Path:
    """The engine_run spec of one process; shard (k, n): the k-th of n processes, with
    every n-th workspace, its own output directory and 1/n of the concurrency."""
    k, n = shard
    spec = work / f"engine-{sc.name}-{k}.json"
    conc = sc.concurrency // n
    doc = sc.data.config_doc(base_url, out / str(k) if n > 1 else out, conc,
                             sc.per_workspace and min(sc.per_workspace, conc))
    doc["workspace"] = doc["workspace"][k::n]
    Path(doc["run"]["output_dir"]).mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"config": doc, "config_path": str(work / "bench.toml"),
                                "today": h.TODAY.isoformat(),
                                "ca_file": str(ca_file) if ca_file else None}))
    return spec


def _engine_env() -> dict[str, str]:
    env = dict(os.environ)
    if os.environ.get("BENCH_ENGINE_SRC"):
        env["PYTHONPATH"] = os.environ["BENCH_ENGINE_SRC"]
    return env


def _engine_result(use: h.Usage) -> dict[str, Any]:
    if use.returncode != 0:
        raise RuntimeError(f"engine run failed ({use.returncode}): {use.stderr[-2000:]}")
    res: dict[str, Any] = json.loads(next(line for line in reversed(use.stdout.splitlines())
                                          if line.startswith("{")))
    res["process"] = {"wall_s": use.wall_s, "cpu_s": use.cpu_s, "user_s": use.user_s,
                      "sys_s": use.sys_s, "peak_rss_mib": use.peak_rss_mib}
    return res


def _engine_2p(sc: Scenario, base_url: str, work: Path, out: Path) -> dict[str, Any]:
    """Two engine processes side by side (moe-backfill-2p), summed as one client."""
    script = str(Path(__file__).with_name("engine_run.py"))
    cmds = [[sys.executable, script, str(_engine_spec(sc, base_url, work, out, None, (k, 2)))]
            for k in range(2)]
    results = [_engine_result(u) for u in h.run_measured_all(cmds, cwd=h.ROOT,
                                                              env=_engine_env())]
    total = {"wall_s": max(r["process"]["wall_s"] for r in results)}
    for key in ("cpu_s", "user_s", "sys_s", "peak_rss_mib"):
        total[key] = sum(r["process"][key] for r in results)
    merged: dict[str, Any] = {"process": total, "wall_s": max(r["wall_s"] for r in results),
                              "totals": {"completed": sum(r["totals"]["completed"]
                                                          for r in results)}}
    for key in ("cpu_s", "user_s", "sys_s", "peak_rss_mib", "rss_before_mib", "bytes",
                "startup_cpu_s", "requests", "retries"):
        merged[key] = sum(r[key] for r in results)
    return merged


def _engine(sc: Scenario, base_url: str, work: Path, out: Path,
            profile: str | None, ca_file: Path | None = None) -> dict[str, Any]:
    spec = _engine_spec(sc, base_url, work, out, ca_file)
    # As a script, so that BENCH_ENGINE_SRC (a checkout of another version, for a
    # before/after table) can supply the backfill package through PYTHONPATH.
    cmd = [sys.executable, str(Path(__file__).with_name("engine_run.py")), str(spec)]
    env = _engine_env()
    if ca_file is not None:  # OpenSSL's own variable: aiohttp's default context reads it
        env["SSL_CERT_FILE"] = str(ca_file)
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
        "py-spy")
    if profile and pyspy is None:
        print("  py-spy not installed (.venv/bin/pip install py-spy): not profiling")
    elif profile:  # .txt: collapsed stacks (py-spy's "raw"), else a flame graph
        fmt = "raw" if profile.endswith(".txt") else "flamegraph"
        extra = os.environ.get("BENCH_PYSPY_FLAGS", "").split()  # e.g. --gil, --idle
        cmd = [str(pyspy), "record", "-r", "200", *extra, "-o", profile, "-f", fmt, "--", *cmd]
    return _engine_result(h.run_measured(cmd, cwd=h.ROOT, env=env))


def run_client(sc: Scenario, client: str, server: h.Server | None, work: Path,
               *, profile: str | None = None,
               helper: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """One run of ``client``; returns the figures of that run. Wall time and CPU are the
    whole process's, spawn to exit (start-up included, as a user pays it)."""
    out = h.run_dir(f"run-{sc.name}-{client}")
    h.drop_tree(out)
    out.mkdir(parents=True)
    base, ca_file = _base_url(sc, server)
    os.sync()
    h.recycle_memory(sc.data.files * sc.data.size)
    server_cpu0 = h.process_cpu_s(server.pid) if server else 0.0
    helper_cpu0 = h.process_cpu_s(helper.pid) if helper else 0.0
    files = sc.data.files
    try:
        if client.startswith("moe-backfill"):
            res = (_engine_2p(sc, base, work, out) if client == "moe-backfill-2p"
                   else _engine(sc, base, work, out, profile, ca_file))
            expect = files if sc.server != "none" else 0
            done = res["totals"]["completed"] - (files if sc.server == "none" else 0)
            if sc.server != "none" and done != expect:
                raise RuntimeError(f"moe-backfill stored {done} of {expect} files: {res}")
            proc = res["process"]
            row = {"files": files, "wall_s": proc["wall_s"], "cpu_s": proc["cpu_s"],
                   "user_s": proc["user_s"], "sys_s": proc["sys_s"],
                   "run_wall_s": res["wall_s"], "run_cpu_s": res["cpu_s"],
                   "peak_rss_mib": res["peak_rss_mib"],
                   "rss_growth_mib": res["peak_rss_mib"] - res["rss_before_mib"],
                   "bytes": res["bytes"] if sc.server != "none" else 0,
                   "startup_cpu_s": res["startup_cpu_s"], "process": res["process"],
                   "requests": res["requests"], "retries": res["retries"]}
        else:
            reqs = h.requests_for(sc.data, base)
            if client == "urllib" and sc.urllib_files:
                reqs = reqs[: sc.urllib_files]
            listing = work / f"{client}-{sc.name}.list"
            env = None
            if ca_file is not None:  # curl's and OpenSSL's own variables
                env = {**os.environ, "CURL_CA_BUNDLE": str(ca_file),
                       "SSL_CERT_FILE": str(ca_file)}
            if client == "curl":
                h.write_curl_config(reqs, out, listing)
                cmd = h.curl_command(listing, sc.concurrency)
            elif client == "aria2c":
                h.write_aria2_input(reqs, listing)
                cmd = h.aria2c_command(listing, out, sc.concurrency, ca_file)
            else:
                h.write_urllib_input(reqs, listing)
                cmd = h.urllib_command(listing, out)
            use = h.run_measured(cmd, cwd=work, env=env)
            stored, nbytes = h.count_outputs(out, sc.data.size)
            if use.returncode != 0 or stored != len(reqs):
                raise RuntimeError(f"{client} stored {stored} of {len(reqs)} files "
                                   f"(exit {use.returncode}): {use.stderr[-1000:]}")
            row = {"files": len(reqs), "wall_s": use.wall_s, "cpu_s": use.cpu_s,
                   "user_s": use.user_s, "sys_s": use.sys_s,
                   "peak_rss_mib": use.peak_rss_mib, "bytes": nbytes}
    finally:
        h.discard_run(out, sc.data.files)
    if server is not None:
        row["server_cpu_share"] = (h.process_cpu_s(server.pid) - server_cpu0) / row["wall_s"]
    if helper is not None:
        row["delay_cpu_share"] = (h.process_cpu_s(helper.pid) - helper_cpu0) / row["wall_s"]
    return row


def _base_url(sc: Scenario, server: h.Server | None) -> tuple[str, Path | None]:
    """The URL the clients are given, and the CA file to trust (TLS scenarios)."""
    if server is None:
        return "http://127.0.0.1:9", None
    if sc.server == "nginx-same":
        return getattr(server, "same_url", server.base_url), None
    if sc.tls:
        assert isinstance(server, h.NginxServer) and server.tls_url
        return server.tls_url, server.ca_file
    return server.base_url, None


def summarize(sc: Scenario, client: str, server_name: str,
              runs: list[dict[str, Any]]) -> dict[str, Any]:
    med = statistics.median
    files = runs[0]["files"]
    fps = med(r["files"] / r["wall_s"] for r in runs)
    row: dict[str, Any] = {
        "scenario": sc.name, "server": server_name, "client": client, "files": files,
        "concurrency": sc.concurrency,
        "files_per_s": round(fps, 1),
        "wall_s": round(med(r["wall_s"] for r in runs), 3),
        "mb_per_s": round(med(r["bytes"] / r["wall_s"] / 1e6 for r in runs), 1),
        "cpu_s_per_1000": round(med(r["cpu_s"] / files * 1000 for r in runs), 3),
        "peak_rss_mib": round(med(r["peak_rss_mib"] for r in runs), 1),
        "pct_ideal": round(100 * fps / sc.ideal, 1) if sc.ideal else None,
        "ideal_files_per_s": sc.ideal,
        "runs": runs,
    }
    if "rss_growth_mib" in runs[0]:
        row["rss_growth_mib"] = round(med(r["rss_growth_mib"] for r in runs), 1)
    for key in ("server_cpu_share", "delay_cpu_share"):
        if key in runs[0]:
            row[key] = round(med(r[key] for r in runs), 2)
    if "startup_cpu_s" in runs[0]:
        row["startup_cpu_s"] = round(med(r["startup_cpu_s"] for r in runs), 3)
    if sc.tls:
        row["tls"] = True
    if sc.note:
        row["note"] = sc.note
    if sc.name == "resume-1m":
        row["note"] = "no request: load, plan, skip"
    return row


# ------------------------------------------------------------------------------ ceilings


def _raw_client(base: str, reqs: list[bytes], connections: int, duration: float, seed: int,
                queue: Any, ca_file: Path | None = None) -> None:
    host, port = base.split("://", 1)[1].rsplit(":", 1)

    async def go() -> tuple[int, int]:
        warm = [0, 0, 0]
        await asyncio.gather(*(h.raw_worker(host, int(port), reqs, seed * 7919 + k * 97,
                                           time.monotonic() + 0.5, warm, ca_file)
                               for k in range(connections)))
        counts = [0, 0, 0]
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(h.raw_worker(host, int(port), reqs, seed * 7919 + k * 97,
                                           stop_at, counts, ca_file)
                               for k in range(connections)))
        return counts[0], counts[1]

    queue.put(asyncio.run(go()))


def ceiling(server: h.Server, data: h.Dataset, duration: float,
            connections: int = 64, procs: int = 2, *, url: str | None = None,
            ca_file: Path | None = None) -> dict[str, Any]:
    """Responses/s of ``server`` to raw keep-alive clients (a lower bound on 2 cores)."""
    raw = _raw_requests(server, data)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_raw_client,
                           args=(url or server.base_url, raw, connections // procs, duration,
                                 n, queue, ca_file))
               for n in range(procs)]
    cpu0 = h.process_cpu_s(server.pid)
    for p in workers:
        p.start()
    results = [queue.get(timeout=duration + 60) for _ in workers]
    for p in workers:
        p.join()
    cpu = h.process_cpu_s(server.pid) - cpu0
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    if bad:
        raise RuntimeError(f"{server.name}: {bad} non-200 answers in the ceiling run")
    return {"scenario": "ceiling", "server": server.name, "client": "raw keep-alive",
            "files": ok, "concurrency": connections,
            "files_per_s": round(ok / duration, 1),
            "mb_per_s": round(ok * data.size / duration / 1e6, 1),
            "cpu_s_per_1000": None, "peak_rss_mib": None, "pct_ideal": None,
            "server_cpu_share": round(cpu / (duration + 0.5), 2),
            "note": f"{procs} client processes × {connections // procs} connections, "
                    f"{duration:g} s"}


# ------------------------------------------------------------------------------ resume data


def write_resume_manifest(data: h.Dataset, path: Path) -> int:
    """Every planned file's final record: completed inside the window, expired before."""
    names = data.report_names()
    n = 0
    sha = "ab" * 32
    with open(path, "wb", buffering=1 << 20) as f:
        for w in range(data.workspaces):
            ws, app = f"ws-{w:04d}", data.app_id(w)
            for name in names:
                for age in range(data.days):
                    day = h.TODAY - timedelta(days=age)
                    fn = report_filename(name, day)
                    if age <= 7:
                        rec = Record(ws, app, name, day.isoformat(), fn, Status.COMPLETED,
                                     f"{ws}/{fn}", data.size, sha, 1, 200,
                                     updated_at="2026-11-27T00:00:00Z")
                    else:
                        rec = Record(ws, app, name, day.isoformat(), fn, Status.EXPIRED,
                                     updated_at="2026-11-27T00:00:00Z")
                    f.write(rec.to_line())
                    n += 1
    return n


# ------------------------------------------------------------------------------ driver


def _server_for(sc: Scenario, work: Path, log: Callable[[str], None]) -> h.Server | None:
    if sc.server == "none":
        return None
    if sc.server in ("nginx", "nginx-same"):
        if h.nginx_binary() is None:
            log(f"  nginx not installed ({INSTALL['nginx']}): {sc.name} uses the simulator")
        else:
            if sc.server == "nginx-same":
                www = h.ensure_same_body(sc.data.size)
            else:
                if not h.files_ready(sc.data):
                    log(f"  writing {sc.data.files:,} files of {sc.data.size:,} bytes for "
                        "nginx (once, kept in bench-output/www)")
                www = h.ensure_files(sc.data)
            ngx = h.NginxServer(www, work, tls=sc.tls)
            if sc.server == "nginx":
                warm(ngx, sc.data)
            return ngx
    sim = h.SimulatorServer(sc.data, work, latency_s=sc.latency_s)
    log("  warming the simulator: every file requested once (its body cache)")
    warm(sim, sc.data)
    return sim


def _raw_requests(server: h.Server, data: h.Dataset) -> list[bytes]:
    """Signed raw HTTP/1.1 GETs for every file of ``data`` on ``server``."""
    host = server.base_url.removeprefix("http://")
    raw = []
    for r in h.requests_for(data, server.base_url):
        path = r.url.removeprefix(server.base_url)
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}",
                 *(f"{k}: {v}" for k, v in r.headers.items()), "", ""]
        raw.append("\r\n".join(lines).encode())
    return raw


def warm(server: h.Server, data: h.Dataset, connections: int = 64) -> None:
    """Request every file once, untimed: the simulator builds and caches each body on its
    first request (~1 ms of CPU) and nginx reads it into the page cache, which would
    otherwise be charged to whichever client runs first."""
    raw = _raw_requests(server, data)
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)

    async def one(part: list[bytes]) -> None:
        if not part:
            return
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for req in part:
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                start = lower.find(b"content-length: ") + 16
                length = int(head[start:head.index(b"\r\n", start)])
                while length:
                    length -= len(await reader.read(min(length, 1 << 20)))
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"warm-up: {head.splitlines()[0]!r}")
        finally:
            writer.close()

    async def go() -> None:
        await asyncio.gather(*(one(raw[k::connections]) for k in range(connections)))

    asyncio.run(go())


def run_scenario(sc: Scenario, *, repeats: int, clients: Sequence[str] | None,
                 work: Path, log: Callable[[str], None],
                 profile_dir: Path | None = None,
                 net: netns.Namespace | None = None) -> list[dict[str, Any]]:
    if sc.name == "ceiling":
        rows = []
        duration = 2.0 if repeats == 1 else 4.0
        with h.SimulatorServer(sc.data, work) as sim:
            warm(sim, sc.data)
            rows.append(ceiling(sim, sc.data, duration))
        if h.nginx_binary() is not None:
            with h.NginxServer(h.ensure_files(sc.data), work) as ngx:
                warm(ngx, sc.data)
                rows.append(ceiling(ngx, sc.data, duration))
        for r in rows:
            log(f"  {r['server']}: {r['files_per_s']:,.0f} responses/s "
                f"(server CPU {r['server_cpu_share']:.0%})")
        return rows
    chosen = [c for c in sc.clients if clients is None or c in clients]
    for c in list(chosen):
        if not available(c):
            log(f"  {c} not installed ({INSTALL[c]}): skipped")
            chosen.remove(c)
    if sc.kernel_delay and (net is None or h.nginx_binary() is None):
        log(f"  {sc.name} skipped: " + ("nginx not installed (" + INSTALL["nginx"] + ")"
                                       if net is not None else "no network namespace"))
        return []
    server = _server_for(sc, work, log)  # warmed before any delay is added
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in chosen}
    try:
        with contextlib.ExitStack() as stack:
            helper = None
            if sc.kernel_delay:
                assert net is not None
                helper = stack.enter_context(net.delay(sc.latency_s / 2))
            _runs(sc, chosen, runs, server, work, repeats, log, profile_dir, helper)
            bound = _server_bound(sc, server, repeats, log) if chosen else None
    finally:
        if server is not None:
            server.stop()
    name = server.name if server is not None else "—"
    if sc.kernel_delay:
        name += f" +{sc.latency_s * 1000:g} ms RTT (kernel)"
    if sc.tls:
        name += ", https"
    rows = [summarize(sc, c, name, runs[c]) for c in chosen]
    if bound:
        for row in rows:
            row["server_bound_files_per_s"] = bound
            row["pct_server_bound"] = round(100 * row["files_per_s"] / bound, 1)
    return rows


def _runs(sc: Scenario, chosen: list[str], runs: dict[str, list[dict[str, Any]]],
          server: h.Server | None, work: Path, repeats: int, log: Callable[[str], None],
          profile_dir: Path | None, helper: subprocess.Popen[bytes] | None) -> None:
    """``repeats`` rounds, the clients taking turns in each."""
    for i in range(repeats):
        for c in chosen:
            profile = None
            if profile_dir is not None and c == "moe-backfill" and i == 0:
                profile = str(profile_dir / f"{sc.name}.txt")
            if sc.server == "none":
                r = _resume_run(sc, work, profile)
            else:
                r = run_client(sc, c, server, work, profile=profile, helper=helper)
            runs[c].append(r)
            log(f"  {sc.name} {c} #{i + 1}: {r['wall_s']:.2f} s, "
                f"{r['files'] / r['wall_s']:,.0f} files/s, "
                f"{r['bytes'] / r['wall_s'] / 1e6:,.1f} MB/s, "
                f"CPU {r['cpu_s'] / r['files'] * 1000:.3f} s/1k, "
                f"RSS {r['peak_rss_mib']:.0f} MiB")


def _server_bound(sc: Scenario, server: h.Server | None, repeats: int,
                  log: Callable[[str], None]) -> float | None:
    """With latency added, what this server allows at ``sc.concurrency``: raw keep-alive
    clients that do nothing but send and read. The ideal bound assumes the server answers
    in exactly ``latency_s``; its own turnaround and timer rounding cost a little more,
    and no client can beat that."""
    if not sc.latency_s or server is None:
        return None
    url, ca_file = _base_url(sc, server)
    bound = float(ceiling(server, sc.data, 3.0 if repeats > 1 else 2.0,
                          connections=sc.concurrency, procs=2, url=url,
                          ca_file=ca_file)["files_per_s"])
    log(f"  server bound: {bound:,.0f} files/s with raw keep-alive clients at concurrency "
        f"{sc.concurrency} ({100 * bound / (sc.ideal or bound):.1f} % of the ideal)")
    return bound


def _resume_run(sc: Scenario, work: Path, profile: str | None) -> dict[str, Any]:
    out = h.run_dir(f"run-{sc.name}")
    h.drop_tree(out)
    out.mkdir(parents=True)
    try:
        written = write_resume_manifest(sc.data, out / "manifest.jsonl")
        os.sync()
        res = _engine(sc, "http://127.0.0.1:9", work, out, profile)
    finally:
        h.drop_tree(out)  # one manifest: nothing to set aside
    if res["requests"] or res["totals"]["completed"] + res["totals"]["expired"] != written:
        raise RuntimeError(f"resume run did not skip everything: {res}")
    return {"files": written, "wall_s": res["process"]["wall_s"],
            "cpu_s": res["process"]["cpu_s"], "run_wall_s": res["wall_s"],
            "run_cpu_s": res["cpu_s"],
            "peak_rss_mib": res["peak_rss_mib"],
            "rss_growth_mib": res["peak_rss_mib"] - res["rss_before_mib"], "bytes": 0,
            "startup_cpu_s": res["startup_cpu_s"], "process": res["process"]}


def main(quick: bool = False, only: Sequence[str] | None = None, repeats: int | None = None,
         clients: Sequence[str] | None = None, profile_dir: Path | None = None,
         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the transfer scenarios; return ``{"rows": [...], "environment": {...}}``."""
    repeats = repeats or (1 if quick else 3)
    work = h.OUTPUT / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    chosen = [sc for sc in scenarios(quick) if not only or sc.name in only]
    h.compile_engine(Path(os.environ.get("BENCH_ENGINE_SRC") or h.ROOT))
    h.empty_trash()  # a killed bench's, before anything is measured
    try:
        return _main(chosen, repeats, clients, profile_dir, work, quick, log)
    finally:
        h.empty_trash()


def _main(chosen: list[Scenario], repeats: int, clients: Sequence[str] | None,
          profile_dir: Path | None, work: Path, quick: bool,
          log: Callable[[str], None]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        net = None
        if any(sc.kernel_delay for sc in chosen):
            why = netns.missing(h.OUTPUT / "bin")
            if why:
                log(f"latency in the kernel path unavailable: {why}; "
                    "the +50 ms nginx scenarios are skipped")
            else:
                net = stack.enter_context(netns.Namespace(f"moe-bench-{os.getpid()}",
                                                          h.OUTPUT / "bin"))
                log(f"servers and clients run in network namespace {net.name} "
                    "(its own loopback)")
        for sc in chosen:
            log(f"{sc.name}: {sc.data.files:,} files × {sc.data.size:,} bytes, "
                f"concurrency {sc.concurrency}"
                + (f", +{sc.latency_s * 1000:g} ms RTT" if sc.latency_s else "")
                + (" (packets delayed in the kernel)" if sc.kernel_delay else "")
                + (", https" if sc.tls else ""))
            rows += run_scenario(sc, repeats=repeats, clients=clients, work=work, log=log,
                                 profile_dir=profile_dir, net=net)
    return {"rows": rows, "environment": environment(), "repeats": repeats, "quick": quick}


def environment() -> dict[str, Any]:
    import platform
    import subprocess

    def version(cmd: list[str]) -> str | None:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except OSError:
            return None
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else None

    return {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
        "curl": version(["curl", "--version"]) if h.curl_binary() else None,
        "aria2c": version(["aria2c", "--version"]) if h.aria2c_binary() else None,
        "nginx": version([h.nginx_binary() or "nginx", "-v"]) if h.nginx_binary() else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--clients", default="")
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs of moe-backfill here")
    args = parser.parse_args()
    result = main(args.quick, [s for s in args.only.split(",") if s] or None, args.repeats,
                  [c for c in args.clients.split(",") if c] or None, args.profile)
    print(json.dumps([{k: v for k, v in r.items() if k != "runs"} for r in result["rows"]],
                     indent=1))
