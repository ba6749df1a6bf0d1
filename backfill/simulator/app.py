"""The HTTP server: aiohttp's low-level ``web.Server`` with one handler and no router.

The path is split from ``request.raw_path`` by hand, because a file name may contain an
encoded ``/`` that a router would take for a separator. Per request, in this order:

    path → 404 · method → 405 · outage → connection closed · fault chosen (latency,
    stalled headers, status faults, close) · app id → 400 · credentials → 401 ·
    workspace rate limit → 429 · file exists → 400 · redirects → 302 · body (+ body faults)

The listening socket and outages are :class:`~.listener.Listener`'s; how bodies are sent
(with their faults) is :mod:`.responses`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from ssl import SSLContext
from urllib.parse import quote, unquote

from aiohttp import web
from multidict import CIMultiDict

from ..config import Config, Workspace
from ..naming import report_url
from ..signing import request_headers
from .body import BodyCache, BodySpec, body_length, digest, is_streamed, iter_body
from .catalog import DEFAULT_CACHE_BYTES, MSG_APP, MSG_MISSING, Catalog, Clock, check_file
from .faults import Fault, Faults, TokenBucket, choose, latency, missing
from .listener import Listener, OutageMode
from .responses import (
    HTML,
    JSON_TYPE,
    ZIP_TYPE,
    bad_request,
    close,
    redirect,
    status_response,
    stream,
)

__all__ = ["JSON_TYPE", "ZIP_TYPE", "Counters", "OutageMode", "Simulator", "encode_path",
           "run_simulator"]

Outcome = int | str  # HTTP status, or how the connection ended (see Counters)

_JSON_200 = b'{"status": "success", "data": {"message": "Report is being generated"}}'
_REDIRECT_MARK = "redirected=1"


@dataclass(slots=True)
class Counters:
    """What the server saw. ``requests`` keys are (app_id, filename, outcome) where outcome
    is the HTTP status sent, or for broken connections one of: ``"outage"``, ``"close"``,
    ``"reset"``, ``"truncate"``, ``"truncate_close"``, ``"client_closed"`` (the client went
    away mid-body), ``"cancelled"`` (the handler was cancelled, e.g. at shutdown).
    404s are keyed ("", raw path, 404). ``faults`` counts every injected fault by kind
    (a status as a string, a kind from faults.KINDS, or "rate_limit" for the token bucket).
    ``attempts`` numbers the requests per (app_id, filename): fault decisions use it.
    """

    requests: Counter[tuple[str, str, Outcome]] = field(default_factory=Counter)
    faults: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    total: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_by_app: Counter[str] = field(default_factory=Counter)
    max_in_flight_by_app: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0  # body bytes of complete 200 responses
    redirected_headers: list[dict[str, str]] = field(default_factory=list)

    def statuses(self) -> Counter[Outcome]:
        """Outcome → count, over all files."""
        out: Counter[Outcome] = Counter()
        for (_, _, outcome), n in self.requests.items():
            out[outcome] += n
        return out

    def reset(self) -> None:
        """Forget everything except what is in flight now (attempt numbers restart too)."""
        for c in (self.requests, self.faults, self.attempts, self.max_in_flight_by_app):
            c.clear()
        self.redirected_headers.clear()
        self.total = self.bytes_sent = 0
        self.max_in_flight = self.in_flight
        self.max_in_flight_by_app.update(+self.in_flight_by_app)


class CounterWatch:
    """Tasks waiting for a condition on the counters; woken at request start and end."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.waiters: list[tuple[Callable[[Counters], bool], asyncio.Future[None]]] = []

    async def wait_until(self, predicate: Callable[[Counters], bool]) -> None:
        if predicate(self.counters):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self.waiters.append(entry)
        try:
            await fut
        finally:
            if entry in self.waiters:
                self.waiters.remove(entry)

    def notify(self) -> None:
        for pred, fut in list(self.waiters):
            if not fut.done() and pred(self.counters):
                fut.set_result(None)

    def cancel_all(self) -> None:
        for _, fut in self.waiters:
            fut.cancel()


