"""The HTTP boundary: one aiohttp session per run; signed GETs; errors translated here.

Redirects are followed by this code, never by aiohttp (which keeps custom headers such as
``Signature`` on a cross-origin hop). Same-origin redirects are followed with the
credentials. A redirect to another origin is refused (``cross_origin_redirects="refuse"``,
the default) or followed with *no* credentials (``"strip"``). An https → http downgrade and
a loop are always refused.

Proxies are chosen per origin by :mod:`backfill.proxy` (config, then the environment) and
passed to aiohttp explicitly; ``trust_env`` stays off, so aiohttp never reads netrc or the
proxy variables itself. An https:// origin goes through the proxy inside a ``CONNECT``
tunnel, so the proxy sees only the host name; a plain http:// origin would hand the
``Authorization`` and ``Signature`` headers to the proxy in clear text, so it is refused
(use https, or list the host in ``NO_PROXY``). TLS uses one SSL context: the system's
trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` read at the first https handshake, not at
import: :mod:`backfill.trust`), or only ``[http] ca_bundle`` (read at start-up). A
certificate that fails verification is a :class:`~backfill.errors.CertificateError` (not
retried), never a transient connect error.

No aiohttp exception leaves this module: they become :mod:`backfill.errors` types whose
messages name the exception class and the URL path only — never headers, never
``repr(request_info)`` (which holds the Authorization and Signature values).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urljoin, urlsplit

from yarl import URL

from ._version import __version__
from .config import HttpSettings
from .errors import (
    CertificateError,
    ConfigError,
    ConnectError,
    ConnectionLost,
    ProxyError,
    RedirectError,
    RemoteError,
    RequestTimeout,
)
from .naming import origin
from .proxy import ProxyRoute, ProxyTable
from .scrub import request_secrets, scrub
from .trust import deferred_default_trust

with deferred_default_trust():  # the system's CA file is read at the first https handshake
    import aiohttp

CREDENTIAL_HEADERS = ("Authorization", "Signature", "MOE-APPKEY")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
READ_BUFSIZE = 1024 * 1024
USER_AGENT = f"moe-backfill/{__version__}"


def translate(exc: BaseException, url: str) -> RemoteError:
    """Map an aiohttp/OS error to ours. The message carries no header values."""
    parts = urlsplit(url)
    path = parts.path
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        why = getattr(exc.certificate_error, "verify_message", None) or "not trusted"
        return CertificateError(
            f"certificate verify failed for {parts.hostname} ({why}): set ca_bundle in "
            "[http] (or --cacert) to the CA file that signed it")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        if exc.status in (502, 503, 504):  # the proxy could not reach the host: transient
            return ConnectError(f"proxy could not connect ({exc.status}) for {path}")
        hint = ": check the proxy's user:password" if exc.status == 407 else ""
        return ProxyError(f"proxy refused CONNECT to {parts.hostname} "
                          f"(status {exc.status}){hint}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"cannot connect ({name}) for {path}")
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return RequestTimeout(f"timed out ({name}) for {path}")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError
                  | aiohttp.ClientOSError | ConnectionError):
        return ConnectionLost(f"connection lost ({name}) for {path}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return ConnectionLost(f"bad response ({name}, {exc.status}) for {path}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ConnectionLost(f"transport error ({name}) for {path}")
    return RemoteError(f"unexpected error ({name}) for {path}")


@dataclass(slots=True)
class Reply:
    """An open response. ``chunks()`` streams the body; errors arrive translated."""

    status: int
    url: str
    headers: Mapping[str, str]
    content_length: int | None
    _resp: aiohttp.ClientResponse
    # what the server may echo back (the request's credentials, ``_extra``): scrubbed from
    # its text, worked out only then (an error's text), not for every reply
    _headers: Mapping[str, str] = field(default_factory=dict)
    _extra: tuple[str, ...] = ()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each piece as the socket delivered it (up to 256 KiB),
        never sliced or joined — no copy on the way to storage."""
        try:
            async for chunk, _ in self._resp.content.iter_chunks():
                if chunk:
                    yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise translate(exc, self.url) from exc

    async def error_detail(self, limit: int = 64 * 1024) -> tuple[str | None, str | None]:
        """(message, request_id) from the vendor's JSON error body, if there is one;
        printable, cut short, and scrubbed of the request's secrets."""
        try:
            raw = await self._resp.content.read(limit)
            doc = json.loads(raw) if raw else None
        # RecursionError: '[[[[…' nested deeper than the parser goes
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, RecursionError):
            return None, None
        err = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(err, dict):
            return None, None
        msg, rid = err.get("message"), err.get("request_id")
        return (self._text(msg, 500) if msg else None), (self._text(rid, 200) if rid else None)

    def _text(self, value: object, limit: int) -> str:
        secrets = request_secrets(self._headers, self._extra)
        return scrub(_printable(str(value)), secrets)[:limit]


