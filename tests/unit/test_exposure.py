"""A literal key in a config others can read draws one warning (ssh refuses such a key
file; we say so and run); ``${VAR}`` references or mode 0600 draw none."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from backfill import exposure
from backfill.cli import main
from backfill.exposure import exposure_warning, literal_keys

TOML = """\
[run]
start = "-1d"
end = "today"
output_dir = "out"
[defaults]
base_url = "http://127.0.0.1:9"
reports = ["Daily campaign summary"]
[[workspace]]
name = "acme"
app_id = "ACME01"
api_key = "{key}"
"""


def test_literal_keys() -> None:
    raw = {"defaults": {"api_key": "${K}"},
           "workspace": [{"name": "a", "api_key": "inline-KEY", "secret_key": "${S}"},
                         {"app_id": "B", "secret_key": "also-inline"}]}
    assert literal_keys(raw) == ["[[workspace]] a api_key", "[[workspace]] B secret_key"]
    assert exposure_warning(Path("c.toml"), 0o100600, raw, [0o40755]) is None
    assert exposure_warning(Path("c.toml"), 0o100644, raw, [0o40700, 0o40755]) is None
    warning = exposure_warning(Path("c.toml"), 0o100644, raw, [0o40755, 0o41777])
    assert warning and "mode 0644" in warning and "chmod 600" in warning
    assert "inline-KEY" not in warning  # the key itself is never shown


@pytest.mark.parametrize(("shared", "key", "warned"), [
    (True, "literal-key-123", True), (False, "literal-key-123", False),
    (True, "${MOE_T_EXPOSURE_KEY}", False),
])
def test_run_warns_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: bool,
                        key: str, warned: bool) -> None:
    """``shared``: the folders let others through (here /tmp itself is 0700, so that is
    what readable_by_others is told; its rule is tested above)."""
    monkeypatch.setenv("MOE_T_EXPOSURE_KEY", "from-env")
    real = exposure.readable_by_others
    monkeypatch.setattr(exposure, "readable_by_others",
                        lambda mode, folders: real(mode, [0o40755] if shared else folders))
    path = tmp_path / "backfill.toml"
    path.write_text(TOML.format(key=key))
    os.chmod(path, 0o644)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(path), "--dry-run", "--today", "2026-11-27"])
    assert code == 0
    lines = [ln for ln in err.getvalue().splitlines() if "readable by others" in ln]
    assert len(lines) == (1 if warned else 0)
    assert "literal-key-123" not in err.getvalue()
