"""Credentials and endpoints from the environment: pure, no obstore, no network."""

from __future__ import annotations

from typing import Any

import pytest

from backfill.errors import ConfigError
from backfill.store.object.backend import read_aws_profile, scrub
from backfill.store.object.settings import (
    StorageOptions,
    parse_connection_string,
    parse_storage_table,
    resolve,
)
from backfill.store.object.url import parse_object_url

S3 = parse_object_url("s3://bkt/p")
GS = parse_object_url("gs://bkt/p")
AZ = parse_object_url("az://cont/p")
KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIsecret"}


def test_s3_from_environment() -> None:
    conn = resolve(S3, {**KEYS, "AWS_SESSION_TOKEN": "tok-123", "AWS_REGION": "eu-west-1"},
                   StorageOptions())
    assert conn.config["access_key_id"] == "AKIDEXAMPLE"
    assert conn.config["session_token"] == "tok-123"
    assert conn.config["region"] == "eu-west-1"
    assert conn.config["checksum_algorithm"] == "SHA256"
    assert set(conn.secrets) == {"AKIDEXAMPLE", "wJalrXUtnFEMIsecret", "tok-123"}
    assert "secret" not in repr(conn) and "wJalr" not in conn.where


@pytest.mark.parametrize(("env", "names"), [
    ({}, "AWS_ACCESS_KEY_ID"),
    ({"AWS_ACCESS_KEY_ID": "AKID"}, "AWS_SECRET_ACCESS_KEY"),
    ({"AWS_SECRET_ACCESS_KEY": "x"}, "AWS_ACCESS_KEY_ID"),
])
def test_s3_missing_credentials_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names) as info:
        resolve(S3, env, StorageOptions())
    assert info.value.exit_code == 2


def test_s3_instance_role_or_web_identity_needs_no_keys() -> None:
    resolve(S3, {}, StorageOptions(instance_credentials=True))
    resolve(S3, {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token"}, StorageOptions())


def test_http_endpoint_only_when_allowed() -> None:
    env = {**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
    with pytest.raises(ConfigError, match="AWS_ALLOW_HTTP=true"):
        resolve(S3, env, StorageOptions())
    assert resolve(S3, {**env, "AWS_ALLOW_HTTP": "true"}, StorageOptions()).client_options[
        "allow_http"] is True
    assert resolve(S3, env, StorageOptions(allow_http=True)).config["endpoint"].startswith("http:")
    https = resolve(S3, {**KEYS, "AWS_ENDPOINT_URL": "https://minio.local"}, StorageOptions())
    assert "allow_http" not in https.client_options


def test_storage_table_overrides_where_not_who() -> None:
    opts = parse_storage_table({"endpoint": "https://s3.example", "region": "ap-south-1",
                                "retry_timeout": 5, "part_size": 16 * 1024 * 1024})
    conn = resolve(S3, {**KEYS, "AWS_REGION": "eu-west-1"}, opts)
    assert conn.config["endpoint"] == "https://s3.example"
    assert conn.config["region"] == "ap-south-1"
    with pytest.raises(ConfigError) as info:
        parse_storage_table({"secret_access_key": "x", "allow_http": "yes", "part_size": 10})
    assert [p.split(":")[0] for p in info.value.problems] == [
        "[storage] secret_access_key", "[storage] allow_http", "[storage] part_size"]


def test_aws_profile_is_read_from_the_shared_files(tmp_path: Any) -> None:
    (tmp_path / "credentials").write_text(
        "[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profsecret\n")
    (tmp_path / "config").write_text("[profile ci]\nregion = sa-east-1\n")
    env = {"AWS_PROFILE": "ci", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
           "AWS_CONFIG_FILE": str(tmp_path / "config")}
    conn = resolve(S3, env, StorageOptions(), read_aws_profile(env))
    assert conn.config["access_key_id"] == "AKIDPROFILE"
    assert conn.config["region"] == "sa-east-1"
    with pytest.raises(ConfigError, match="profile 'other' has no keys"):
        env2 = {**env, "AWS_PROFILE": "other"}
        resolve(S3, env2, StorageOptions(), read_aws_profile(env2))


def test_gcs_credentials(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        resolve(GS, {}, StorageOptions())
    conn = resolve(GS, {"GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json"}, StorageOptions())
    assert conn.config == {"application_credentials": "/keys/sa.json"}
    assert resolve(GS, {"GOOGLE_SERVICE_ACCOUNT_KEY": "{json}"}, StorageOptions()).secrets == (
        "{json}",)
    with pytest.raises(ConfigError, match="GOOGLE_ALLOW_HTTP"):
        resolve(GS, {"GOOGLE_APPLICATION_CREDENTIALS": "x"},
                StorageOptions(endpoint="http://127.0.0.1:4443"))


def test_azure_credentials() -> None:
    with pytest.raises(ConfigError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        resolve(AZ, {}, StorageOptions())
    with pytest.raises(ConfigError, match="AZURE_STORAGE_ACCOUNT_KEY"):
        resolve(AZ, {"AZURE_STORAGE_ACCOUNT_NAME": "acct"}, StorageOptions())
    conn = resolve(AZ, {"AZURE_STORAGE_ACCOUNT_NAME": "acct",
                        "AZURE_STORAGE_SAS_TOKEN": "?sv=2020&sig=SIGNATURE"}, StorageOptions())
    assert conn.config["sas_key"] == "sv=2020&sig=SIGNATURE"
    cs = ("DefaultEndpointsProtocol=https;AccountName=acct2;AccountKey=a2V5PT0=;"
          "EndpointSuffix=core.windows.net")
    conn = resolve(AZ, {"AZURE_STORAGE_CONNECTION_STRING": cs}, StorageOptions())
    assert (conn.config["account_name"], conn.config["account_key"]) == ("acct2", "a2V5PT0=")
    dev = resolve(AZ, {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"},
                  StorageOptions())
    assert dev.client_options["allow_http"] is True  # the emulator, asked for explicitly
    assert parse_connection_string("A=b==;;C=d") == {"a": "b==", "c": "d"}


def test_scrub_removes_secrets_signatures_and_echoed_bodies() -> None:
    message = ("Error performing PUT http://h:1/c/k?sv=1&sig=abcd in 5ms - Server returned "
               "non-2xx status code: 403 Forbidden: <?xml version='1.0'?><Error>AKIDEXAMPLE"
               "</Error>")
    text = scrub(message + " key wJalrXUtnFEMIsecret", ("wJalrXUtnFEMIsecret",))
    assert "sig=abcd" not in text and "AKIDEXAMPLE" not in text and "wJalr" not in text
    assert "403 Forbidden" in text and "http://h:1/c/k?…" in text


def test_missing_obstore_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from backfill.store.object import open_destination

    monkeypatch.setitem(sys.modules, "obstore", None)  # import obstore -> ImportError
    with pytest.raises(ConfigError) as info:
        open_destination(S3, env=KEYS, max_file_bytes=1)
    assert str(info.value) == ("object-store destinations need obstore: "
                               "pip install 'moe-backfill[cloud]'")
