"""The Prometheus text exposition format for node_exporter's textfile collector. Pure.

Written by hand rather than with prometheus_client: a dozen gauges rendered once per run
need no registry (which would have to be reset between runs in one process, and whose
``_created`` series would need ``disable_created_metrics()``), and the core install gains
no dependency. The tests parse the output with prometheus_client's own parser.

    backfill_files{workspace,status}              files in the manifest by status
    backfill_bytes{workspace}                     bytes of completed files
    backfill_last_run_requests{workspace}         requests made by the last finished run
    backfill_last_run_retries{workspace}          retries scheduled by it
    backfill_last_run_timestamp_seconds{workspace}      when it finished (0: never)
    backfill_last_success_timestamp_seconds{workspace}  last finished run with no failure
    backfill_files_at_risk{workspace}             not fetched yet, not expired
    backfill_soonest_expiry_seconds{workspace}    until the first of them expires (+Inf: none)
    backfill_files_expiring{workspace,within}     of them, those expiring within 6h/24h/48h
    backfill_metrics_timestamp_seconds            when this file was written
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..summary import STATUSES


@dataclass(frozen=True, slots=True)
class WorkspaceMetrics:
    name: str
    counts: Mapping[str, int]
    bytes: int = 0
    requests: int = 0
    retries: int = 0
    last_run: float = 0.0  # epoch seconds; 0 = never
    last_success: float = 0.0
    at_risk: int = 0
    soonest_expiry_s: float = math.inf
    expiring: Mapping[str, int] = field(default_factory=dict)  # "24h" -> files


EXPIRING_WITHIN = {"6h": 6 * 3600, "24h": 24 * 3600, "48h": 48 * 3600}


_GAUGES: tuple[tuple[str, str], ...] = (
    ("bytes", "Bytes of completed files in the manifest."),
    ("last_run_requests", "Requests made by the last finished run."),
    ("last_run_retries", "Retries scheduled by the last finished run."),
    ("last_run_timestamp_seconds", "When the last finished run ended (0: never)."),
    ("last_success_timestamp_seconds",
     "When the last finished run with no failed file ended (0: never)."),
    ("files_at_risk", "Files not fetched yet whose date is still inside the 7-day window."),
    ("soonest_expiry_seconds", "Seconds until the first file at risk expires (+Inf: none)."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


def _fields(m: WorkspaceMetrics) -> dict[str, float]:
    return {"bytes": m.bytes, "last_run_requests": m.requests, "last_run_retries": m.retries,
            "last_run_timestamp_seconds": m.last_run,
            "last_success_timestamp_seconds": m.last_success, "files_at_risk": m.at_risk,
            "soonest_expiry_seconds": m.soonest_expiry_s}


def render(rows: Sequence[WorkspaceMetrics], *, generated_at: float) -> str:
    out = ["# HELP backfill_files Files in the manifest by status.",
           "# TYPE backfill_files gauge"]
    for m in rows:
        ws = _label(m.name)
        out += [f'backfill_files{{workspace="{ws}",status="{s}"}} {m.counts.get(s, 0)}'
                for s in STATUSES]
    for name, help_text in _GAUGES:
        out += [f"# HELP backfill_{name} {help_text}", f"# TYPE backfill_{name} gauge"]
        out += [f'backfill_{name}{{workspace="{_label(m.name)}"}} {_value(_fields(m)[name])}'
                for m in rows]
    out += ["# HELP backfill_files_expiring Files at risk expiring within the time in 'within'.",
            "# TYPE backfill_files_expiring gauge"]
    for m in rows:
        out += [f'backfill_files_expiring{{workspace="{_label(m.name)}",within="{w}"}} '
                f'{m.expiring.get(w, 0)}' for w in EXPIRING_WITHIN]
    out += ["# HELP backfill_metrics_timestamp_seconds When this file was written.",
            "# TYPE backfill_metrics_timestamp_seconds gauge",
            f"backfill_metrics_timestamp_seconds {_value(round(generated_at, 3))}"]
    return "\n".join(out) + "\n"
