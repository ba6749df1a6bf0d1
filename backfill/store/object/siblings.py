"""The manifests beside this run's in an object store: the main one and every shard's.

A run without ``--shard`` keeps ``<prefix>/manifest.jsonl``; ``--shard I/N`` keeps
``<prefix>/manifest.shard-I-of-N.jsonl``, each with its own lock object (remote.py), so
shards on machines that share no disk never wait for each other. Every reader needs the
others too (the merged view, :mod:`backfill.shards.view`):

    names = await manifest_names(dest)            # the manifests and locks under the prefix
    check_apart(names, locks, own, now)           # a shard run and a plain run exclude each other
    await pull(dest, names, into)                 # private copies, read as one merged view

Only the objects directly under the prefix are listed (one request: report files live in
folders below it), and the copies go to a private folder, never beside a local journal
(a sibling shard on the same machine journals there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

import anyio.to_thread

from ...errors import LockedError
from ...shards.assign import Shard
from ...shards.naming import is_shard_manifest, shard_manifest
from .backend import KeyMissing
from .destination import ObjectRequests
from .remote import MANIFEST_NAME, LockInfo, RemoteManifest

LOCK_SUFFIX = ".lock"


def own_name(shard: Shard | None) -> str:
    """The name under the prefix of the manifest a run keeps."""
    return MANIFEST_NAME if shard is None else shard_manifest(PurePosixPath(MANIFEST_NAME),
                                                              shard).name


def is_manifest(name: str) -> bool:
    return name == MANIFEST_NAME or is_shard_manifest(MANIFEST_NAME, name) is not None


@dataclass(slots=True)
class Listing:
    """The manifests (by name) and the lock objects (by their manifest's name) found."""

    manifests: list[str] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)


def sort_names(names: Iterable[str]) -> Listing:
    """Manifest and lock names among ``names`` (other objects ignored); main first, then
    shards by count and index. Pure."""
    out = Listing()
    for name in names:
        if is_manifest(name):
            out.manifests.append(name)
        elif name.endswith(LOCK_SUFFIX) and is_manifest(name[: -len(LOCK_SUFFIX)]):
            out.locks.append(name[: -len(LOCK_SUFFIX)])

    def order(n: str) -> tuple[int, int, int]:
        s = is_shard_manifest(MANIFEST_NAME, n)
        return (0, 0, 0) if s is None else (1, s.count, s.index)

    out.manifests.sort(key=order)
    out.locks.sort(key=order)
    return out


async def manifest_names(dest: ObjectRequests) -> Listing:
    """The manifests and lock objects directly under the destination's prefix."""
    ob, store, prefix = dest._ob, dest.store, dest.url.prefix or None
    result = await dest._call("list", lambda: ob.list_with_delimiter_async(store, prefix))
    return sort_names(PurePosixPath(meta["path"]).name for meta in result["objects"])


async def live_locks(dest: ObjectRequests, names: Iterable[str], now: datetime,
                     ) -> dict[str, LockInfo]:
    """The lock objects of the manifests ``names`` that are held (not expired) now."""
    live: dict[str, LockInfo] = {}
    for name in names:
        info = await _lock_info(dest, dest.url.key(name + LOCK_SUFFIX))
        if info is not None and info.expires > now:
            live[name] = info
    return live


async def _lock_info(dest: ObjectRequests, key: str) -> LockInfo | None:
    try:
        got = await dest._call(key, lambda: dest._ob.get_async(dest.store, key))
        return LockInfo.from_json(bytes(await got.bytes_async()))
    except KeyMissing:  # released meanwhile: not held
        return None


def check_apart(live: dict[str, LockInfo], own: str, uri: str) -> None:
    """LockedError when a run without --shard and a shard run would overlap: ``live`` are
    the held locks (by manifest name), ``own`` this run's manifest name, ``uri`` the
    destination. Pure."""
    if own == MANIFEST_NAME:
        held = [(n, i) for n, i in live.items() if n != own]
        if held:
            name, info = held[0]
            shard = is_shard_manifest(MANIFEST_NAME, name)
            raise LockedError(f"{uri}/{name}: shard {shard} is running (pid {info.pid} on "
                              f"{info.host}); a run without --shard starts when the shard "
                              f"runs have ended ({len(held)} running)")
    elif MANIFEST_NAME in live:
        info = live[MANIFEST_NAME]
        raise LockedError(f"{uri}/{MANIFEST_NAME} is in use by a run without --shard (pid "
                          f"{info.pid} on {info.host}); shard runs start when it has ended")


async def pull(dest: ObjectRequests, names: Iterable[str], into: Path) -> list[Path]:
    """Copy the manifests ``names`` into the folder ``into`` (made here) under their own
    names; the copies made (a manifest deleted meanwhile is skipped)."""
    await anyio.to_thread.run_sync(lambda: into.mkdir(mode=0o700, parents=True, exist_ok=True))
    pulled = []
    for name in names:
        local = into / name
        if await RemoteManifest(dest, name=name).pull(local):
            pulled.append(local)
    return pulled
