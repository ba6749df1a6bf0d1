"""Fixtures: moto and Azurite per test session, a fresh bucket/container per test, and
the environment a run would have (credentials, endpoint, AWS_ALLOW_HTTP)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import emulators as emu

_names = itertools.count()


@pytest.fixture(scope="session")
def moto() -> Iterator[emu.Emulator]:
    yield from emu.running(emu.start_moto())


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emu.Emulator]:
    yield from emu.running(emu.start_azurite(tmp_path_factory.mktemp("azurite")))


@pytest.fixture
def s3_env(moto: emu.Emulator) -> dict[str, str]:
    """A fresh bucket; the environment that reaches it. ``BUCKET`` names it (test-only)."""
    bucket = f"bkt-{next(_names)}"
    emu.s3_create_bucket(moto.endpoint, bucket)
    return {"AWS_ACCESS_KEY_ID": "AKIDTESTKEY123", "AWS_SECRET_ACCESS_KEY": "s3cr3t-test-key-xyz",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ALLOW_HTTP": "true", "BUCKET": bucket, "HOME": "/nonexistent"}


@pytest.fixture
def az_env(azurite: emu.Emulator) -> dict[str, str]:
    """A fresh container; the environment that reaches it. ``BUCKET`` names it."""
    container = f"cont-{next(_names)}"
    emu.azure_create_container(azurite.endpoint, container)
    return {"AZURE_STORAGE_ACCOUNT_NAME": emu.AZURITE_ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": emu.AZURITE_KEY,
            "AZURE_STORAGE_ENDPOINT": f"{azurite.endpoint}/{emu.AZURITE_ACCOUNT}",
            "AZURE_ALLOW_HTTP": "true", "BUCKET": container}


@pytest.fixture(params=["s3", "azure"])
def cloud_env(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """Each emulated cloud in turn: (destination URL, environment)."""
    if request.param == "s3":
        env = request.getfixturevalue("s3_env")
        return f"s3://{env['BUCKET']}/landing", env
    env = request.getfixturevalue("az_env")
    return f"az://{env['BUCKET']}/landing", env


@pytest.fixture
def staging_root(tmp_path: Path) -> Path:
    return tmp_path / "staging"
