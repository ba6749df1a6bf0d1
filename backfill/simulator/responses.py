"""Responses of the simulated API: error bodies, status faults, and bodies sent in
chunks with their faults (corrupt, reset, truncate, truncate_close, drip, stall_body)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import uuid
from collections.abc import Iterable, Iterator

from aiohttp import web

from .body import BodyCache, BodySpec, body_length, is_streamed, iter_body
from .faults import Faults

ZIP_TYPE = "application/gzip"  # what the real API says; the body is a zip (api.md)
JSON_TYPE = "application/json"
HTML = b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>%d</h1>" \
       b"<p>The server is temporarily unable to service your request.</p></body></html>"


def status_response(faults: Faults, status: int, wait: float | None = None) -> web.Response:
    """The response of a status fault (or the rate limit's 429, with ``wait``)."""
    if status == 400:
        return bad_request("Bad request")
    if status == 401:
        return web.Response(status=401, body=b"", content_type=JSON_TYPE)
    if status == 429:
        headers = {}
        retry_after = faults.retry_after(wait)
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        body = error_body("Too many requests", "TOO MANY REQUESTS")
        return web.Response(status=429, body=body, content_type=JSON_TYPE, headers=headers)
    return web.Response(status=status, body=HTML % status, content_type="text/html")


async def stream(request: web.BaseRequest, spec: BodySpec, fault: str | None, f: Faults,
                 cache: BodyCache) -> tuple[web.StreamResponse, int | str]:
    """Send a body in chunks, with the body fault ``fault`` (see faults.KINDS); the
    response and its outcome (200 once the whole body was sent)."""
    length = body_length(spec) if is_streamed(spec.size) else len(cache.get(spec))
    chunks: Iterable[bytes] = (
        iter_body(spec) if is_streamed(spec.size) else [cache.get(spec)])
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
                rst(transport)
            else:
                transport.close()
        return resp, fault
    if fault == "stall_body":
        await asyncio.sleep(f.stall_s)
    for part in cursor.read(length):
        await resp.write(part)
    await resp.write_eof()
    return resp, 200


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


def error_body(message: str, kind: str = "BAD REQUEST") -> bytes:
    return json.dumps({"error": {"attribute": "", "message": message, "type": kind,
                                 "request_id": uuid.uuid4().hex}}).encode()


def bad_request(message: str) -> web.Response:
    return web.Response(status=400, body=error_body(message), content_type=JSON_TYPE)


def redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def close(request: web.BaseRequest) -> web.Response:
    """Close the connection without answering; aiohttp then finds nothing to write to."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def rst(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: close() sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
