"""No cookie is kept: one origin's Set-Cookie never comes back, to it or (in ``strip``
mode, across a redirect) to another origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from backfill.client import Client
from backfill.config import HttpSettings

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://localhost:{port}"  # a name: aiohttp keeps no cookie for an IP
    finally:
        await runner.cleanup()


def recording_app(seen: list[str | None], location: str | None = None) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        headers = {"Set-Cookie": "session=first-origin-secret; Path=/"}
        if location and "hop" not in request.query:
            return web.Response(status=302, headers={**headers, "Location": location})
        return web.Response(body=b"PK\x05\x06" + b"\0" * 18, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def test_no_cookie_crosses_a_stripped_redirect_or_comes_back() -> None:
    second: list[str | None] = []
    first: list[str | None] = []
    http = HttpSettings(cross_origin_redirects="strip")
    # localhost on two ports: two origins, which share a cookie domain
    async with serve(recording_app(second)) as other, \
            serve(recording_app(first, f"{other}/x?hop=1")) as base, \
            Client(http, limit=2, limit_per_host=2) as client:
        for _ in range(2):
            async with client.get(f"{base}/report", {"MOE-APPKEY": "APP"}) as reply:
                assert reply.status == 200
    assert len(first) == 2 and len(second) == 2
    assert first == [None, None] and second == [None, None]
