"""Posting an alert: one JSON POST to a webhook, retried briefly. The I/O boundary.

The URL is a secret (a Slack webhook URL is its own credential): it is never logged and
appears in errors only as its origin with the path masked (``https://hooks.slack.com/***``).

    attempt outcome                  next
    ───────────────────────────────  ───────────────────────────────────────────────
    2xx                              sent
    429, 5xx, 408                    retry after Retry-After (capped) or a short backoff
    other 4xx                        give up (a retry cannot help)
    connection error, timeout        retry
    ``timeout_s`` bounds every attempt; at most ``attempts`` of them.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from .. import __version__
from ..trust import deferred_default_trust

with deferred_default_trust():  # the system's CA file is read at the first https handshake
    import aiohttp

if TYPE_CHECKING:
    from ..proxy import ProxyRoute

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
ATTEMPTS = 3
BACKOFF_S = (0.2, 1.0)
RETRY_AFTER_MAX_S = 10.0


class WebhookError(Exception):
    """The alert could not be delivered; str() is secret-free."""


def masked(url: str) -> str:
    """The origin of ``url`` with everything after it hidden."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    return f"{parts.scheme}://{host}{port}/***"


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int | None  # None: no HTTP answer
    retry_after: str | None = None
    error: str | None = None


def _wait(attempt: Attempt, n: int) -> float | None:
    """Seconds before the next attempt, or None to give up."""
    if attempt.status is not None and attempt.status not in RETRYABLE:
        return None
    if attempt.retry_after:
        try:
            return min(max(0.0, float(attempt.retry_after)), RETRY_AFTER_MAX_S)
        except ValueError:
            pass
    return BACKOFF_S[min(n, len(BACKOFF_S) - 1)]


async def _post_once(session: aiohttp.ClientSession, url: str, data: bytes,
                     timeout_s: float, via: ProxyRoute | None) -> Attempt:
    # through a proxy: CONNECT for https (the proxy sees the host only), else forwarded
    forwarded = via is not None and not url.startswith("https:")
    try:
        with anyio.fail_after(timeout_s):
            async with session.post(
                    url, data=data, allow_redirects=False,
                    headers=dict(via.headers) if via and forwarded else None,
                    proxy=via.url if via else None,
                    proxy_headers=dict(via.headers) if via else None) as resp:
                await resp.read()
                return Attempt(resp.status, resp.headers.get("Retry-After"))
    except TimeoutError:
        return Attempt(None, error=f"no answer within {timeout_s:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt(None, error=f"cannot connect ({type(exc).__name__})")


async def post(url: str, body: Mapping[str, Any], *, timeout_s: float,
               attempts: int = ATTEMPTS, proxy: ProxyRoute | None = None,
               ssl_context: ssl.SSLContext | bool = True,
               sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> int:
    """POST ``body`` as JSON, through ``proxy`` when given (the run's proxy rules) and
    with the run's ``ssl_context``; the number of attempts it took. WebhookError when
    every attempt failed, naming the last reason and the masked URL."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json",
               "User-Agent": f"moe-backfill/{__version__}"}
    connector = aiohttp.TCPConnector(ssl=ssl_context)
    async with aiohttp.ClientSession(headers=headers, trust_env=False, connector=connector,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        for n in range(attempts):
            got = await _post_once(session, url, data, timeout_s, proxy)
            if got.status is not None and 200 <= got.status < 300:
                return n + 1
            wait = _wait(got, n)
            if wait is None or n + 1 == attempts:
                why = got.error or f"HTTP {got.status}"
                raise WebhookError(f"webhook {masked(url)}: {why} after {n + 1} "
                                   f"attempt{'s' if n else ''}")
            await sleep(wait)
    raise AssertionError("unreachable")
