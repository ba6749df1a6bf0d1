"""Shared helpers: configs built in code, pointed at a simulator on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import trustme

from backfill.config import Config, parse_config
from backfill.journal import Record, Status, load_manifest

TODAY = date(2026, 11, 27)
REPORTS = ["Daily campaign summary", "Email - delivery (EU)"]
# The three workspaces of make_config's default, for tests that write TOML by hand.
WORKSPACES_TOML = """\
[[workspace]]
name = "acme"
app_id = "ACME01"
timezone = "Europe/Berlin"

[[workspace]]
name = "globex"
app_id = "GLOBEX7"
timezone = "America/New_York"
secret_key = "globex-secret"

[[workspace]]
name = "initech"
app_id = "INITECH3"
timezone = "Asia/Kolkata"
"""


# Fast retries, the test key, the simulator's address (a str.format field) and those
# workspaces: the tail of every hand-written CLI test config.
SIMULATED_TOML = """\
[retry]
backoff_base_s = 0.01
backoff_max_s = 0.05

[defaults]
api_key = "test-key"
base_url = "{base_url}"
reports = ["Daily campaign summary", "Email - delivery (EU)"]

""" + WORKSPACES_TOML


def make_config(tmp: Path, workspaces: Sequence[dict[str, Any]] | None = None,
                **sections: dict[str, Any]) -> Config:
    """A config whose files go under ``tmp/out``; fast retries unless overridden."""
    doc: dict[str, Any] = {
        "run": {"start": "-9d", "end": "today", "output_dir": "out", "concurrency": 8},
        "retry": {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "probe_interval_s": 0.05,
                  "probe_interval_max_s": 0.2},
        "http": {"connect_timeout_s": 2, "read_timeout_s": 2, "file_timeout_s": 10},
        "defaults": {"api_key": "test-key", "reports": REPORTS},
        "workspace": list(workspaces or [
            {"name": "acme", "app_id": "ACME01", "timezone": "Europe/Berlin"},
            {"name": "globex", "app_id": "GLOBEX7", "timezone": "America/New_York",
             "secret_key": "globex-secret"},
            {"name": "initech", "app_id": "INITECH3", "timezone": "Asia/Kolkata"},
        ]),
    }
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return parse_config(doc, tmp / "backfill.toml")


def pointed_at(config: Config, base_url: str) -> Config:
    return dataclasses.replace(config, workspaces=tuple(
        dataclasses.replace(ws, base_url=base_url) for ws in config.workspaces))


def manifest_records(config: Config) -> list[Record]:
    return list(load_manifest(config.run.output_dir / "manifest.jsonl"))


def by_status(records: Sequence[Record]) -> dict[Status, int]:
    out: dict[Status, int] = {}
    for r in records:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def write_toml(path: Path, config_doc: str) -> Path:
    path.write_text(config_doc)
    return path


# A throw-away CA and the simulator's server context under it (the TLS tests).
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx
