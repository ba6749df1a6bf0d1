"""A small HTTP CONNECT proxy on 127.0.0.1 (asyncio), recording what it was told.

It tunnels ``CONNECT host:port`` to the target and pipes bytes both ways, so it sees the
request head of the CONNECT only (the tunnelled bytes are TLS, or an opaque stream). A
plain forwarded request (``GET http://…``) is recorded and refused with 403, so a test
can tell whether credentials were ever handed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Seen:
    line: str  # the request line, e.g. "CONNECT localhost:4433 HTTP/1.1"
    headers: dict[str, str]


@dataclass
class ConnectProxy:
    """Set ``require_auth`` to a ``Proxy-Authorization`` value to demand it (else 407)."""

    require_auth: str | None = None
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        headers = dict(h.split(": ", 1) for h in head[1:] if ": " in h)
        self.seen.append(Seen(head[0], headers))
        method, target, _ = head[0].split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if self.require_auth and headers.get("Proxy-Authorization") != self.require_auth:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def connects(self) -> list[str]:
        return [s.line for s in self.seen if s.line.startswith("CONNECT ")]


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()


@contextlib.asynccontextmanager
async def connect_proxy(require_auth: str | None = None) -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy(require_auth)
    server = await asyncio.start_server(proxy._spawn, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        server.close()
        for task in list(proxy._tasks):
            task.cancel()
        await asyncio.gather(*proxy._tasks, return_exceptions=True)
        await server.wait_closed()
