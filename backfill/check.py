"""``backfill check``: one signed request per (workspace, report), answers judged by
:mod:`backfill.diagnose`. Reads response headers (and a 4xx's JSON error) only: no body is
downloaded and nothing is written, not even the manifest."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import anyio

from .client import Client
from .config import Config, Report, Workspace
from .diagnose import Probe, Verdict, judge, probe_day
from .errors import ConfigError, RemoteError
from .naming import base_url, report_filename, report_url
from .signing import request_headers

CONCURRENCY = 8


async def _probe(client: Client, ws: Workspace, report: Report, today: date) -> Probe:
    filename = report_filename(report.name, probe_day(report, today))
    url = report_url(base_url(ws.data_center, ws.base_url), ws.app_id, filename)
    headers = request_headers(ws.app_id, filename, ws.api_key.reveal(), ws.secret_key.reveal())
    try:
        async with client.get(url, headers) as reply:
            message = None
            if reply.status != 200:
                message, _ = await reply.error_detail()
            return Probe(ws.name, report.name, filename, reply.status, message)
    except RemoteError as exc:
        return Probe(ws.name, report.name, filename, error=str(exc), error_kind=exc.kind)


async def check(config: Config, only: Sequence[str], todays: dict[str, date]) -> list[Verdict]:
    """Probe every report of the chosen workspaces (all when ``only`` is empty)."""
    chosen = [ws for ws in config.workspaces if not only or ws.name in only]
    if not chosen:
        raise ConfigError("check: no workspace to check")
    limiter = anyio.CapacityLimiter(CONCURRENCY)
    probes: dict[str, list[Probe]] = {ws.name: [] for ws in chosen}
    async with Client(config.http, limit=CONCURRENCY, limit_per_host=CONCURRENCY,
                      origins=[base_url(ws.data_center, ws.base_url) for ws in chosen],
                      ) as client:

        async def one(ws: Workspace, report: Report) -> None:
            async with limiter:
                probes[ws.name].append(await _probe(client, ws, report, todays[ws.name]))

        async with anyio.create_task_group() as tg:
            for ws in chosen:
                for report in ws.reports:
                    tg.start_soon(one, ws, report)
    order = {ws.name: [r.name for r in ws.reports] for ws in chosen}
    verdicts: list[Verdict] = []
    for name, found in probes.items():
        found.sort(key=lambda p: order[name].index(p.report))
        verdicts += judge(found)
    return verdicts
