"""One request for one file: the signed GET, and the body handed to the store.

:class:`Exchange` is the engine's only contact with the HTTP client and the store's
``receive``; the fetch loop sees its result as a value: a body received (not yet
committed), the parts of a non-200 reply, or the error that ended the request.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Protocol

import anyio

from ..client import Client
from ..clock import Clock
from ..errors import RemoteError, RequestTimeout
from ..policy import HttpReply
from ..store import Received, Store

Sent = Received | HttpReply | RemoteError


class Send(Protocol):
    """What the fetch loop calls for one attempt (an :class:`Exchange`, or a test's fake)."""

    async def __call__(
        self, url: str, headers: dict[str, str], rel: PurePosixPath, filename: str
    ) -> Sent: ...


class Exchange:
    """GET ``url``; a 200's body goes to ``store.receive``; all within ``file_timeout_s``
    of ``clock``'s time for the whole file. The engine passes a real clock: the deadline
    bounds real network time, which a faster test clock must not shorten."""

    def __init__(self, client: Client, store: Store, file_timeout_s: float,
                 clock: Clock | None = None, secrets: tuple[str, ...] = ()) -> None:
        self._client = client
        self._store = store
        self._deadline = file_timeout_s
        self._clock = clock or Clock()
        # scrubbed from the server's text with the headers' own: the secret keys are never
        # sent, but the server knows them
        self._secrets = secrets

    async def __call__(
        self, url: str, headers: dict[str, str], rel: PurePosixPath, filename: str
    ) -> Sent:
        deadline = self._deadline
        try:
            with anyio.fail_after(self._clock.real(deadline)):
                async with self._client.get(url, headers, self._secrets) as reply:
                    if reply.status == 200:
                        return await self._store.receive(
                            rel, reply.chunks(), expected_length=reply.content_length)
                    message = request_id = None
                    if 400 <= reply.status < 500:
                        message, request_id = await reply.error_detail()
                    return HttpReply(reply.status, reply.headers.get("Retry-After"), message,
                                     request_id)
        except TimeoutError:
            return RequestTimeout(f"no complete response within {deadline:g} s for {filename}")
        except RemoteError as exc:
            return exc
