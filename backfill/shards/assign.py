"""Which shard a workspace belongs to, and ``--shard I/N``. Pure; no I/O.

A workspace goes to shard ``blake2b(name, 8 bytes) mod N``: the same on every machine and
Python version (unlike ``hash()``, which is salted per process), and a workspace is never
split, so its own concurrency and rate limits hold whichever shard runs it. Going from N
to M shards moves workspaces between shards; the merged manifest view (view.py) keeps
what every shard already fetched.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

MAX_SHARDS: Final = 100_000
_SPEC: Final = re.compile(r"\s*(\S+?)\s*/\s*(\S+)\s*")
# $NAME, ${NAME}, or $(NAME) as Kubernetes writes it (left as is when it cannot expand it)
_ENV_REF: Final = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\}"
                             r"|\(([A-Za-z_][A-Za-z0-9_]*)\))")


class ShardError(ValueError):
    """A bad ``--shard`` value; the message names the value."""


def shard_of(name: str, count: int) -> int:
    """The shard (0 ≤ i < count) of the workspace called ``name``."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as Kubernetes' JOB_COMPLETION_INDEX is)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ShardError(f"shard count {self.count} is out of range (1..{MAX_SHARDS})")
        if not 0 <= self.index < self.count:
            raise ShardError(f"shard index {self.index} is out of range "
                             f"(0..{self.count - 1} for {self.count} shards)")

    def owns(self, workspace_name: str) -> bool:
        return shard_of(workspace_name, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> Shard:
    """``"I/N"`` → Shard(I, N). The index may be ``$VAR``, ``${VAR}`` or ``$(VAR)`` (for
    example ``$(JOB_COMPLETION_INDEX)/8`` where nothing expanded it), read from ``env``.

    ShardError naming the value when it is malformed or out of range.
    """
    m = _SPEC.fullmatch(text)
    if m is None:
        raise ShardError(f"--shard {text!r}: expected INDEX/COUNT, e.g. 0/4")
    index_text, count_text = m[1], m[2]
    ref = _ENV_REF.fullmatch(index_text)
    if ref is not None:
        name = ref[1] or ref[2] or ref[3]
        value = (env or {}).get(name)
        if value is None:
            raise ShardError(f"--shard {text!r}: environment variable {name} is not set")
        index_text = value.strip()
    if not index_text.isdecimal() or not count_text.isdecimal():
        raise ShardError(f"--shard {text!r}: expected INDEX/COUNT as whole numbers, e.g. 0/4")
    try:
        return Shard(int(index_text), int(count_text))
    except ShardError as exc:
        raise ShardError(f"--shard {text!r}: {exc}") from None
