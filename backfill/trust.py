"""aiohttp imported without parsing the system's CA file at import time.

``aiohttp.connector`` makes two SSL contexts when it is imported (the verifying one that
``ssl=True`` uses, and one for ``ssl=False``), and each reads and parses the system's CA
bundle: ~35 ms of CPU, about a seventh of the tool's start-up (issue 18), paid by a plain
http:// run too. The ``ssl=False`` one is never used by this tool.

While :func:`deferred_default_trust` is active, every context made with
``ssl.SSLContext(...)`` is a :class:`DeferredTrustContext`: ``set_default_verify_paths()``
(what ``create_default_context()`` and aiohttp call) is noted, and done at the context's
first use — a handshake, or a look at its store. It trusts exactly what it would have
trusted, read then rather than at import. Contexts made at any other time are untouched.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCK = threading.Lock()


class DeferredTrustContext(ssl.SSLContext):
    """An SSLContext that loads the default verify paths at its first use, not when asked."""

    _deferred = False

    def set_default_verify_paths(self) -> None:
        """Noted; done before the first handshake or look at the store."""
        self._deferred = True

    def _load(self) -> None:
        if self._deferred:
            with _LOCK:
                if self._deferred:
                    super().set_default_verify_paths()
                    self._deferred = False

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load()
        return super().wrap_bio(*args, **kwargs)

    def cert_store_stats(self) -> dict[str, int]:
        self._load()
        return super().cert_store_stats()

    def get_ca_certs(self, *args: Any, **kwargs: Any) -> Any:
        self._load()
        return super().get_ca_certs(*args, **kwargs)


@contextmanager
def deferred_default_trust() -> Iterator[None]:
    """While active, ``ssl.SSLContext(...)`` makes a :class:`DeferredTrustContext`."""
    original = ssl.SSLContext.__dict__["__new__"]
    make = original.__func__

    def new(cls: type[ssl.SSLContext], *args: Any, **kwargs: Any) -> ssl.SSLContext:
        context: ssl.SSLContext = make(DeferredTrustContext if cls is ssl.SSLContext else cls,
                                       *args, **kwargs)
        return context

    ssl.SSLContext.__new__ = staticmethod(new)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        ssl.SSLContext.__new__ = original  # type: ignore[method-assign]
