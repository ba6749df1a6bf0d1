from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from backfill.cli.logs import EventLog, Redactor, secrets_of, setup
from backfill.config import parse_config
from backfill.events import FileFinished, HostPaused
from backfill.journal import Status
from backfill.signing import signature


def test_redactor_scrubs_keys_tokens_and_header_shapes() -> None:
    token = base64.b64encode(b"APP:s3cr3t-key").decode()
    sig = signature("APP", "f.zip", "other-secret")
    r = Redactor(["s3cr3t-key", token, "other-secret"])
    text = r.scrub(f"key=s3cr3t-key auth=Basic {token} 'Signature': '{sig}' other-secret")
    for secret in ("s3cr3t-key", token, "other-secret", sig):
        assert secret not in text
    # header shapes are scrubbed even for values we were not told about
    unknown = base64.b64encode(b"X:unknown").decode()
    assert unknown not in r.scrub(f"Authorization: Basic {unknown}")
    assert "a" * 64 not in r.scrub("Signature=" + "a" * 64)


def test_secrets_of_covers_every_credential(tmp_path: Path) -> None:
    cfg = parse_config({"workspace": [
        {"app_id": "A", "api_key": "key-a", "reports": ["r"]},
        {"app_id": "B", "api_key": "key-b", "secret_key": "sec-b", "reports": ["r"]}]},
        tmp_path / "c.toml")
    found = set(secrets_of(cfg))
    assert {"key-a", "key-b", "sec-b", base64.b64encode(b"A:key-a").decode()} <= found


def test_json_log_file_has_one_object_per_line(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "run.jsonl"
    logger = setup(verbose=1, log_file=log_file, fmt="json", secrets=["hunter22"])
    try:
        events = EventLog(logger)
        events(FileFinished("w", "f.zip", Status.FAILED, 0, 6, "auth hunter22", True))
        events(HostPaused("http://h:80", 5))
    finally:
        for h in logger.handlers:
            h.close()
        logger.handlers.clear()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [d["event"] for d in lines] == ["file", "host_paused"]
    assert lines[0]["status"] == "failed" and lines[0]["level"] == "warning"
    assert "hunter22" not in log_file.read_text()


def test_unwritable_log_file_is_a_clear_error(tmp_path: Path) -> None:
    from backfill.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="--log-file"):
        setup(log_file=blocker / "x.log")
    logging.getLogger("backfill").handlers.clear()