def _printable(text: str) -> str:
    """The server's text without control characters (terminal escapes reach no log)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


class Client:
    """One pooled, keep-alive aiohttp session for a whole run."""

    def __init__(self, http: HttpSettings, *, limit: int, limit_per_host: int,
                 origins: Iterable[str] = (), env: Mapping[str, str] | None = None) -> None:
        """``origins``: the base URLs the run will use, checked now against the proxy rules
        (ConfigError, exit 2, before any request). ``env``: default ``os.environ``."""
        self._http = http
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._proxies = ProxyTable(http.proxy, os.environ if env is None else env)
        self._routes: dict[tuple[str, str, int], ProxyRoute | None] = {}
        self._by_prefix: dict[str, tuple[tuple[str, str, int], ProxyRoute | None]] = {}
        for url in origins:
            self.route(url, credentials=True)
        self._ssl = ssl_context(http)

    def route(self, url: str, *, credentials: bool) -> ProxyRoute | None:
        """The proxy for ``url``'s origin (None: direct). With ``credentials``, a plain
        http:// origin through a proxy is refused (the proxy would read them)."""
        # Cached by the URL's text up to its path ("scheme://authority"): parsing every
        # URL for its origin cost ~9 % of the loop's time per request (py-spy).
        end = url.find("/", url.find("//") + 2)
        prefix = url if end < 0 else url[:end]
        hit = self._by_prefix.get(prefix)
        if hit is None:
            key = origin(url)
            if key not in self._routes:
                self._routes[key] = self._proxies.route(*key)
            if len(self._by_prefix) >= 4096:
                self._by_prefix.clear()
            hit = self._by_prefix[prefix] = (key, self._routes[key])
        key, found = hit
        if found is not None and key[0] == "http" and credentials:
            raise ConfigError(
                f"{key[0]}://{key[1]}:{key[2]} would go through the proxy {found.url} (from "
                f"{found.source}) in clear text, and the proxy would read the Authorization "
                "and Signature headers: use an https:// base_url, or add the host to NO_PROXY")
        return found

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=self._limit_per_host, ttl_dns_cache=300,
            enable_cleanup_closed=False, ssl=self._ssl,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._http.connect_timeout_s,
            sock_read=self._http.read_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False,
            # trust_env=False: aiohttp would read netrc (and clash with our Authorization)
            # and go direct for a proxy it does not support; proxy.py decides instead.
            raise_for_status=False, trust_env=False, headers={"User-Agent": USER_AGENT},
            # No cookies: the API needs none, and a jar would carry one origin's cookies
            # to another across a redirect followed in "strip" mode.
            cookie_jar=aiohttp.DummyCookieJar(),
            # The .zip is served as application/gzip; never let a proxy/encoding layer touch it.
            skip_auto_headers=("Accept-Encoding",),
            # Buffer up to 1 MiB per connection before pausing the socket (default 64 KiB:
            # a large body paused and resumed reading every 128 KiB).
            read_bufsize=READ_BUFSIZE,
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def get(self, url: str, headers: Mapping[str, str],
                  secrets: Iterable[str] = ()) -> AsyncIterator[Reply]:
        """GET ``url``, following redirects by our rules; yields the final response open.
        Its text is scrubbed of the headers' credentials and of ``secrets``."""
        assert self._session is not None, "use 'async with Client(...)'"
        current, sent = url, dict(headers)
        seen = {url}
        for _ in range(self._http.max_redirects + 1):
            secret = any(k in sent for k in CREDENTIAL_HEADERS)
            try:
                via = self.route(current, credentials=secret)
                proxy_headers = dict(via.headers) if via else None
                # forwarded, not tunnelled: aiohttp sends proxy_headers only with CONNECT
                forwarded = via is not None and not current.startswith("https:")
                resp = await self._session.get(
                    URL(current, encoded=True), allow_redirects=False,
                    headers={**sent, **via.headers} if via and forwarded else sent,
                    proxy=via.url if via else None, proxy_headers=proxy_headers,
                )
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                # ValueError: a URL or header aiohttp will not send (fails this file only)
                raise translate(exc, current) from exc
            if resp.status in REDIRECTS:
                location = resp.headers.get("Location")
                resp.release()
                current, sent = self._next_hop(current, location, sent, seen, url)
                continue
            try:
                length = resp.headers.get("Content-Length")
                yield Reply(
                    status=resp.status, url=current, headers=resp.headers,
                    content_length=int(length) if length and length.isdigit() else None,
                    _resp=resp, _headers=headers, _extra=tuple(secrets),
                )
            finally:
                resp.release()
            return
        raise RedirectError(f"more than {self._http.max_redirects} redirects for "
                            f"{urlsplit(url).path}")

    def _next_hop(
        self, current: str, location: str | None, sent: dict[str, str], seen: set[str],
        first: str,
    ) -> tuple[str, dict[str, str]]:
        path = urlsplit(first).path
        if not location:
            raise RedirectError(f"redirect without Location for {path}")
        try:  # a bad port or IPv6 literal raises ValueError: one file fails, not the run
            target = urljoin(current, location)
            parts = urlsplit(target)
            there = origin(target)
        except ValueError:
            raise RedirectError(f"redirect to an invalid URL for {path}") from None
        if parts.scheme not in ("http", "https"):
            raise RedirectError(f"redirect to a non-http URL for {path}")
        if parts.username is not None or parts.password is not None:
            # aiohttp would turn them into an Authorization header (or refuse ours)
            raise RedirectError(f"redirect with credentials in the URL refused for {path}")
        if target in seen:
            raise RedirectError(f"redirect loop for {path}")
        seen.add(target)
        here = origin(current)
        if here[0] == "https" and there[0] == "http":
            raise RedirectError(f"redirect from https to http refused for {path}")
        if here != there:
            if self._http.cross_origin_redirects != "strip":
                raise RedirectError(f"redirect to another origin ({there[1]}) refused for {path}")
            sent = {k: v for k, v in sent.items() if k not in CREDENTIAL_HEADERS}
        return target, sent


def ssl_context(http: HttpSettings) -> ssl.SSLContext | bool:
    """The one SSL context of a run: only ``http.ca_bundle``'s CAs, or ``True`` — the
    system's, in the verifying context aiohttp made when it was imported, which parses
    the system's CA file at its first handshake (:mod:`backfill.trust`); making another
    would parse it again: ~20 ms."""
    if http.ca_bundle is None:
        return True
    cafile = str(http.ca_bundle)
    try:
        return ssl.create_default_context(cafile=cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"[http] ca_bundle: {cafile}: not a usable PEM file of CA "
                          f"certificates ({type(exc).__name__})") from None
