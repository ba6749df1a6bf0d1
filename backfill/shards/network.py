"""The submitting command's network settings, carried to the Dask workers that run its
shards: the CA bundle it trusts (``--cacert`` or ``[http] ca_bundle``) and its proxy
variables. Pure, but for :func:`ca_file` (a private temporary file on the worker).

- The CA bundle travels as its PEM *content* (public certificates, no secret), so a
  worker on another machine needs no copy of the file.
- Proxy variables (``https_proxy``, ``NO_PROXY``, …) travel when their value carries no
  credentials. One with ``user:password@`` is never put in the task: only its *name*
  travels, and the worker uses its own value of that variable (as it does for API keys);
  a worker without it fails its shard with exit 2 naming the variable.
- When the submitting command sets no proxy variable at all, the workers keep their own
  proxy environment (a cluster may need a proxy the submitting machine does not).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import HttpSettings

PROXY_VARS: Final = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                     "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass(frozen=True, slots=True)
class Network:
    """What a shard task carries about the network; never a secret value."""

    ca_pem: str | None = None
    proxy_env: Mapping[str, str] = field(default_factory=dict)  # values without credentials
    proxy_names: tuple[str, ...] = ()  # variables whose value the worker has itself

    @property
    def sets_proxies(self) -> bool:
        return bool(self.proxy_env or self.proxy_names)


def has_credentials(url: str) -> bool:
    """True when a proxy URL carries ``user[:password]@`` (an unparsable one counts)."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        return parts.username is not None or parts.password is not None
    except ValueError:
        return True


def capture(http: HttpSettings, env: Mapping[str, str]) -> Network:
    """The submitting command's settings: ``http`` (after ``--cacert``) and ``env``.
    ConfigError naming the file when the CA bundle cannot be read."""
    pem = None
    if http.ca_bundle is not None:
        try:
            pem = Path(http.ca_bundle).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{http.ca_bundle}: cannot read the CA bundle "
                              f"({getattr(exc, 'strerror', None) or type(exc).__name__})"
                              ) from None
    plain = {n: env[n] for n in PROXY_VARS if n in env and not _secret(n, env[n])}
    names = tuple(n for n in PROXY_VARS if n in env and _secret(n, env[n]))
    return Network(pem, plain, names)


def _secret(name: str, value: str) -> bool:
    return not name.lower().startswith("no_") and has_credentials(value)


def worker_env(net: Network, own: Mapping[str, str]) -> Mapping[str, str]:
    """The proxy environment a worker's shard runs with (``own``: the worker's). ConfigError
    naming a variable with credentials that the worker does not have."""
    if not net.sets_proxies:
        return own
    env = dict(net.proxy_env)
    for name in net.proxy_names:
        value = own.get(name)
        if value is None:
            raise ConfigError(f"{name}: the submitting command's proxy has credentials, "
                              "which are not sent to Dask workers; set it in each "
                              "worker's environment")
        env[name] = value
    return env


@contextlib.contextmanager
def ca_file(net: Network) -> Iterator[Path | None]:
    """The carried CA bundle as a private file on this worker (removed on exit)."""
    if net.ca_pem is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="moe-backfill-ca-"))  # 0700, this user's
    try:
        path = folder / "ca.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(net.ca_pem)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
