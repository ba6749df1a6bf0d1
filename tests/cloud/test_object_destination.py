"""ObjectDestination against moto (S3) and Azurite (Azure) on 127.0.0.1."""

from __future__ import annotations

import hashlib
from pathlib import Path

import obstore
import pytest

from backfill.errors import InvalidBody, StorageError
from backfill.store.object import (
    AccessDenied,
    BucketMissing,
    DestinationUnavailable,
    ObjectConflict,
)

from .emulators import free_port
from .helpers import MIB, chunks, destination, zip_body

pytestmark = pytest.mark.anyio
SIZES = [10 * 1024, 1 * MIB, 12 * MIB]  # in memory, one PUT; staged, one PUT; multipart + copy


async def keys(dest: object) -> list[str]:
    objs = await obstore.list(dest.store).collect_async()  # type: ignore[attr-defined]
    return sorted(o["path"] for o in objs)


@pytest.mark.parametrize("size", SIZES)
async def test_stores_the_bytes_and_records_uri_size_sha256(
        cloud_env: tuple[str, dict[str, str]], staging_root: Path, size: int) -> None:
    url, env = cloud_env
    dest = destination(url, env, staging_root)
    body = zip_body(size)
    stored = await dest.save("ws/2024-01-01/r.zip", chunks(body), expected_length=len(body))
    assert stored.uri == f"{url}/ws/2024-01-01/r.zip"
    assert (stored.bytes, stored.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert not stored.adopted
    got = await obstore.get_async(dest.store, stored.key)
    assert bytes(await got.bytes_async()) == body
    assert await keys(dest) == ["landing/ws/2024-01-01/r.zip"]  # no temporary object left
    assert await dest.verify("ws/2024-01-01/r.zip", sha256=stored.sha256, size=len(body)) is None
    assert list(dest.staging.run_dir.iterdir()) == []  # staged body removed


@pytest.mark.parametrize("size", SIZES)
async def test_same_bytes_adopted_other_bytes_never_overwritten(
        cloud_env: tuple[str, dict[str, str]], staging_root: Path, size: int) -> None:
    url, env = cloud_env
    dest = destination(url, env, staging_root)
    body = zip_body(size)
    await dest.save("r.zip", chunks(body), expected_length=None)
    again = await dest.save("r.zip", chunks(body), expected_length=None)
    assert again.adopted and again.sha256 == hashlib.sha256(body).hexdigest()
    other = zip_body(size)
    with pytest.raises(ObjectConflict, match="other bytes is already there; not overwritten"):
        await dest.save("r.zip", chunks(other), expected_length=None)
    got = await obstore.get_async(dest.store, "landing/r.zip")
    assert bytes(await got.bytes_async()) == body
    assert await keys(dest) == ["landing/r.zip"]


async def test_a_corrupted_large_upload_is_caught_and_never_published(
        cloud_env: tuple[str, dict[str, str]], staging_root: Path) -> None:
    """moto and Azurite check no checksum: our read-back of the temporary object must."""
    url, env = cloud_env
    dest = destination(url, env, staging_root)
    body = zip_body(12 * MIB)
    staged = await dest.receive("big.zip", chunks(body), expected_length=len(body))
    assert staged.path is not None
    other = zip_body(12 * MIB)  # a readable zip of the same size, other bytes: the zip
    assert len(other) == len(body)  # check passes, only the hash can tell
    staged.path.write_bytes(other)
    with pytest.raises(InvalidBody, match="differs from the body"):
        await dest.commit(staged)
    assert await keys(dest) == []


async def test_a_corrupted_small_put_is_caught_and_removed(
        cloud_env: tuple[str, dict[str, str]], staging_root: Path) -> None:
    url, env = cloud_env
    dest = destination(url, env, staging_root)
    body = zip_body(10 * 1024)
    staged = await dest.receive("small.zip", chunks(body), expected_length=len(body))
    assert staged.body is not None
    other = zip_body(10 * 1024)  # same length, other bytes: what a bit flip in memory is
    staged.body = other
    with pytest.raises(InvalidBody, match="differs from the body"):
        await dest.commit(staged)
    assert await keys(dest) == []


async def test_not_a_zip_is_refused_before_upload(
        s3_env: dict[str, str], staging_root: Path) -> None:
    dest = destination(f"s3://{s3_env['BUCKET']}/p", s3_env, staging_root)
    for body in (b"<html>oops</html>", b"PK\x03\x04" + b"\x00" * (6 * MIB)):
        with pytest.raises(InvalidBody):
            await dest.save("x.zip", chunks(body), expected_length=None)
    assert await keys(dest) == []


async def test_verify_rehashes_the_stored_object(
        cloud_env: tuple[str, dict[str, str]], staging_root: Path) -> None:
    url, env = cloud_env
    dest = destination(url, env, staging_root)
    body = zip_body(50 * 1024)
    stored = await dest.save("v.zip", chunks(body), expected_length=None)
    await obstore.put_async(dest.store, stored.key, body[:-1] + b"X")
    assert await dest.verify("v.zip", sha256=stored.sha256, size=stored.bytes) == \
        "sha256 mismatch"
    await obstore.delete_async(dest.store, stored.key)
    assert await dest.verify("v.zip", sha256=stored.sha256, size=stored.bytes) == "missing"


async def test_temporary_objects_of_a_killed_run_are_swept(
        cloud_env: tuple[str, dict[str, str]], staging_root: Path) -> None:
    url, env = cloud_env
    dest = destination(url, env, staging_root)
    await obstore.put_async(dest.store, "landing/.backfill-tmp/run-1-ab/0001", b"partial")
    await obstore.put_async(dest.store, "landing/keep.zip", b"not ours to delete")
    assert await dest.sweep_temporary() == 1
    assert await keys(dest) == ["landing/keep.zip"]


async def test_missing_bucket_is_exit_2_at_probe(
        s3_env: dict[str, str], az_env: dict[str, str], staging_root: Path) -> None:
    for url, env in ((f"s3://no-such-bucket-{free_port()}/p", s3_env), ("az://nocontainer/p",
                                                                       az_env)):
        dest = destination(url, env, staging_root)
        with pytest.raises(BucketMissing) as info:
            await dest.probe()
        assert info.value.exit_code == 2
        assert "\n" not in str(info.value)


async def test_access_denied_is_exit_2_and_never_shows_the_key(
        az_env: dict[str, str], staging_root: Path) -> None:
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    env = {**az_env, "AZURE_STORAGE_ACCOUNT_KEY": wrong}
    dest = destination(f"az://{az_env['BUCKET']}/p", env, staging_root)
    with pytest.raises(AccessDenied) as info:
        await dest.probe()
    assert info.value.exit_code == 2
    assert wrong not in str(info.value) and "<?xml" not in str(info.value)


async def test_store_down_is_unavailable_not_a_verdict(
        s3_env: dict[str, str], staging_root: Path) -> None:
    env = {**s3_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    dest = destination(f"s3://{s3_env['BUCKET']}/p", env, staging_root, retry_timeout=0.5)
    with pytest.raises(DestinationUnavailable) as info:
        await dest.probe()
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
    body = zip_body(1024)
    with pytest.raises(DestinationUnavailable):
        await dest.save("a.zip", chunks(body), expected_length=None)


async def test_a_destination_opened_before_a_fork_refuses_to_work(
        s3_env: dict[str, str], staging_root: Path) -> None:
    dest = destination(f"s3://{s3_env['BUCKET']}/p", s3_env, staging_root)
    dest._pid = -1  # what a forked child sees: another pid than the one that opened it
    with pytest.raises(StorageError, match="opened before a fork"):
        await dest.probe()
