"""Faults on the way to the object store: an outage mid-run, kill -9 and SIGINT mid-upload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import obstore
import pytest

from backfill.store.object import DestinationUnavailable

from . import emulators as emu
from .helpers import MIB, chunks, destination, zip_body

pytestmark = pytest.mark.anyio


@pytest.fixture
def outage(moto: emu.Emulator) -> Iterator[emu.Outage]:
    relay = emu.Outage(moto.port)
    yield relay
    relay.close()


async def test_store_going_down_mid_run_never_completes_a_file(
        s3_env: dict[str, str], outage: emu.Outage, staging_root: Path) -> None:
    env = {**s3_env, "AWS_ENDPOINT_URL": outage.endpoint}
    dest = destination(f"s3://{s3_env['BUCKET']}/p", env, staging_root, retry_timeout=1.0)
    first = zip_body(10 * 1024)
    await dest.save("a.zip", chunks(first), expected_length=None)
    big = zip_body(12 * MIB)
    staged = await dest.receive("b.zip", chunks(big), expected_length=None)
    outage.down()
    with pytest.raises(DestinationUnavailable) as info:
        await dest.commit(staged)
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
    outage.up()  # back: the same file goes through, nothing half-done is in the way
    stored = await dest.save("b.zip", chunks(big), expected_length=None)
    assert not stored.adopted
    assert await dest.verify("b.zip", sha256=stored.sha256, size=stored.bytes) is None
    await dest.sweep_temporary()  # what the outage left behind, as the next run would
    objs = await obstore.list(dest.store).collect_async()
    assert sorted(o["path"] for o in objs) == ["p/a.zip", "p/b.zip"]


UPLOADER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from tests.cloud.helpers import chunks, destination, zip_body

    async def body():
        data = zip_body(64 * 1024 * 1024)
        async for c in chunks(data, 1024 * 1024):
            yield c

    async def main():
        env = dict(arg.split("=", 1) for arg in sys.argv[2:])
        dest = destination(sys.argv[1], env, Path(env["STAGING"]), part_size=5 * 2**20)
        staged = await dest.receive("big.zip", body(), expected_length=None)
        print("staged", flush=True)
        await dest.commit(staged)
        print("done", flush=True)

    asyncio.run(main())
""")


REPO = Path(__file__).resolve().parents[2]


def _upload_and_kill(url: str, env: dict[str, str], sig: signal.Signals) -> None:
    """Run UPLOADER, send ``sig`` once its upload starts, check it did not finish."""
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, url,
                             *(f"{k}={v}" for k, v in env.items())],
                            stdout=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"staged\n"  # the upload is starting now
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    assert b"done" not in out, "the upload finished before the signal: make it bigger"
    assert proc.returncode != 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
async def test_killed_mid_upload_leaves_no_object_and_resumes_cleanly(
        s3_env: dict[str, str], tmp_path: Path, sig: signal.Signals) -> None:
    url = f"s3://{s3_env['BUCKET']}/p"
    env = {**s3_env, "STAGING": str(tmp_path / "staging")}
    await anyio.to_thread.run_sync(_upload_and_kill, url, env, sig)
    dest = destination(url, env, tmp_path / "staging")
    assert await dest.head("p/big.zip") is None  # nothing at the final key
    await dest.sweep()  # the next run, under the lock: temporary objects and staged files
    objs = await obstore.list(dest.store).collect_async()
    assert objs == []
    runs = [p for p in (tmp_path / "staging").iterdir() if p != dest.staging.run_dir]
    assert runs == []
