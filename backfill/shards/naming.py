"""Shard manifest names: ``manifest.jsonl`` → ``manifest.shard-2-of-8.jsonl``, beside it.
Pure; no I/O. A main manifest not ending in ``.jsonl`` gets the suffix appended
(``journal`` → ``journal.shard-2-of-8``)."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Final, TypeVar

from .assign import Shard

SUFFIX: Final = ".jsonl"
P = TypeVar("P", bound=PurePath)


def _stem_and_ext(name: str) -> tuple[str, str]:
    return (name[: -len(SUFFIX)], SUFFIX) if name.endswith(SUFFIX) else (name, "")


def shard_manifest(main: P, shard: Shard) -> P:
    """The manifest of ``shard``, in the directory of the ``main`` manifest."""
    stem, ext = _stem_and_ext(main.name)
    return main.with_name(f"{stem}.shard-{shard.index}-of-{shard.count}{ext}")


def _pattern(main_name: str) -> re.Pattern[str]:
    stem, ext = _stem_and_ext(main_name)
    return re.compile(re.escape(stem) + r"\.shard-(0|[1-9][0-9]*)-of-([1-9][0-9]*)"
                      + re.escape(ext))


def is_shard_manifest(main_name: str, name: str) -> Shard | None:
    """The Shard whose manifest (beside a main manifest called ``main_name``) is ``name``,
    or None (other files, lock files and temporary files are not shard manifests)."""
    m = _pattern(main_name).fullmatch(name)
    if m is None:
        return None
    index, count = int(m[1]), int(m[2])
    if index >= count:
        return None
    try:
        return Shard(index, count)
    except ValueError:
        return None
