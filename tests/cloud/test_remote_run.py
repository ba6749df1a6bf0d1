"""A run's life against the object store: a cron container with no disk resumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backfill.errors import LockedError
from backfill.store.object import BucketMissing, RemoteManifest
from backfill.store.object.session import RemoteRun

from .helpers import destination

pytestmark = pytest.mark.anyio


async def test_a_container_without_disk_resumes_from_the_last_checkpoint(
        cloud_env: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = cloud_env
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    ttl = timedelta(minutes=5)

    def remote_for(dest: object) -> RemoteManifest:
        return RemoteManifest(dest, ttl=ttl, now=lambda: clock[0])  # type: ignore[arg-type]

    dest1 = destination(url, env, tmp_path / "container1")
    run1 = await RemoteRun(dest1, remote_for(dest1)).__aenter__()
    run1.local_manifest.write_text('{"key": "a", "status": "completed"}\n')
    await run1.checkpoint()
    run1.local_manifest.write_text('{"key": "a"}\n{"key": "b-not-checkpointed"}\n')
    # container 1 dies here: no publish, no release; its disk is gone with it

    dest2 = destination(url, env, tmp_path / "container2")
    with pytest.raises(LockedError):
        await RemoteRun(dest2, remote_for(dest2)).__aenter__()
    clock[0] += ttl * 2  # the dead run's lock expires
    async with RemoteRun(dest2, remote_for(dest2)) as run2:
        assert run2.local_manifest.read_text() == '{"key": "a", "status": "completed"}\n'
        with run2.local_manifest.open("a") as f:
            f.write('{"key": "c"}\n')
    async with RemoteRun.read_only(destination(url, env, tmp_path / "status")) as local:
        assert local is not None
        assert local.read_text().splitlines()[-1] == '{"key": "c"}'
    assert not (tmp_path / "container2" / run2.dest.staging.run_dir.name).exists()


async def test_a_missing_bucket_stops_before_the_lock(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    dest = destination("s3://does-not-exist-here/p", s3_env, tmp_path / "s")
    with pytest.raises(BucketMissing):
        async with RemoteRun(dest):
            raise AssertionError("not reached")
