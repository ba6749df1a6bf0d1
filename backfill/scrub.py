"""Scrubbing secrets out of text: pure, no I/O.

A server may echo what it was sent — the API key, the ``Authorization`` token, the
``Signature`` — in an error body. Every string a server provides is scrubbed at the
client boundary (:mod:`backfill.client`), before it can reach a manifest record, a
summary, ``--json`` or a message; the log :class:`~backfill.logs.Redactor` uses the same
function as a second line of defence.

What counts as a secret of one request (:func:`request_secrets`): the ``Authorization``
value and its Basic token, the password inside the token (the API key), the ``Signature``,
plus whatever the caller adds (the secret key, which is never sent). Each is replaced by
``***`` wherever it appears — as sent, in any letter case (a hex signature upper-cased),
and percent-encoded — and anything shaped like an ``Authorization: Basic …`` or
``Signature: <64 hex>`` header value is masked whatever it holds.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

MASK = "***"
MIN_SECRET = 4  # shorter strings would mask ordinary words
_HEADERISH = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?basic\s+)[A-Za-z0-9+/=]+"
    r"|(signature['\"]?\s*[:=]\s*['\"]?)[0-9a-f]{64}"
)


def request_secrets(headers: Mapping[str, str], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The secret strings of one request: from its headers and ``extra``, longest first."""
    found = {s for s in extra if s}
    auth = headers.get("Authorization", "")
    if auth:
        found.add(auth)
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "basic" and token:
            found.add(token)
            try:
                user_pass = base64.b64decode(token, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                user_pass = ""
            if ":" in user_pass:
                found.add(user_pass.partition(":")[2])
    signature = headers.get("Signature", "")
    if signature:
        found.add(signature)
    return tuple(sorted((s for s in found if len(s) >= MIN_SECRET), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (as sent, any case, percent-encoded) and every
    header-shaped credential replaced by ``***``."""
    for secret in secrets:
        for form in {secret, quote(secret, safe="")}:
            if form.lower() in text.lower():
                text = re.sub(re.escape(form), MASK, text, flags=re.IGNORECASE)
    return _HEADERISH.sub(lambda m: (m.group(1) or m.group(2)) + MASK, text)
