"""Where and as whom to connect: each cloud's standard environment, then ``[storage]``.

Pure: takes the environment as a mapping (and the AWS shared-credentials profile already
read, see :mod:`.backend`) and returns what to hand obstore, or a ConfigError naming the
variable or key that is missing or wrong. Credentials come only from the environment
(and the files it names); ``[storage]`` overrides where to connect, never as whom.

    S3     AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN], or AWS_PROFILE
           (~/.aws/credentials), or a web-identity / container role; AWS_REGION
           (AWS_DEFAULT_REGION), AWS_ENDPOINT_URL (AWS_ENDPOINT_URL_S3)
    GCS    GOOGLE_APPLICATION_CREDENTIALS (a service-account JSON file) or
           GOOGLE_SERVICE_ACCOUNT_KEY
    Azure  AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with
           AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN or a service principal
           (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID); AZURE_STORAGE_ENDPOINT

An ``http://`` endpoint (an emulator) is refused unless allowed explicitly: AWS_ALLOW_HTTP,
GOOGLE_ALLOW_HTTP or AZURE_ALLOW_HTTP = true (obstore's convention) or ``[storage]
allow_http = true``. ``[storage] instance_credentials = true`` lets the cloud SDK find
credentials on its own (EC2/ECS/GKE/Azure managed identity) when no variable is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...destination import (
    DEFAULT_PART_SIZE,
    DEFAULT_RETRY_TIMEOUT,
    STORAGE_KEYS,
    ObjectURL,
    StorageOptions,
    parse_storage_table,
)
from ...errors import ConfigError

__all__ = ["DEFAULT_PART_SIZE", "DEFAULT_RETRY_TIMEOUT", "STORAGE_KEYS", "Connection",
           "StorageOptions", "parse_storage_table", "resolve"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_ALLOW_HTTP = {"s3": "AWS_ALLOW_HTTP", "gcs": "GOOGLE_ALLOW_HTTP", "azure": "AZURE_ALLOW_HTTP"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """What :mod:`.backend` hands obstore. ``secrets`` are the values to scrub from any
    message; ``where`` is a secret-free description for messages."""

    url: ObjectURL
    config: dict[str, Any] = field(repr=False)
    client_options: dict[str, Any]
    options: StorageOptions
    secrets: tuple[str, ...] = field(repr=False)
    where: str


def resolve(url: ObjectURL, env: Mapping[str, str], options: StorageOptions,
            aws_profile: Mapping[str, str] | None = None) -> Connection:
    """The connection for ``url`` from ``env`` and ``options``; ConfigError if a credential
    or setting is missing (naming the variable) or an http endpoint is not allowed."""
    if url.cloud == "s3":
        config, secrets, endpoint = _s3(url, env, options, aws_profile or {})
    elif url.cloud == "gcs":
        config, secrets, endpoint = _gcs(env, options)
    else:
        config, secrets, endpoint = _azure(url, env, options)
    client: dict[str, Any] = {"timeout": "120s", "connect_timeout": "10s"}
    if endpoint is not None and endpoint.lower().startswith("http://"):
        allowed = options.allow_http
        if allowed is None:
            allowed = env.get(_ALLOW_HTTP[url.cloud], "").strip().lower() in _TRUE
            allowed = allowed or config.pop("_emulator", False)
        if not allowed:
            raise ConfigError(f"{url}: endpoint {endpoint} is plain http; set "
                              f"{_ALLOW_HTTP[url.cloud]}=true or [storage] allow_http = true "
                              "to allow it (emulators only)")
        client["allow_http"] = True
    config.pop("_emulator", None)
    where = f"{url}" + (f" at {endpoint}" if endpoint else "")
    return Connection(url=url, config=config, client_options=client, options=options,
                      secrets=tuple(s for s in secrets if s), where=where)


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _s3(url: ObjectURL, env: Mapping[str, str], options: StorageOptions,
        profile: Mapping[str, str]) -> tuple[dict[str, Any], list[str], str | None]:
    key_id = _first(env, "AWS_ACCESS_KEY_ID") or profile.get("aws_access_key_id")
    secret = _first(env, "AWS_SECRET_ACCESS_KEY") or profile.get("aws_secret_access_key")
    token = _first(env, "AWS_SESSION_TOKEN") or profile.get("aws_session_token")
    config: dict[str, Any] = {"bucket": url.bucket, "checksum_algorithm": "SHA256",
                              "copy_if_not_exists": "multipart", "conditional_put": "etag"}
    if key_id and not secret:
        raise ConfigError(f"{url}: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
    if secret and not key_id:
        raise ConfigError(f"{url}: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
    role = _first(env, "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if key_id and secret:
        config.update(access_key_id=key_id, secret_access_key=secret)
        if token:
            config["session_token"] = token
    elif not role and not options.instance_credentials:
        profile_name = _first(env, "AWS_PROFILE")
        hint = f" (profile {profile_name!r} has no keys)" if profile_name else ""
        raise ConfigError(f"{url}: no AWS credentials{hint}: set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or [storage] "
                          "instance_credentials = true to use the instance's role")
    region = (options.region or _first(env, "AWS_REGION", "AWS_DEFAULT_REGION")
              or profile.get("region") or "us-east-1")
    config["region"] = region
    endpoint = options.endpoint or _first(env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL",
                                          "AWS_ENDPOINT")
    if endpoint:
        config["endpoint"] = endpoint
    return config, [key_id or "", secret or "", token or ""], endpoint


def _gcs(env: Mapping[str, str], options: StorageOptions,
         ) -> tuple[dict[str, Any], list[str], str | None]:
    config: dict[str, Any] = {}
    path = _first(env, "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT",
                  "GOOGLE_SERVICE_ACCOUNT_PATH")
    key = _first(env, "GOOGLE_SERVICE_ACCOUNT_KEY")
    secrets: list[str] = []
    if path:
        config["application_credentials"] = path
    elif key:
        config["service_account_key"] = key
        secrets.append(key)
    elif not options.instance_credentials:
        raise ConfigError("no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a "
                          "service-account key file, or [storage] instance_credentials = "
                          "true to use the instance's service account")
    endpoint = options.endpoint or _first(env, "GOOGLE_BASE_URL")
    if endpoint:
        config["base_url"] = endpoint
    return config, secrets, endpoint


def parse_connection_string(text: str) -> dict[str, str]:
    """``Key=Value;Key=Value`` as a dict with lower-case keys (values may hold '=')."""
    pairs = (item.partition("=") for item in text.split(";") if item.strip())
    return {k.strip().lower(): v.strip() for k, sep, v in pairs if sep}


_AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBH"
                "BeksoGMGw==")  # the emulator's published development key, not a secret


def _azure(url: ObjectURL, env: Mapping[str, str], options: StorageOptions,
           ) -> tuple[dict[str, Any], list[str], str | None]:
    conn = parse_connection_string(_first(env, "AZURE_STORAGE_CONNECTION_STRING") or "")
    config: dict[str, Any] = {"container_name": url.bucket}
    if conn.get("usedevelopmentstorage", "").lower() == "true":
        conn.setdefault("accountname", "devstoreaccount1")
        conn.setdefault("accountkey", _AZURITE_KEY)
        conn.setdefault("blobendpoint", "http://127.0.0.1:10000/devstoreaccount1")
        config["_emulator"] = True
    account = (conn.get("accountname") or url.account
               or _first(env, "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"))
    if not account:
        raise ConfigError(f"{url}: no Azure account: set AZURE_STORAGE_ACCOUNT_NAME "
                          "(or AZURE_STORAGE_CONNECTION_STRING)")
    config["account_name"] = account
    key = conn.get("accountkey") or _first(env, "AZURE_STORAGE_ACCOUNT_KEY",
                                           "AZURE_STORAGE_ACCESS_KEY")
    sas = conn.get("sharedaccesssignature") or _first(env, "AZURE_STORAGE_SAS_TOKEN",
                                                      "AZURE_STORAGE_SAS_KEY")
    client_id = _first(env, "AZURE_STORAGE_CLIENT_ID", "AZURE_CLIENT_ID")
    client_secret = _first(env, "AZURE_STORAGE_CLIENT_SECRET", "AZURE_CLIENT_SECRET")
    tenant = _first(env, "AZURE_STORAGE_TENANT_ID", "AZURE_TENANT_ID")
    federated = _first(env, "AZURE_FEDERATED_TOKEN_FILE")
    if key:
        config["account_key"] = key
    elif sas:
        config["sas_key"] = sas.lstrip("?")
    elif client_id and client_secret and tenant:
        config.update(client_id=client_id, client_secret=client_secret, tenant_id=tenant)
    elif not (federated and client_id) and not options.instance_credentials:
        raise ConfigError(f"{url}: no Azure credentials: set AZURE_STORAGE_ACCOUNT_KEY (or "
                          "AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING, or "
                          "AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID), or [storage] "
                          "instance_credentials = true for a managed identity")
    endpoint = (options.endpoint or conn.get("blobendpoint")
                or _first(env, "AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"))
    if endpoint:
        config["endpoint"] = endpoint.rstrip("/")
    secrets = [key or "", sas or "", client_secret or "", sas.lstrip("?") if sas else ""]
    return config, secrets, endpoint
