"""Child process of the transfer benchmarks: one ``Backfill.run()``, measured from inside.

``python -m tests.benchmarks.engine_run SPEC.json`` where SPEC holds ``config`` (a config
document for ``parse_config``), ``config_path``, ``today`` and, for https, ``ca_file``.
Prints one JSON line:
wall and CPU seconds of the run (all threads: ``RUSAGE_SELF``), the CPU spent before it
(interpreter start-up and imports), RSS before the run and the process's peak (VmHWM),
and the summary's totals.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

try:  # the loop the CLI would use (uvloop where installed); an older checkout: anyio's
    from backfill.eventloop import run
except ImportError:
    from anyio import run

from backfill.config import HttpSettings, parse_config
from backfill.engine import Backfill, Options


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def main(spec_path: str) -> dict[str, Any]:
    spec = json.loads(Path(spec_path).read_text())
    doc = spec["config"]
    if spec.get("ca_file") and "ca_bundle" in getattr(HttpSettings, "__dataclass_fields__", {}):
        # [http] ca_bundle where this version has it (an older one, given through
        # --engine-src, trusts the CA through SSL_CERT_FILE, which the bench also sets)
        doc = {**doc, "http": {**doc.get("http", {}), "ca_bundle": spec["ca_file"]}}
    config = parse_config(doc, Path(spec["config_path"]), env={})
    options = Options(today=date.fromisoformat(spec["today"]))
    rss0 = _status_kib("VmRSS")
    u0, s0 = _cpu()
    startup_cpu = u0 + s0
    t0 = time.perf_counter()
    summary = run(Backfill(config, options).run)
    wall = time.perf_counter() - t0
    u1, s1 = _cpu()
    totals = {s: sum(t.counts[s] for t in summary.workspaces.values())
              for s in ("completed", "missing", "expired", "failed", "pending")}
    return {
        "wall_s": wall,
        "cpu_s": (u1 - u0) + (s1 - s0),
        "user_s": u1 - u0,
        "sys_s": s1 - s0,
        "startup_cpu_s": startup_cpu,
        "rss_before_mib": rss0 / 1024,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
        "totals": totals,
        "bytes": sum(t.bytes for t in summary.workspaces.values()),
        "requests": summary.requests,
        "retries": summary.retries,
        "failures": dict(summary.failures),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
    gc.freeze()  # the process ends as the console script ends (backfill.cli.entry)
