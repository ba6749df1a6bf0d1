"""GCS without an emulator (none installable here honours preconditions): the store is
built from a real service-account file, and its failures come back as ours, scrubbed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backfill.errors import ConfigError
from backfill.store.object import DestinationUnavailable, open_destination, parse_object_url

from .emulators import free_port

pytestmark = pytest.mark.anyio


def service_account(path: Path, token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "p", "private_key_id": "kid1",
        "private_key": pem, "client_email": "backfill@p.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri}))
    return pem


async def test_gcs_store_down_is_unavailable_and_never_shows_the_key(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    pem = service_account(tmp_path / "sa.json", f"{closed}/token")
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "sa.json"),
           "GOOGLE_BASE_URL": closed, "GOOGLE_ALLOW_HTTP": "true"}
    from backfill.store.object import StorageOptions

    dest = open_destination(parse_object_url("gs://bkt/landing"), env=env,
                            options=StorageOptions(retry_timeout=0.5), max_file_bytes=1024,
                            staging_root=tmp_path / "staging")
    with pytest.raises(DestinationUnavailable) as info:
        await dest.probe()
    text = str(info.value)
    assert text.startswith("gs://bkt/landing at http://127.0.0.1:")
    assert "\n" not in text and "PRIVATE KEY" not in text and pem[40:80] not in text


def test_gcs_unreadable_key_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "sa.json").write_text("{not json")
    with pytest.raises(ConfigError) as info:
        open_destination(parse_object_url("gs://bkt/p"),
                         env={"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "sa.json")},
                         max_file_bytes=1, staging_root=tmp_path / "s")
    assert str(info.value).startswith("gs://bkt/p: ")
    assert "service account" in str(info.value) and "Debug source" not in str(info.value)