class Simulator(Listener):
    """The server and its run-time controls. Use :func:`run_simulator` to start one."""

    def __init__(
        self,
        workspaces: Config | Sequence[Workspace],
        *,
        seed: int = 0,
        today: date | datetime | None = None,
        faults: Faults | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.catalog = Catalog(workspaces)
        self.seed = seed
        self.faults = faults if faults is not None else Faults()
        self.clock = Clock(today)
        self.counters = Counters()
        self.cache = BodyCache(cache_bytes)
        super().__init__()
        self._buckets: dict[str, TokenBucket] = {}
        self._watch = CounterWatch(self.counters)
        self._zip_headers = CIMultiDict({"Content-Type": ZIP_TYPE})

    # ------------------------------------------------------------------ controls

    def set_today(self, day: date | None) -> None:
        """Pin the same date in every workspace's zone; None returns to real time."""
        self.clock.set_today(day)

    def set_now(self, now: datetime | None) -> None:
        """Pin an instant (naive = UTC); each workspace sees its own local date."""
        self.clock.set_now(now)

    async def wait_until(self, predicate: Callable[[Counters], bool]) -> None:
        """Return once ``predicate(counters)`` holds (checked at each request start and end).

        Bound it with ``anyio.fail_after``; tests await this instead of sleeping."""
        await self._watch.wait_until(predicate)

    def _stopped(self) -> None:
        self._watch.cancel_all()

    # ------------------------------------------------------------------ helpers for tests

    def spec(self, app_id: str, filename: str, size: int | None = None) -> BodySpec:
        s = self.faults.size_of(filename) if size is None else size
        return BodySpec(self.seed, app_id, filename, s)

    def expected_body(self, app_id: str, filename: str) -> bytes:
        """The exact bytes a successful response carries for this file (now)."""
        spec = self.spec(app_id, filename)
        return b"".join(iter_body(spec)) if is_streamed(spec.size) else self.cache.get(spec)

    def expected_digest(self, app_id: str, filename: str) -> tuple[int, str]:
        """(length, sha256 hex) of :meth:`expected_body`, without holding a huge body."""
        return digest(self.spec(app_id, filename))

    def url(self, app_id: str, filename: str) -> str:
        return report_url(self.base_url, app_id, filename)

    def headers(self, app_id: str, filename: str) -> dict[str, str]:
        """Correctly signed request headers for a configured workspace."""
        entry = self.catalog.get(app_id)
        if entry is None:
            raise KeyError(app_id)
        ws = entry.workspace
        return request_headers(app_id, filename, ws.api_key.reveal(), ws.secret_key.reveal())

    # ------------------------------------------------------------------ the handler

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path, _, query = request.raw_path.partition("?")
        ids = _split(path)
        if ids is None:
            self.counters.requests["", path, 404] += 1
            return web.Response(status=404, text="Not Found")
        app_id, filename = ids
        if request.method != "GET":
            self.counters.requests[app_id, filename, 405] += 1
            return web.Response(status=405, headers={"Allow": "GET"})
        c = self.counters
        c.total += 1
        c.in_flight += 1
        c.max_in_flight = max(c.max_in_flight, c.in_flight)
        c.in_flight_by_app[app_id] += 1
        if c.in_flight_by_app[app_id] > c.max_in_flight_by_app[app_id]:
            c.max_in_flight_by_app[app_id] = c.in_flight_by_app[app_id]
        if self._watch.waiters:
            self._watch.notify()
        outcome: Outcome = "cancelled"
        try:
            resp, outcome = await self._respond(request, app_id, filename, path, query)
            return resp
        except ConnectionError:
            outcome = "client_closed"
            raise
        finally:
            c.requests[app_id, filename, outcome] += 1
            c.in_flight -= 1
            c.in_flight_by_app[app_id] -= 1
            if self._watch.waiters:
                self._watch.notify()

    async def _respond(self, request: web.BaseRequest, app_id: str, filename: str, path: str,
                       query: str) -> tuple[web.StreamResponse, Outcome]:
        loop = asyncio.get_running_loop()
        if self._outage_until and loop.time() < self._outage_until:
            return close(request), "outage"
        f = self.faults
        key = (app_id, filename)
        self.counters.attempts[key] += 1
        attempt = self.counters.attempts[key]
        target = _REDIRECT_MARK in query.split("&")
        if target:
            self.counters.redirected_headers.append(dict(request.headers))
        loop_hop = _loop_hop(query)
        fault: Fault | None = "redirect_loop" if loop_hop is not None else choose(
            f, self.seed, app_id, filename, attempt)
        if target and fault in ("redirect", "redirect_loop"):
            fault = None
        if fault is not None:
            self.counters.faults[app_id, filename, str(fault)] += 1
        delay = latency(f, self.seed, app_id, filename, attempt)
        if fault == "stall_headers":
            delay += f.stall_s
        if delay > 0:
            await asyncio.sleep(delay)
        if isinstance(fault, int):
            return status_response(f, fault), fault
        if fault == "close":
            return close(request), "close"
        refused = self._refuse(request, app_id, filename, target, loop.time())
        if refused is not None:
            return refused
        return await self._answer(request, app_id, filename, path, fault, loop_hop)

    def _refuse(self, request: web.BaseRequest, app_id: str, filename: str, target: bool,
                now: float) -> tuple[web.StreamResponse, Outcome] | None:
        """The API's own refusals, in order: app id, credentials, rate limit, file."""
        f = self.faults
        entry = self.catalog.get(app_id)
        if entry is None:
            return bad_request(MSG_APP), 400
        if not target or f.redirect_target_auth:
            hdrs = request.headers
            if not entry.authorized(hdrs.get("Authorization")) or not entry.signed(
                    filename, hdrs.get("Signature")):
                return web.Response(status=401, body=b"", content_type=JSON_TYPE), 401
        wait = rate_limit_wait(self._buckets, self.faults, app_id, now)
        if wait > 0:
            self.counters.faults[app_id, filename, "rate_limit"] += 1
            return status_response(f, 429, wait), 429
        problem = check_file(entry, filename, self.clock.today(entry.zone),
                             boundary_available=f.boundary_available,
                             today_generated=f.today_generated,
                             now_local=self.clock.now_local(entry.zone))
        if problem is None and missing(f, self.seed, app_id, filename):
            problem = MSG_MISSING
        if problem is not None:
            return bad_request(problem), 400
        return None

    async def _answer(self, request: web.BaseRequest, app_id: str, filename: str, path: str,
                      fault: Fault | None, loop_hop: int | None,
                      ) -> tuple[web.StreamResponse, Outcome]:
        """A request the API accepts: redirects, the 200 faults, or the body."""
        f = self.faults
        if fault == "redirect":
            base = (f.redirect_to or self.base_url).rstrip("/")
            return redirect(f"{base}{path}?{_REDIRECT_MARK}"), 302
        if fault == "redirect_loop":
            return redirect(f"{self.base_url}{path}?loop={(loop_hop or 0) + 1}"), 302
        if fault == "html":
            return web.Response(body=HTML % 200, content_type="text/html"), 200
        if fault == "json":
            return web.Response(body=_JSON_200, content_type=JSON_TYPE), 200
        size = f.too_large_bytes if fault == "too_large" else f.size_of(filename)
        spec = BodySpec(self.seed, app_id, filename, size)
        if fault is None or fault == "too_large" or fault == "stall_headers":
            if not is_streamed(size):
                body = self.cache.get(spec)
                self.counters.bytes_sent += len(body)
                return web.Response(body=body, headers=self._zip_headers), 200
            return await self._stream(request, spec, None)
        return await self._stream(request, spec, str(fault))

    async def _stream(self, request: web.BaseRequest, spec: BodySpec,
                      fault: str | None) -> tuple[web.StreamResponse, Outcome]:
        resp, outcome = await stream(request, spec, fault, self.faults, self.cache)
        if outcome == 200:
            self.counters.bytes_sent += body_length(spec) if is_streamed(spec.size) else len(
                self.cache.get(spec))
        return resp, outcome

def rate_limit_wait(buckets: dict[str, TokenBucket], f: Faults, app_id: str, now: float) -> float:
    """Seconds until ``app_id``'s token bucket has a token (0: take one now)."""
    rate = f.rate_limit_by_app.get(app_id, f.rate_limit)
    if not rate:
        return 0.0
    burst = f.rate_burst or max(1.0, rate)
    bucket = buckets.get(app_id)
    if bucket is None or bucket.rate != rate or bucket.burst != burst:
        bucket = buckets[app_id] = TokenBucket(rate, burst, now)
    return bucket.take(now)


@functools.lru_cache(maxsize=1 << 16)
def _split(path: str) -> tuple[str, str] | None:
    """(app id, file name) from a raw path, each segment percent-decoded; None: not ours."""
    parts = path.split("/")
    if (len(parts) != 5 or parts[0] or parts[1] != "campaign_reports"
            or parts[2] != "rest_api" or not parts[3] or not parts[4]):
        return None
    return unquote(parts[3]), unquote(parts[4])


def _loop_hop(query: str) -> int | None:
    for item in query.split("&"):
        if item.startswith("loop="):
            return int(item[5:]) if item[5:].isdigit() else 0
    return None


@contextlib.asynccontextmanager
async def run_simulator(
    workspaces: Config | Sequence[Workspace],
    *,
    seed: int = 0,
    today: date | datetime | None = None,
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    ssl: SSLContext | None = None,
) -> AsyncIterator[Simulator]:
    """Serve ``workspaces`` on ``host:port`` (0: a free port) for the body of the block;
    over TLS with ``ssl`` (a server-side context)."""
    sim = Simulator(workspaces, seed=seed, today=today, faults=faults, cache_bytes=cache_bytes)
    await sim.start(host, port, ssl)
    try:
        yield sim
    finally:
        await sim.stop()


def encode_path(app_id: str, filename: str) -> str:
    """The request path for a file (both segments percent-encoded, '/' included)."""
    return f"/campaign_reports/rest_api/{quote(app_id, safe='')}/{quote(filename, safe='')}"
