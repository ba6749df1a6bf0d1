"""The simulator's transport: a listening socket of its own, and outages.

The listening socket is ours (``loop.create_server``), not a ``TCPSite``: a "refused"
outage closes it and opens it again on the same port. :class:`Listener` knows nothing
of the API; :class:`~backfill.simulator.app.Simulator` adds the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
from ssl import SSLContext
from typing import Literal

from aiohttp import web

OutageMode = Literal["closed", "refused"]


class Listener:
    """Serves ``self._handle`` (defined by a subclass) on a socket of its own."""

    def __init__(self) -> None:
        self.base_url = ""
        self.host = "127.0.0.1"
        self.port = 0
        self._server: web.Server | None = None  # needs a running loop: made in start()
        self._listener: asyncio.Server | None = None
        self._outage_until = 0.0
        self._outage_mode: OutageMode = "closed"
        self._reopen: asyncio.Task[None] | None = None
        self._ssl: SSLContext | None = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raise NotImplementedError

    def _stopped(self) -> None:
        """Called at the end of :meth:`stop` (the subclass wakes its waiters)."""

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
        self._stopped()

    async def _listen(self, host: str, port: int) -> asyncio.Server:
        assert self._server is not None, "start() first"
        loop = asyncio.get_running_loop()
        return await loop.create_server(self._server, host, port, reuse_address=True,
                                        ssl=self._ssl)

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
