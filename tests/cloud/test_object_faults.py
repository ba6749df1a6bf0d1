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
    import signal, sys
    from pathlib import Path
    import anyio
    from tests.cloud.helpers import chunks, destination, zip_body

    async def body():
        data = zip_body(64 * 1024 * 1024)
        async for c in chunks(data, 1024 * 1024):
            yield c

    async def upload(scope):
        # SIGINT as the CLI takes it: a signal receiver that cancels the work's scope
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            env = dict(arg.split("=", 1) for arg in sys.argv[2:])
            dest = destination(sys.argv[1], env, Path(env["STAGING"]),
                               part_size=5 * 2**20)
            staged = await dest.receive("big.zip", body(), expected_length=None)
            print("staged", flush=True)
            async with anyio.create_task_group() as tg:
                async def watch():
                    async for _ in signals:
                        print("interrupted", flush=True)
                        scope.cancel()
                tg.start_soon(watch)
                await dest.commit(staged)
                print("done", flush=True)
                tg.cancel_scope.cancel()

    async def main():
        with anyio.CancelScope() as scope:
            await upload(scope)
        sys.exit(130 if scope.cancelled_caught else 0)

    anyio.run(main)
""")


REPO = Path(__file__).resolve().parents[2]


def _upload_and_kill(url: str, env: dict[str, str], relay: emu.Outage,
                     sig: signal.Signals) -> None:
    """Run UPLOADER through ``relay``; once the relay holds back part of the upload (so it
    has started and cannot finish), send ``sig``; check the upload did not finish."""
    stalled = relay.stall_after(8 * MIB)  # the create, the first 5 MiB part, some more
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, url,
                             *(f"{k}={v}" for k, v in env.items())],
                            stdout=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"staged\n"
        assert stalled.wait(60), "the upload never reached the relay"
        proc.send_signal(sig)
        if sig == signal.SIGINT:  # taken (the scope cancelled) before the upload may go on
            assert proc.stdout.readline() == b"interrupted\n"
        relay.release()  # a shielded clean-up of the interrupted run needs the store
        out = proc.communicate(timeout=60)[0]
    finally:
        relay.release()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"done" not in out
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
async def test_killed_mid_upload_leaves_no_object_and_resumes_cleanly(
        s3_env: dict[str, str], outage: emu.Outage, tmp_path: Path,
        sig: signal.Signals) -> None:
    url = f"s3://{s3_env['BUCKET']}/p"
    env = {**s3_env, "STAGING": str(tmp_path / "staging"), "AWS_ENDPOINT_URL": outage.endpoint}
    await anyio.to_thread.run_sync(_upload_and_kill, url, env, outage, sig)
    dest = destination(url, env, tmp_path / "staging")
    assert await dest.head("p/big.zip") is None  # nothing at the final key
    await dest.sweep()  # the next run, under the lock: temporary objects and staged files
    objs = await obstore.list(dest.store).collect_async()
    assert objs == []
    runs = [p for p in (tmp_path / "staging").iterdir() if p != dest.staging.run_dir]
    assert runs == []
