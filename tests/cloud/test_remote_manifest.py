"""The manifest beside the data and the lock object, against moto and Azurite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import obstore
import pytest

from backfill.errors import LockedError
from backfill.store.object import RemoteManifest

from .helpers import destination

pytestmark = pytest.mark.anyio


async def test_publish_then_pull_in_a_fresh_container(
        cloud_env: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = cloud_env
    remote = RemoteManifest(destination(url, env, tmp_path / "s1"))
    local = tmp_path / "run1.jsonl"
    assert await remote.pull(local) is False and not local.exists()
    await remote.acquire()
    local.write_text('{"v": 1}\n{"key": "a"}\n')
    await remote.publish(local)
    await remote.release()
    fresh = tmp_path / "fresh" / "manifest.jsonl"  # a cron container with an empty disk
    fresh.parent.mkdir()
    again = RemoteManifest(destination(url, env, tmp_path / "s2"))
    assert await again.pull(fresh) is True
    assert fresh.read_text() == '{"v": 1}\n{"key": "a"}\n'
    assert [p.name for p in fresh.parent.iterdir()] == ["manifest.jsonl"]


async def test_lock_stops_a_second_run_until_it_expires(
        cloud_env: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = cloud_env
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [now]
    first = RemoteManifest(destination(url, env, tmp_path / "a"), ttl=timedelta(minutes=10),
                           now=lambda: clock[0])
    second = RemoteManifest(destination(url, env, tmp_path / "b"), ttl=timedelta(minutes=10),
                            now=lambda: clock[0])
    held = await first.acquire()
    with pytest.raises(LockedError, match=f"locked by pid {held.pid} on {held.host}") as info:
        await second.acquire()
    assert info.value.exit_code == 75
    await first.renew()  # still ours
    clock[0] = now + timedelta(minutes=30)  # the first run died: its lock expired
    await second.acquire()
    with pytest.raises(LockedError, match="taken over"):
        await first.renew()  # the old holder learns it at its next checkpoint ...
    with pytest.raises(LockedError):
        await first.publish(tmp_path / "never-read")  # ... and never publishes over it
    await first.release()  # not ours any more: left alone
    assert await obstore.head_async(second.dest.store, second.lock_key)
    await second.release()
    with pytest.raises(FileNotFoundError):
        await obstore.head_async(second.dest.store, second.lock_key)
