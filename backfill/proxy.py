"""Which proxy a request goes through. Pure: the environment is passed in, nothing is sent.

The rules are urllib's (``getproxies()`` / ``proxy_bypass()``), which pip and requests
follow, with the gaps curl fills:

    source                         rule
    ─────────────────────────────  ─────────────────────────────────────────────────────
    ``[http] proxy`` in the config  used for every origin (``""``: never a proxy)
    ``https_proxy``/``HTTPS_PROXY``  for https:// origins; lower case wins over upper case,
    ``http_proxy``/``HTTP_PROXY``     a set-but-empty lower-case name turns the proxy off,
                                      ``HTTP_PROXY`` is ignored under CGI (REQUEST_METHOD)
    ``all_proxy``/``ALL_PROXY``      when the scheme has none
    ``no_proxy``/``NO_PROXY``        comma/space separated: ``*``, host names (a leading
                                      ``.`` or ``*.`` is optional; subdomains match), a
                                      ``:port`` suffix, IP addresses and CIDR ranges; any
                                      loopback entry (``localhost``, ``127.0.0.1``,
                                      ``::1``) matches every loopback host

A proxy URL without a scheme is ``http://``. Only ``http://`` proxies are supported
(the request to an https:// origin is still TLS end to end, through ``CONNECT``); any
other scheme is refused with a :class:`ConfigError` instead of silently going direct.
``user:password@`` in a proxy URL becomes a ``Proxy-Authorization`` header for the
proxy; it is never shown (:meth:`ProxyRoute.__repr__` and messages mask it).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .errors import ConfigError

SUPPORTED_SCHEMES = frozenset({"http"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """Send through ``url`` (no credentials in it) with ``headers`` for the proxy only."""

    url: str
    source: str  # where it came from: "[http] proxy", "HTTPS_PROXY", ...
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        auth = ", with credentials" if self.headers else ""
        return f"ProxyRoute({self.url!r} from {self.source}{auth})"


def masked(url: str) -> str:
    """A proxy URL fit for a message: a password becomes ``***``."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{unquote(parts.username or '')}:***@{host}"


def parse_proxy(url: str, source: str) -> ProxyRoute:
    """Check a proxy URL and split its credentials off; ConfigError names ``source``."""
    text = url.strip()
    where = f"{source}={masked(text)!r}"
    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"proxy {where}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise ConfigError(
            f"proxy {where}: {scheme}:// proxies are not supported, only http:// "
            "(requests to https:// origins stay TLS end to end through CONNECT); "
            "refusing to go direct instead")
    if not parts.hostname:
        raise ConfigError(f"proxy {where}: no host name")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    headers: dict[str, str] = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return ProxyRoute(f"http://{host}:{port or 80}", source, headers)


def proxies_from_env(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """scheme → (proxy URL, variable name), as ``urllib.request.getproxies_environment``."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in env.items():  # first pass: any case
        if value and name.lower().endswith("_proxy") and name.lower() != "no_proxy":
            found[name.lower()[:-6]] = (value, name)
    if "REQUEST_METHOD" in env:  # CGI: HTTP_PROXY may come from a client's Proxy: header
        found.pop("http", None)
    for name, value in env.items():  # second pass: lower case wins, empty turns off
        if name.endswith("_proxy") and name == name.lower() and name != "no_proxy":
            if value:
                found[name[:-6]] = (value, name)
            else:
                found.pop(name[:-6], None)
    return found


def no_proxy_entries(env: Mapping[str, str]) -> tuple[str, ...]:
    """The ``no_proxy`` entries (lower case wins over ``NO_PROXY``), lower-cased."""
    raw = env.get("no_proxy", env.get("NO_PROXY", ""))
    return tuple(e for e in raw.replace(",", " ").lower().split() if e)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    ip = _ip(host)
    if ip is not None:
        return ip.is_loopback
    return host in _LOOPBACK_NAMES or host.endswith(".localhost")


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None  # a bare IPv6 address or a plain name


def bypassed(host: str, port: int, entries: tuple[str, ...]) -> bool:
    """Whether ``host:port`` is excluded from proxying by ``no_proxy`` ``entries``."""
    host = host.lower().strip("[]").rstrip(".")
    ip = _ip(host)
    for entry in entries:
        if entry == "*":
            return True
        name, want_port = _split_port(entry.lower())
        if want_port is not None and want_port != port:
            continue
        name = name.removeprefix("*").lstrip(".").rstrip(".")
        if not name:
            continue
        if _is_loopback(name) and _is_loopback(host):
            return True
        if ip is not None and "/" in name:
            try:
                if ip in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


class ProxyTable:
    """The proxy decision for a whole run, made once from the config and the environment.

    Every proxy that could be used is checked when the table is made, so an unsupported
    one stops the run before the first request (exit 2) rather than being skipped.
    """

    def __init__(self, configured: str | None, env: Mapping[str, str]) -> None:
        self._entries = no_proxy_entries(env)
        self._routes: dict[str, ProxyRoute | None] = {}
        if configured is not None:
            route = parse_proxy(configured, "[http] proxy") if configured.strip() else None
            self._routes = {"http": route, "https": route}
            return
        found = proxies_from_env(env)
        fallback = found.get("all")
        for scheme in ("http", "https"):
            value = found.get(scheme, fallback)
            self._routes[scheme] = parse_proxy(*value) if value else None

    def route(self, scheme: str, host: str, port: int) -> ProxyRoute | None:
        """The proxy for an origin, or None for a direct connection."""
        route = self._routes.get(scheme.lower())
        if route is None or bypassed(host, port, self._entries):
            return None
        return route
