"""The HTTP server: aiohttp's low-level ``web.Server`` with one handler and no router.

The path is split from ``request.raw_path`` by hand, because a file name may contain an
encoded ``/`` that a router would take for a separator. Per request, in this order:

    path → 404 · method → 405 · outage → connection closed · fault chosen (latency,
    stalled headers, status faults, close) · app id → 400 · credentials → 401 ·
    workspace rate limit → 429 · file exists → 400 · redirects → 302 · body (+ body faults)

The listening socket is ours (``loop.create_server``), not a ``TCPSite``: a "refused"
outage closes it and opens it again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import struct
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from ssl import SSLContext
from typing import Literal
from urllib.parse import quote, unquote

from aiohttp import web
from multidict import CIMultiDict

from ..config import Config, Workspace
from ..naming import report_url
from ..signing import request_headers
from .body import BodyCache, BodySpec, body_length, digest, is_streamed, iter_body
from .catalog import DEFAULT_CACHE_BYTES, MSG_APP, MSG_MISSING, Catalog, Clock, check_file
from .faults import Fault, Faults, TokenBucket, choose, latency, missing

ZIP_TYPE = "application/gzip"  # what the real API says; the body is a zip (api.md)
JSON_TYPE = "application/json"
OutageMode = Literal["closed", "refused"]
Outcome = int | str  # HTTP status, or how the connection ended (see Counters)

_HTML = b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>%d</h1>" \
        b"<p>The server is temporarily unable to service your request.</p></body></html>"
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


class Simulator:
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
        self.base_url = ""
        self.host = "127.0.0.1"
        self.port = 0
        self._server: web.Server | None = None  # needs a running loop: made in start()
        self._listener: asyncio.Server | None = None
        self._outage_until = 0.0
        self._outage_mode: OutageMode = "closed"
        self._reopen: asyncio.Task[None] | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._waiters: list[tuple[Callable[[Counters], bool], asyncio.Future[None]]] = []
        self._zip_headers = CIMultiDict({"Content-Type": ZIP_TYPE})
        self._ssl: SSLContext | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    ssl: SSLContext | None = None) -> None:
        """Listen; with ``ssl`` (a server context) the base URL is https://."""
        self.host = host
        self._ssl = ssl
        # handler_cancellation: a stalled or dripping handler ends when its client leaves.
        self._server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        self._listener = await self._listen(host, port)
        sock = self._listener.sockets[0]
        self.port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if ssl else 'http'}://{shown}:{self.port}"

    async def stop(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
            self._reopen = None
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            self._server.pre_shutdown()
            await self._server.shutdown(0.1)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        for _, fut in self._waiters:
            fut.cancel()

    async def _listen(self, host: str, port: int) -> asyncio.Server:
        assert self._server is not None, "start() first"
        loop = asyncio.get_running_loop()
        return await loop.create_server(self._server, host, port, reuse_address=True,
                                        ssl=self._ssl)

    # ------------------------------------------------------------------ controls

    def set_today(self, day: date | None) -> None:
        """Pin the same date in every workspace's zone; None returns to real time."""
        self.clock.set_today(day)

    def set_now(self, now: datetime | None) -> None:
        """Pin an instant (naive = UTC); each workspace sees its own local date."""
        self.clock.set_now(now)

    @property
    def in_outage(self) -> bool:
        return asyncio.get_running_loop().time() < self._outage_until

    def start_outage(self, seconds: float, mode: OutageMode = "closed") -> None:
        """For ``seconds``, close every connection (``closed``: requests get no answer) or
        also stop listening (``refused``: connects fail) and listen again afterwards."""
        loop = asyncio.get_running_loop()
        self._outage_until = loop.time() + seconds
        self._outage_mode = mode
        for conn in self._server.connections if self._server else ():
            conn.force_close()
        if mode == "refused" and self._listener is not None:
            self._listener.close()
            self._listener = None
            if self._reopen is not None:
                self._reopen.cancel()
            self._reopen = loop.create_task(self._reopen_after(seconds))

    async def end_outage(self) -> None:
        """End the outage now; a refused listener is listening again on return."""
        self._outage_until = 0.0
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
            self._reopen = None
        if self._listener is None and self._server is not None:
            self._listener = await self._listen(self.host, self.port)

    async def wait_outage_over(self) -> None:
        """Return when the current outage has ended (and the listener is back)."""
        delay = self._outage_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._reopen is not None:
            await asyncio.shield(self._reopen)

    async def _reopen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        while self._listener is None:
            try:
                self._listener = await self._listen(self.host, self.port)
            except OSError:  # the port is briefly unavailable: keep trying
                await asyncio.sleep(0.05)

    async def wait_until(self, predicate: Callable[[Counters], bool]) -> None:
        """Return once ``predicate(counters)`` holds (checked at each request start and end).

        Bound it with ``anyio.fail_after``; tests await this instead of sleeping."""
        if predicate(self.counters):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            await fut
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _notify(self) -> None:
        for pred, fut in list(self._waiters):
            if not fut.done() and pred(self.counters):
                fut.set_result(None)

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
        if self._waiters:
            self._notify()
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
            if self._waiters:
                self._notify()

    async def _respond(self, request: web.BaseRequest, app_id: str, filename: str, path: str,
                       query: str) -> tuple[web.StreamResponse, Outcome]:
        loop = asyncio.get_running_loop()
        if self._outage_until and loop.time() < self._outage_until:
            return _close(request), "outage"
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
            return self._status(fault), fault
        if fault == "close":
            return _close(request), "close"

        entry = self.catalog.get(app_id)
        if entry is None:
            return _bad_request(MSG_APP), 400
        if not target or f.redirect_target_auth:
            hdrs = request.headers
            if not entry.authorized(hdrs.get("Authorization")) or not entry.signed(
                    filename, hdrs.get("Signature")):
                return web.Response(status=401, body=b"", content_type=JSON_TYPE), 401
        wait = self._rate_limited(app_id, loop.time())
        if wait > 0:
            self.counters.faults[app_id, filename, "rate_limit"] += 1
            return self._status(429, wait), 429
        problem = check_file(entry, filename, self.clock.today(entry.zone),
                             boundary_available=f.boundary_available,
                             today_generated=f.today_generated)
        if problem is None and missing(f, self.seed, app_id, filename):
            problem = MSG_MISSING
        if problem is not None:
            return _bad_request(problem), 400

        if fault == "redirect":
            base = (f.redirect_to or self.base_url).rstrip("/")
            return _redirect(f"{base}{path}?{_REDIRECT_MARK}"), 302
        if fault == "redirect_loop":
            return _redirect(f"{self.base_url}{path}?loop={(loop_hop or 0) + 1}"), 302
        if fault == "html":
            return web.Response(body=_HTML % 200, content_type="text/html"), 200
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

    def _rate_limited(self, app_id: str, now: float) -> float:
        f = self.faults
        rate = f.rate_limit_by_app.get(app_id, f.rate_limit)
        if not rate:
            return 0.0
        burst = f.rate_burst or max(1.0, rate)
        bucket = self._buckets.get(app_id)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[app_id] = TokenBucket(rate, burst, now)
        return bucket.take(now)

    def _status(self, status: int, wait: float | None = None) -> web.Response:
        if status == 400:
            return _bad_request("Bad request")
        if status == 401:
            return web.Response(status=401, body=b"", content_type=JSON_TYPE)
        if status == 429:
            headers = {}
            retry_after = self.faults.retry_after(wait)
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            body = _error_body("Too many requests", "TOO MANY REQUESTS")
            return web.Response(status=429, body=body, content_type=JSON_TYPE, headers=headers)
        return web.Response(status=status, body=_HTML % status, content_type="text/html")

    async def _stream(self, request: web.BaseRequest, spec: BodySpec,
                      fault: str | None) -> tuple[web.StreamResponse, Outcome]:
        """Send a body in chunks, with the body fault ``fault`` (see faults.KINDS)."""
        f = self.faults
        length = body_length(spec) if is_streamed(spec.size) else len(self.cache.get(spec))
        chunks: Iterable[bytes] = (
            iter_body(spec) if is_streamed(spec.size) else [self.cache.get(spec)])
        if fault == "corrupt":
            chunks = _flip(chunks, length // 2, 16)
        cursor = _Cursor(chunks)
        cut = length // 2
        if fault == "truncate_close":
            transport = request.transport
            if transport is not None:
                head = f"HTTP/1.1 200 OK\r\nContent-Type: {ZIP_TYPE}\r\nConnection: close\r\n\r\n"
                transport.write(head.encode())
                for part in cursor.read(min(cut, 1024 * 1024)):
                    transport.write(part)
                transport.close()
            return web.Response(), "truncate_close"

        resp = web.StreamResponse(headers={"Content-Type": ZIP_TYPE})
        resp.content_length = length
        if fault in ("reset", "truncate"):
            resp.force_close()
        await resp.prepare(request)
        if fault == "drip":
            for part in cursor.read(length, piece=1):
                await resp.write(part)
                await asyncio.sleep(f.drip_interval_s)
        else:
            for part in cursor.read(cut if fault else length):
                await resp.write(part)
        if fault in ("reset", "truncate"):
            transport = request.transport
            if transport is not None:
                if fault == "reset":
                    await asyncio.sleep(0.02)  # let the half body reach the peer before RST
                    _rst(transport)
                else:
                    transport.close()
            return resp, fault
        if fault == "stall_body":
            await asyncio.sleep(f.stall_s)
        for part in cursor.read(length):
            await resp.write(part)
        await resp.write_eof()
        self.counters.bytes_sent += length
        return resp, 200


@functools.lru_cache(maxsize=1 << 16)
def _split(path: str) -> tuple[str, str] | None:
    """(app id, file name) from a raw path, each segment percent-decoded; None: not ours."""
    parts = path.split("/")
    if (len(parts) != 5 or parts[0] or parts[1] != "campaign_reports"
            or parts[2] != "rest_api" or not parts[3] or not parts[4]):
        return None
    return unquote(parts[3]), unquote(parts[4])


class _Cursor:
    """Reads byte ranges off a chunk iterator, keeping the unread rest of a chunk."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = memoryview(b"")

    def read(self, n: int, piece: int = 1024 * 1024) -> Iterator[bytes]:
        """Up to ``n`` bytes, in pieces of at most ``piece`` bytes."""
        while n > 0:
            if not self._buf:
                nxt = next(self._it, None)
                if nxt is None:
                    return
                self._buf = memoryview(nxt)
            take = min(n, piece, len(self._buf))
            yield bytes(self._buf[:take])
            self._buf = self._buf[take:]
            n -= take


def _flip(chunks: Iterable[bytes], at: int, n: int) -> Iterator[bytes]:
    """The chunks with bytes [at, at+n) inverted: same length, broken CRC."""
    offset = 0
    for chunk in chunks:
        end = offset + len(chunk)
        if offset < at + n and at < end:
            b = bytearray(chunk)
            for i in range(max(at, offset), min(at + n, end)):
                b[i - offset] ^= 0xFF
            chunk = bytes(b)
        offset = end
        yield chunk


def _loop_hop(query: str) -> int | None:
    for item in query.split("&"):
        if item.startswith("loop="):
            return int(item[5:]) if item[5:].isdigit() else 0
    return None


def _error_body(message: str, kind: str = "BAD REQUEST") -> bytes:
    return json.dumps({"error": {"attribute": "", "message": message, "type": kind,
                                 "request_id": uuid.uuid4().hex}}).encode()


def _bad_request(message: str) -> web.Response:
    return web.Response(status=400, body=_error_body(message), content_type=JSON_TYPE)


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _close(request: web.BaseRequest) -> web.Response:
    """Close the connection without answering; aiohttp then finds nothing to write to."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def _rst(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: close() sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


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
