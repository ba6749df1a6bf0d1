"""How many small-file (≈10 KB) responses a second the simulator serves, faults off.

The server runs in its own process (``python -m backfill.simulator.cli``); the load comes
from separate client processes, each a raw-socket HTTP/1.1 keep-alive client on asyncio
(a few µs a response, so the server, not the client, is what is measured). Every request
is correctly signed and for a file inside the 7-day window, so each one goes through the
whole check path and is answered 200 from the body cache.

Run: ``python -m tests.benchmarks.bench_simulator [seconds] [connections] [clients]``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from typing import Any

from backfill.naming import report_filename, report_url
from backfill.signing import request_headers
from backfill.simulator.cli import demo_config

from .harness import process_cpu_s, raw_worker

TODAY = date(2026, 11, 27)


def _requests(base: str) -> list[bytes]:
    """Raw signed GETs for every demo file inside the window."""
    host = base.removeprefix("http://")
    out = []
    for ws in demo_config().workspaces:
        for report in ws.reports:
            for age in range(7):
                day = TODAY - timedelta(days=age)
                if not report.schedule.includes(day):
                    continue
                fn = report_filename(report.name, day)
                path = report_url("", ws.app_id, fn)
                hdrs = request_headers(ws.app_id, fn, ws.api_key.reveal(),
                                       ws.secret_key.reveal())
                lines = [f"GET {path} HTTP/1.1", f"Host: {host}",
                         *(f"{k}: {v}" for k, v in hdrs.items()), "", ""]
                out.append("\r\n".join(lines).encode())
    return out


def _client(base: str, connections: int, warmup: float, duration: float, seed: int,
            queue: Any) -> None:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reqs = _requests(base)

    async def go() -> tuple[int, int, int]:
        counts = [0, 0, 0]
        # Warm-up: fill the server's cache and settle connections; not counted.
        await asyncio.gather(*(raw_worker(host, int(port), reqs, seed * 997 + k,
                                       time.monotonic() + warmup, [0, 0, 0])
                               for k in range(connections)))
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(raw_worker(host, int(port), reqs, seed * 997 + k, stop_at, counts)
                               for k in range(connections)))
        return counts[0], counts[1], counts[2]

    queue.put(asyncio.run(go()))


def main(duration: float = 5.0, connections: int = 32, clients: int = 2) -> dict[str, Any]:
    """Run the benchmark; print and return ``responses_per_s`` and details."""
    cmd = [sys.executable, "-m", "backfill.simulator.cli", "--today", TODAY.isoformat(),
           "--port", "0"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().decode().strip()
        if not base.startswith("http://"):
            raise RuntimeError(f"simulator did not start (got {base!r})")
        # fork: no re-import of whatever __main__ started the benchmark.
        ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        queue = ctx.Queue()
        per_client = max(1, connections // clients)
        procs = [ctx.Process(target=_client, args=(base, per_client, 1.0, duration, n, queue))
                 for n in range(clients)]
        cpu0 = process_cpu_s(server.pid)
        for p in procs:
            p.start()
        results = [queue.get(timeout=duration + 60) for _ in procs]
        for p in procs:
            p.join()
        cpu = process_cpu_s(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(10)
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    body = sum(r[2] for r in results)
    figures = {
        "responses_per_s": round(ok / duration),
        "non_200": bad,
        "mb_per_s": round(body / duration / 1e6, 1),
        "avg_body_bytes": round(body / max(ok + bad, 1)),
        "connections": per_client * clients,
        "client_processes": clients,
        "duration_s": duration,
        "server_cpu_share": round(cpu / (duration + 1.0), 2),  # ≈1.0: the server is the limit
        "cpus": os.cpu_count(),
    }
    print(f"simulator: {figures['responses_per_s']} responses/s of ~10 KB "
          f"({figures['mb_per_s']} MB/s, {figures['connections']} keep-alive connections, "
          f"{clients} client process(es), server CPU {figures['server_cpu_share']:.0%})")
    return figures


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:4]]
    main(*(args[:1]), *(int(a) for a in args[1:]))
