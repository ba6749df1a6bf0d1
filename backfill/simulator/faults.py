"""Fault injection: what goes wrong with one request, decided from a hash.

Every decision is a pure function of (seed, app id, file name, attempt number of that file),
never of a shared RNG, so a run against the same seed fails the same way whatever the
interleaving of its requests. :class:`Faults` is a plain mutable dataclass that the server
reads on every request: tests change it while the server runs.

A fault is an ``int`` (answer with that HTTP status) or one of :data:`KINDS`:

    reset           headers + half the body, then a TCP RST
    truncate        Content-Length declared, half the body sent, then FIN
    truncate_close  no Content-Length (Connection: close), half the body, then FIN:
                    looks complete to the client; only validating the zip catches it
    html / json     200 with an HTML / JSON body instead of the zip
    corrupt         200, right length, 16 bytes flipped in the middle (CRC mismatch)
    stall_headers   sleep ``stall_s`` before answering, then answer normally
    stall_body      send half, sleep ``stall_s``, send the rest
    drip            one byte every ``drip_interval_s``
    close           close the connection without any answer
    too_large       serve a body of ``too_large_bytes``
    redirect        302 to the same path at ``redirect_to`` (another origin)
    redirect_loop   302 to the same URL on this server, forever
"""

from __future__ import annotations

import email.utils
import hashlib
import math
import time
from dataclasses import dataclass, field, fields
from typing import Final

KINDS: Final = (
    "reset", "truncate", "truncate_close", "html", "json", "corrupt", "stall_headers",
    "stall_body", "drip", "close", "too_large", "redirect", "redirect_loop",
)
Fault = int | str

# Order in which rates are stacked on the unit interval (see :func:`choose`).
RATE_FIELDS: Final = (
    ("rate_429", 429), ("rate_500", 500), ("rate_502", 502), ("rate_503", 503),
    *((f"rate_{k}", k) for k in KINDS),
)
_RATE_NAMES: Final = frozenset(name for name, _ in RATE_FIELDS)


@dataclass(slots=True)
class FirstN:
    """Fail the first ``n`` attempts at ``filename`` (of ``app_id``, or of any app)."""

    filename: str
    n: int
    fault: Fault = 503
    app_id: str | None = None

    def __post_init__(self) -> None:
        check_fault(self.fault)


@dataclass(slots=True)
class Faults:
    """Knobs read on every request. Rates are probabilities in [0, 1], summed ≤ 1.

    Also the file catalogue's knobs (sizes, the boundary day, today's generation), so one
    object changes everything a test may want to change at run time.
    """

    latency_s: float = 0.0  # added to every request
    jitter_s: float = 0.0  # plus a uniform [0, jitter_s), from the hash
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_502: float = 0.0
    rate_503: float = 0.0
    rate_reset: float = 0.0
    rate_truncate: float = 0.0
    rate_truncate_close: float = 0.0
    rate_html: float = 0.0
    rate_json: float = 0.0
    rate_corrupt: float = 0.0
    rate_stall_headers: float = 0.0
    rate_stall_body: float = 0.0
    rate_drip: float = 0.0
    rate_close: float = 0.0
    rate_too_large: float = 0.0
    rate_redirect: float = 0.0
    rate_redirect_loop: float = 0.0
    first_n: list[FirstN] = field(default_factory=list)
    retry_after_s: float | None = 1.0  # on 429; None: no Retry-After header
    retry_after_date: bool = False  # send Retry-After as an HTTP date, not seconds
    stall_s: float = 5.0
    drip_interval_s: float = 0.5
    too_large_bytes: int = 64 * 1024 * 1024
    redirect_to: str | None = None  # base URL of the other origin; None: this server
    redirect_target_auth: bool = False  # redirect targets need credentials (like presigned: no)
    rate_limit: float | None = None  # requests/s per workspace (token bucket); None: off
    rate_limit_by_app: dict[str, float] = field(default_factory=dict)
    rate_burst: float | None = None  # bucket size; None: max(1, rate)
    missing_rate: float = 0.0  # files that do not exist (campaign did not run): 400
    boundary_available: bool = False  # a 7-day-old file is still served
    today_generated: bool = True  # today's file exists already
    size: int = 10 * 1024  # body size in bytes
    sizes: dict[str, int] = field(default_factory=dict)  # per file name
    # Kept true iff some rate is > 0 (see __setattr__): the hot path tests one flag
    # instead of reading every rate field on each request.
    any_rate: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._update_any_rate()

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name in _RATE_NAMES:
            self._update_any_rate()

    def _update_any_rate(self) -> None:
        active = any(getattr(self, n, 0.0) > 0 for n in _RATE_NAMES)
        object.__setattr__(self, "any_rate", active)

    def size_of(self, filename: str) -> int:
        return self.sizes.get(filename, self.size)

    def rates(self) -> list[tuple[float, Fault]]:
        return [(float(getattr(self, name)), fault) for name, fault in RATE_FIELDS]

    def total_rate(self) -> float:
        return sum(r for r, _ in self.rates())

    def retry_after(self, seconds: float | None = None) -> str | None:
        """The Retry-After value for a 429 (``seconds`` overrides the configured delay)."""
        if self.retry_after_s is None:
            return None
        delay = self.retry_after_s if seconds is None else seconds
        if self.retry_after_date:
            return email.utils.formatdate(time.time() + delay, usegmt=True)
        return str(max(0, math.ceil(delay)))


def check_fault(fault: Fault) -> Fault:
    if isinstance(fault, int):
        if not 100 <= fault <= 599:
            raise ValueError(f"fault status {fault} is not an HTTP status")
    elif fault not in KINDS:
        raise ValueError(f"unknown fault {fault!r} (an HTTP status or one of {', '.join(KINDS)})")
    return fault


def unit(seed: int, app_id: str, filename: str, attempt: int, salt: str) -> float:
    """A uniform number in [0, 1) from the hash of the arguments."""
    key = f"{seed}|{app_id}|{filename}|{attempt}|{salt}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64


def choose(faults: Faults, seed: int, app_id: str, filename: str, attempt: int) -> Fault | None:
    """The fault for attempt ``attempt`` (1-based) at a file, or None.

    ``first_n`` rules win; otherwise one hash is laid on the stacked rates in
    :data:`RATE_FIELDS` order, so faults exclude each other and rates add up.
    """
    for rule in faults.first_n:
        if rule.filename == filename and rule.app_id in (None, app_id) and attempt <= rule.n:
            return rule.fault
    if not faults.any_rate:
        return None
    rates = faults.rates()
    u = unit(seed, app_id, filename, attempt, "fault")
    edge = 0.0
    for rate, fault in rates:
        edge += rate
        if u < edge:
            return fault
    return None


def latency(faults: Faults, seed: int, app_id: str, filename: str, attempt: int) -> float:
    if not faults.jitter_s:
        return faults.latency_s
    return faults.latency_s + faults.jitter_s * unit(seed, app_id, filename, attempt, "jitter")


def missing(faults: Faults, seed: int, app_id: str, filename: str) -> bool:
    """Whether the file does not exist at all: the same answer on every attempt."""
    return faults.missing_rate > 0 and unit(seed, app_id, filename, 0, "missing") < (
        faults.missing_rate
    )


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` returns the wait if empty."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def take(self, now: float) -> float:
        """0.0 and one token taken, or the seconds until a token is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def rate_fields() -> list[str]:
    """Names of the rate fields (for the CLI)."""
    return [f.name for f in fields(Faults) if f.name.startswith("rate_") and f.name not in (
        "rate_limit", "rate_limit_by_app", "rate_burst")]
