"""Config loading: every error is one clear line (file, table, key), exit 2, no traceback."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.cli import main
from backfill.config import (
    Config,
    DateSpec,
    Schedule,
    Secret,
    load_config,
    parse_config,
)
from backfill.errors import ConfigError

TODAY = "2026-11-27"

WS_ACME = """
[[workspace]]
name = "acme"
app_id = "ACME01"
api_key = "k-acme"
reports = ["Daily"]
"""

WS_GLOBEX = """
[[workspace]]
name = "globex"
app_id = "GLOBEX7"
api_key = "k-globex"
reports = ["Daily"]
"""


def write(tmp_path: Path, text: str, name: str = "backfill.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def plan_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``backfill <argv>``; assert exit 2, nothing on stdout, one stderr line; return it."""
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("backfill: error: ")
    return lines[0]


def config_error(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    line = plan_error(capsys, ["plan", str(path), "--today", TODAY])
    assert str(path) in line, "the message names the file"
    return line


# ----------------------------------------------------------------------- one bad key each

CASES: dict[str, tuple[str, list[str]]] = {
    "unknown run key (typo)": (
        '[run]\nconcurrancy = 8\n' + WS_ACME,
        ["[run]", "concurrancy", "unknown key", "did you mean 'concurrency'"],
    ),
    "unknown workspace key (typo)": (
        WS_ACME + 'timezon = "UTC"\n',
        ["[[workspace]] #1 (acme)", "timezon", "did you mean 'timezone'"],
    ),
    "unknown defaults key (typo)": (
        '[defaults]\ndata_centre = "02"\n' + WS_ACME,
        ["[defaults]", "data_centre", "did you mean 'data_center'"],
    ),
    "unknown top-level table": (
        '[rnu]\nstart = "today"\n' + WS_ACME,
        ["(top level)", "rnu", "did you mean 'run'"],
    ),
    "unknown key inside a report table": (
        WS_ACME.replace('["Daily"]', '[{ name = "Daily", shedule = "daily" }]'),
        ["[[workspace]] #1 (acme) reports[0]", "shedule", "did you mean 'schedule'"],
    ),
    "bad start date": (
        '[run]\nstart = "2026-13-01"\n' + WS_ACME,
        ["[run]", "start", "2026-13-01", "not a valid date"],
    ),
    "bad end date": (
        '[run]\nend = "2026-02-30"\n' + WS_ACME,
        ["[run]", "end", "2026-02-30"],
    ),
    "date in the wrong format": (
        '[run]\nstart = "27/11/2026"\n' + WS_ACME,
        ["[run]", "start", "27/11/2026", "YYYY-MM-DD"],
    ),
    "start after end (absolute)": (
        '[run]\nstart = "2026-11-27"\nend = "2026-11-20"\n' + WS_ACME,
        ["[run]", "start", "2026-11-27", "after end 2026-11-20"],
    ),
    "start after end (relative)": (
        '[run]\nstart = "today"\nend = "-3d"\n' + WS_ACME,
        ["[run]", "start", "after end"],
    ),
    "unknown data center": (
        WS_ACME + 'data_center = "07"\n',
        ["[[workspace]] #1 (acme)", "data_center", "'07'", "01, 02"],
    ),
    "unknown data center as an integer": (
        WS_ACME + "data_center = 7\n",
        ["[[workspace]] #1 (acme)", "data_center", "unknown data center 7"],
    ),
    "duplicate workspace names": (
        WS_ACME + WS_GLOBEX.replace('name = "globex"', 'name = "acme"'),
        ["[[workspace]] #2 (acme)", "name", "duplicate workspace name 'acme'", "#1"],
    ),
    "duplicate app ids": (
        WS_ACME + WS_GLOBEX.replace('"GLOBEX7"', '"ACME01"'),
        ["[[workspace]] #2 (globex)", "app_id", "duplicate app_id 'ACME01'", "#1"],
    ),
    "empty report list": (
        WS_ACME.replace('["Daily"]', "[]"),
        ["[[workspace]] #1 (acme)", "reports", "empty"],
    ),
    "no workspace at all": (
        '[run]\nstart = "-3d"\n',
        ["[[workspace]]", "no workspace configured"],
    ),
    "missing app_id": (
        WS_ACME.replace('app_id = "ACME01"\n', ""),
        ["[[workspace]] #1 (acme)", "app_id", "is required"],
    ),
    "unknown time zone": (
        WS_ACME + 'timezone = "Mars/Olympus_Mons"\n',
        ["[[workspace]] #1 (acme)", "timezone", "Mars/Olympus_Mons", "IANA"],
    ),
    "time zone that is a tzdata directory": (
        WS_ACME + 'timezone = "Europe"\n',
        ["[[workspace]] #1 (acme)", "timezone", "'Europe'"],
    ),
    "time zone name too long for the file system": (
        WS_ACME + f'timezone = "{"Z" * 300}"\n',
        ["[[workspace]] #1 (acme)", "timezone", "unknown time zone"],
    ),
    "time zone as an absolute path": (
        WS_ACME + 'timezone = "/etc/localtime"\n',
        ["[[workspace]] #1 (acme)", "timezone", "/etc/localtime"],
    ),
    "run concurrency < 1": (
        "[run]\nconcurrency = 0\n" + WS_ACME,
        ["[run]", "concurrency", "at least 1", "got 0"],
    ),
    "workspace concurrency < 1": (
        WS_ACME + "concurrency = -2\n",
        ["[[workspace]] #1 (acme)", "concurrency", "at least 1", "got -2"],
    ),
    "concurrency of the wrong type": (
        '[run]\nconcurrency = "many"\n' + WS_ACME,
        ["[run]", "concurrency", "must be an integer"],
    ),
    "unknown layout placeholder": (
        '[run]\nlayout = "{wrkspace}/{filename}"\n' + WS_ACME,
        ["[run]", "layout", "unknown placeholder {wrkspace}"],
    ),
    "malformed layout template": (
        '[run]\nlayout = "{workspace/{filename}"\n' + WS_ACME,
        ["[run]", "layout", "malformed"],
    ),
    "layout without filename": (
        '[run]\nlayout = "{workspace}/{report}"\n' + WS_ACME,
        ["[run]", "layout", "{filename}"],
    ),
    "layout that climbs out": (
        '[run]\nlayout = "../{filename}"\n' + WS_ACME,
        ["[run]", "layout", "'..'"],
    ),
    "layout that climbs out in the middle": (
        '[run]\nlayout = "{workspace}/../../{filename}"\n' + WS_ACME,
        ["[run]", "layout", "'..'"],
    ),
    "absolute layout": (
        '[run]\nlayout = "/abs/{filename}"\n' + WS_ACME,
        ["[run]", "layout", "relative"],
    ),
    "layout with a drive letter": (
        '[run]\nlayout = "C:/x/{filename}"\n' + WS_ACME,
        ["[run]", "layout", "relative"],
    ),
    "layout whose format spec truncates the file name": (
        '[run]\nlayout = "{workspace}/{filename:.0}"\n' + WS_ACME,
        ["[run]", "layout", "{filename:.0}"],
    ),
    "layout whose format spec pads a field into '..'": (
        '[run]\nlayout = "{dd:.>2.0}/{filename}"\n' + WS_ACME,
        ["[run]", "layout"],
    ),
    "layout with a conversion": (
        '[run]\nlayout = "{workspace!r}/{filename}"\n' + WS_ACME,
        ["[run]", "layout"],
    ),
    "workspace name that climbs out": (
        WS_ACME.replace('name = "acme"', 'name = "../x"'),
        ["[[workspace]] #1 (../x)", "name", "'../x'", "not usable"],
    ),
    "workspace name with a slash": (
        WS_ACME.replace('name = "acme"', 'name = "a/b"'),
        ["[[workspace]] #1 (a/b)", "name", "'a/b'"],
    ),
    "workspace name '..'": (
        WS_ACME.replace('name = "acme"', 'name = ".."'),
        ["name", "'..'"],
    ),
    "workspace name with a backslash": (
        WS_ACME.replace('name = "acme"', 'name = "a\\\\b"'),
        ["name", "not usable"],
    ),
    "app id with a slash": (
        WS_ACME.replace('"ACME01"', '"ACME/01"'),
        ["[[workspace]] #1 (acme)", "app_id", "'/'"],
    ),
    "bad schedule": (
        WS_ACME.replace('["Daily"]', '[{ name = "Weekly", schedule = "weekly:monday" }]'),
        ["[[workspace]] #1 (acme)", "reports[0].schedule", "weekly:monday", "weekly:<mon..sun>"],
    ),
    "monthly day beyond 31": (
        WS_ACME.replace('["Daily"]', '["Daily", { name = "M", schedule = "monthly:32" }]'),
        ["reports[1].schedule", "monthly:32"],
    ),
    "monthly day 0": (
        WS_ACME.replace('["Daily"]', '[{ name = "M", schedule = "monthly:0" }]'),
        ["reports[0].schedule", "monthly:0"],
    ),
    "unknown schedule kind": (
        WS_ACME.replace('["Daily"]', '[{ name = "H", schedule = "hourly" }]'),
        ["reports[0].schedule", "hourly"],
    ),
    "report table without a name": (
        WS_ACME.replace('["Daily"]', '[{ schedule = "daily" }]'),
        ["reports[0].name", "required"],
    ),
    "report listed twice": (
        WS_ACME.replace('["Daily"]', '["Daily", "Daily"]'),
        ["reports[1]", "listed twice"],
    ),
    "negative per_host": (
        "[run]\nper_host = -1\n" + WS_ACME,
        ["[run]", "per_host", "at least 0"],
    ),
    "NaN backoff": (
        "[retry]\nbackoff_base_s = nan\n" + WS_ACME,
        ["[retry]", "backoff_base_s"],
    ),
    "NaN rate": (
        WS_ACME + "rate = nan\n",
        ["[[workspace]] #1 (acme)", "rate"],
    ),
    "bad redirect policy": (
        '[http]\ncross_origin_redirects = "follow"\n' + WS_ACME,
        ["[http]", "cross_origin_redirects", "'follow'"],
    ),
    "base_url that is not a URL": (
        WS_ACME + 'base_url = "ftp://example.com"\n',
        ["[[workspace]] #1 (acme)", "base_url", "http(s) URL"],
    ),
    "report name pasted as a file name": (
        WS_ACME.replace('["Daily"]', '["Daily_campaign_summary_20261201.zip"]'),
        ["reports[0]", "is a file name", "use 'Daily_campaign_summary'"],
    ),
    "report name ending in .zip": (
        WS_ACME.replace('["Daily"]', '["Daily summary.zip"]'),
        ["reports[0]", "ends in .zip"],
    ),
    "empty api_key": (
        WS_ACME.replace('"k-acme"', '""'),
        ["[[workspace]] #1 (acme) api_key", "is empty"],
    ),
    "data center that does not exist": (
        WS_ACME + "data_center = 7\n",
        ["data_center", "unknown data center 7", "dashboard-NN"],
    ),
    "unsupported proxy scheme": (
        '[http]\nproxy = "socks5://u:hunter2@p:1080"\n' + WS_ACME,
        ["[http]", "proxy", "socks5:// proxies are not supported", "u:***@"],
    ),
    "proxy with a bad port": (
        '[http]\nproxy = "http://p:99999"\n' + WS_ACME,
        ["[http]", "proxy", "not a valid URL"],
    ),
    "ca_bundle that does not exist": (
        '[http]\nca_bundle = "corp-ca.pem"\n' + WS_ACME,
        ["[http]", "ca_bundle", "corp-ca.pem: no such file"],
    ),
    "run that is not a table": (
        'run = "fast"\n' + WS_ACME,
        ["[run]", "must be a table"],
    ),
    "output_dir with an unknown scheme": (
        '[run]\noutput_dir = "ftp://host/reports"\n' + WS_ACME,
        ["[run]", "output_dir", "unknown scheme 'ftp'"],
    ),
    "output_dir bucket that is not a bucket name": (
        '[run]\noutput_dir = "s3://B_ad!/reports"\n' + WS_ACME,
        ["[run]", "output_dir", "not a valid bucket"],
    ),
    "storage key that does not exist": (
        '[storage]\nendpoit = "http://127.0.0.1:9000"\n' + WS_ACME,
        ["[storage]", "endpoit", "unknown key"],
    ),
    "storage endpoint that is not a URL": (
        '[storage]\nendpoint = "localhost:9000"\n' + WS_ACME,
        ["[storage]", "endpoint", "http(s)://"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_config_error_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, expected = CASES[case]
    line = config_error(capsys, write(tmp_path, text))
    for part in expected:
        assert part in line, f"{part!r} missing from {line!r}"


def test_problems_inherited_from_defaults_are_reported_once_against_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[defaults]\nconcurrency = 0\n" + WS_ACME + WS_GLOBEX)
    line = config_error(capsys, path)
    assert "[defaults] concurrency" in line
    assert "workspace" not in line


def test_layout_without_workspace_is_refused_when_workspaces_would_collide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both workspaces have a report "Daily": "{filename}" alone maps both onto one path.
    layout = '[run]\nlayout = "{report}/{filename}"\n'
    line = config_error(capsys, write(tmp_path, layout + WS_ACME + WS_GLOBEX))
    assert "[run] layout" in line
    assert "{workspace}" in line
    # One workspace, or a layout that tells workspaces apart, is fine.
    assert main(["plan", str(write(tmp_path, layout + WS_ACME, "one.toml")), "--json",
                 "--today", TODAY]) == 0
    by_app = '[run]\nlayout = "{app_id}/{filename}"\n'
    assert main(["plan", str(write(tmp_path, by_app + WS_ACME + WS_GLOBEX, "app.toml")),
                 "--json", "--today", TODAY]) == 0
    capsys.readouterr()


def test_workspace_names_that_map_to_one_directory_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = WS_ACME.replace('"acme"', '"acme eu"') + WS_GLOBEX.replace('"globex"', '"acme_eu"')
    line = config_error(capsys, write(tmp_path, text))
    assert "[[workspace]] #2 (acme_eu) name" in line
    assert "'acme eu'" in line


def test_report_names_that_map_to_one_path_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = WS_ACME.replace('["Daily"]', '["Sales/EU", "Sales:EU"]')
    line = config_error(capsys, write(tmp_path, text))
    assert "reports[1]" in line
    assert "'Sales/EU'" in line


def test_malformed_toml_names_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[run]\nstart = "2026-11-20"\nend = "today\n' + WS_ACME)
    line = config_error(capsys, path)
    assert "invalid TOML" in line
    assert "line 3" in line
    assert "column" in line


def test_config_file_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.toml"
    line = config_error(capsys, path)
    assert "not found" in line


def test_config_path_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = config_error(capsys, tmp_path)
    assert "directory" in line


def test_config_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(WS_ACME.replace("acme", "acm\xe9").encode("latin-1"))
    line = config_error(capsys, path)
    assert "UTF-8" in line


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, '[run]\nconcurrancy = 1\nstart = "2026-13-01"\n'
                 + WS_ACME + 'data_center = "07"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 3
    assert all(line.startswith(f"{path}: ") for line in info.value.problems)


@pytest.mark.parametrize(
    ("argv_tail", "expected"),
    [
        (["--today", "2026-02-30"], ["--today", "2026-02-30", "YYYY-MM-DD"]),
        (["--today", "20261127"], ["--today", "20261127"]),
        (["--start", "2026-13-01"], ["--start", "2026-13-01"]),
        (["--end", "soon"], ["--end", "soon"]),
        (["--workspace", "nobody"], ["--workspace", "'nobody'", "acme"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_bad_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_tail: list[str],
    expected: list[str],
) -> None:
    path = write(tmp_path, WS_ACME)
    line = plan_error(capsys, ["plan", str(path), *argv_tail])
    for part in expected:
        assert part in line, f"{part!r} missing from {line!r}"


def test_missing_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # (bare `backfill` prints the help: test_cli_help)
    line = plan_error(capsys, ["plan"])
    assert "usage" in line and "CONFIG" in line
    assert "backfill backfill" not in line


# ----------------------------------------------------------------------- secrets and env

SECRETS_TOML = """
[[workspace]]
name = "acme"
app_id = "ACME01"
api_key = "${MOE_ACME_API_KEY}"
secret_key = "${MOE_ACME_SECRET}"
reports = ["Daily"]

[[workspace]]
name = "globex"
app_id = "GLOBEX7"
api_key = "${MOE_GLOBEX_API_KEY}"
reports = ["Daily"]
"""


def test_env_interpolation(tmp_path: Path) -> None:
    path = write(tmp_path, SECRETS_TOML.replace('"${MOE_ACME_API_KEY}"', '"pre-${A}-${B}"'))
    env = {"A": "one", "B": "two", "MOE_ACME_SECRET": "sec", "MOE_GLOBEX_API_KEY": "gk"}
    config = load_config(path, env=env)
    acme, globex = config.workspaces
    assert acme.api_key.reveal() == "pre-one-two"
    assert acme.secret_key.reveal() == "sec"
    assert globex.api_key.reveal() == "gk"


def test_missing_env_var_is_named_and_no_other_secret_is_printed(tmp_path: Path) -> None:
    path = write(tmp_path, SECRETS_TOML)
    env = {"MOE_ACME_API_KEY": "hunter2-acme", "MOE_ACME_SECRET": "s3cr3t-acme",
           "UNRELATED_TOKEN": "zzz-unrelated"}
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    message = str(info.value)
    assert info.value.problems == [
        f"{path}: [[workspace]] #2 (globex) api_key: environment variable "
        "MOE_GLOBEX_API_KEY is not set"
    ]
    for value in env.values():
        assert value not in message


def test_missing_env_var_in_defaults_is_reported_once(tmp_path: Path) -> None:
    text = ('[defaults]\napi_key = "${MOE_SHARED}"\n'
            + WS_ACME.replace('api_key = "k-acme"\n', "")
            + WS_GLOBEX.replace('api_key = "k-globex"\n', ""))
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert len(info.value.problems) == 1
    assert "[defaults] api_key" in info.value.problems[0]
    assert "MOE_SHARED" in info.value.problems[0]


def test_invalid_env_reference(tmp_path: Path) -> None:
    path = write(tmp_path, WS_ACME.replace('"k-acme"', '"${1BAD}"'))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    # in a secret, what is inside ${} may be the key itself: not shown
    assert info.value.problems == [
        f"{path}: [[workspace]] #1 (acme) api_key: '${{…}}' is not a valid environment "
        "variable reference (not shown: it does not look like a variable name, so it may be "
        "a pasted key)"
    ]


@pytest.mark.parametrize("pasted", ["AKIAIOSFODNN7EXAMPLE", "a1b2c3d4e5f6", "k_live_9x8y7z"])
def test_a_key_pasted_into_env_reference_is_never_printed(tmp_path: Path, pasted: str) -> None:
    path = write(tmp_path, WS_ACME.replace('"k-acme"', f'"${{{pasted}}}"'))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [
        f"{path}: [[workspace]] #1 (acme) api_key: the environment variable in '${{…}}' is "
        "not set (not shown: it does not look like a variable name, so it may be a pasted key)"
    ]
    assert pasted not in str(info.value)


def test_missing_api_key(tmp_path: Path) -> None:
    path = write(tmp_path, WS_ACME.replace('api_key = "k-acme"\n', ""))
    with pytest.raises(ConfigError, match=r"\(acme\) api_key: is required"):
        load_config(path, env={})


def test_plan_does_not_need_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MOE_ACME_API_KEY", "MOE_ACME_SECRET", "MOE_GLOBEX_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    path = write(tmp_path, SECRETS_TOML)
    assert main(["plan", str(path), "--today", TODAY, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert '"acme"' in out
    # ...while loading for a run does.
    with pytest.raises(ConfigError, match="MOE_ACME_API_KEY is not set"):
        load_config(path, env={})
    config = load_config(path, secrets=False)
    assert config.workspaces[0].api_key.reveal() == ""


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOE_TEST_KEY", "from-environ")
    config = load_config(write(tmp_path, WS_ACME.replace('"k-acme"', '"${MOE_TEST_KEY}"')))
    assert config.workspaces[0].api_key.reveal() == "from-environ"


def test_secrets_are_masked_in_repr(tmp_path: Path) -> None:
    env = {"MOE_ACME_API_KEY": "hunter2-api", "MOE_ACME_SECRET": "hunter2-sec",
           "MOE_GLOBEX_API_KEY": "hunter2-globex"}
    config = load_config(write(tmp_path, SECRETS_TOML), env=env)
    for text in (repr(config), str(config), repr(config.workspaces), str(config.workspaces[0]),
                 repr(config.workspaces[0].api_key), f"{config.workspaces[0].secret_key}"):
        assert "hunter2" not in text
    assert config.workspaces[0].api_key.reveal() == "hunter2-api"


def test_secret_equality_compares_values_without_showing_them() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert "a" not in repr(Secret("a")).replace("Secret", "")


# ----------------------------------------------------------------------- values

def test_defaults_are_inherited_and_overridden(tmp_path: Path) -> None:
    text = """
[defaults]
data_center = "02"
timezone = "Europe/Berlin"
concurrency = 3
rate = 2.5
reports = ["Shared report"]
api_key = "k-default"

[[workspace]]
app_id = "INHERITS"

[[workspace]]
app_id = "OVERRIDES"
name = "own"
data_center = "05"
timezone = "Asia/Singapore"
concurrency = 9
api_key = "k-own"
reports = ["Own report"]
"""
    inherits, overrides = load_config(write(tmp_path, text), env={}).workspaces
    assert inherits.name == "INHERITS"  # name defaults to app_id
    assert (inherits.data_center, inherits.timezone, inherits.concurrency) == (
        "02", "Europe/Berlin", 3)
    assert inherits.rate == 2.5
    assert [r.name for r in inherits.reports] == ["Shared report"]
    assert inherits.api_key.reveal() == "k-default"
    assert (overrides.name, overrides.data_center, overrides.timezone, overrides.concurrency) == (
        "own", "05", "Asia/Singapore", 9)
    assert [r.name for r in overrides.reports] == ["Own report"]
    assert overrides.api_key.reveal() == "k-own"


def test_builtin_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WS_ACME), env={})
    (ws,) = config.workspaces
    assert (ws.data_center, ws.timezone, ws.concurrency, ws.rate, ws.base_url) == (
        "01", "UTC", 4, None, None)
    assert config.run.concurrency == 32
    assert config.run.start == DateSpec(offset_days=-7)
    assert config.run.end == DateSpec(offset_days=0)
    assert config.run.layout == "{workspace}/{report}/{filename}"


def test_secret_key_defaults_to_api_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WS_ACME + WS_GLOBEX + 'secret_key = "sk-globex"\n'),
                         env={})
    acme, globex = config.workspaces
    assert acme.secret_key.reveal() == "k-acme"
    assert globex.secret_key.reveal() == "sk-globex"
    assert globex.api_key.reveal() == "k-globex"


@pytest.mark.parametrize(("raw", "expected"), [("2", "02"), ("1", "01"), ("101", "101"),
                                               ('"06"', "06"), ('"101"', "101"),
                                               ('"2"', "02"), ('" 3 "', "03")])
def test_data_center_as_int_or_string(tmp_path: Path, raw: str, expected: str) -> None:
    config = load_config(write(tmp_path, WS_ACME + f"data_center = {raw}\n"), env={})
    assert config.workspaces[0].data_center == expected


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(conf_dir, '[run]\noutput_dir = "out"\n' + WS_ACME)
    config = load_config(path, env={})
    assert config.run.output_dir == conf_dir.resolve() / "out"
    manifest = config.run.manifest or config.run.output_dir / "manifest.jsonl"
    assert manifest == conf_dir.resolve() / "out" / "manifest.jsonl"

    path = write(conf_dir, f'[run]\noutput_dir = "{tmp_path / "abs"}"\n'
                 'manifest = "state/m.jsonl"\n' + WS_ACME, "b.toml")
    config = load_config(path, env={})
    assert config.run.output_dir == tmp_path / "abs"
    assert config.run.manifest == conf_dir.resolve() / "state" / "m.jsonl"

    # A config named relative to the working directory resolves the same way.
    config = load_config(Path("..") / "conf" / "backfill.toml", env={})
    assert config.run.output_dir.resolve() == conf_dir.resolve() / "out"


def test_reports_as_tables_with_schedules(tmp_path: Path) -> None:
    text = WS_ACME.replace(
        '["Daily"]',
        '["Daily", { name = "Weekly email", schedule = "weekly:MON" },'
        ' { name = "Monthly push", schedule = "monthly:28" }, { name = "Plain" }]',
    )
    (ws,) = load_config(write(tmp_path, text), env={}).workspaces
    assert [(r.name, str(r.schedule)) for r in ws.reports] == [
        ("Daily", "daily"), ("Weekly email", "weekly:mon"), ("Monthly push", "monthly:28"),
        ("Plain", "daily"),
    ]
    assert ws.reports[1].schedule == Schedule("weekly", 0)
    assert ws.reports[2].schedule == Schedule("monthly", 28)


@pytest.mark.parametrize(
    ("text", "expected", "resolved"),
    [
        ('"2026-11-20"', DateSpec(absolute=date(2026, 11, 20)), date(2026, 11, 20)),
        ("2026-11-20", DateSpec(absolute=date(2026, 11, 20)), date(2026, 11, 20)),  # TOML date
        ('"today"', DateSpec(offset_days=0), date(2026, 11, 27)),
        ('"yesterday"', DateSpec(offset_days=-1), date(2026, 11, 26)),
        ('"-6d"', DateSpec(offset_days=-6), date(2026, 11, 21)),
        ('" -89D "', DateSpec(offset_days=-89), date(2026, 8, 30)),
    ],
)
def test_date_forms(tmp_path: Path, text: str, expected: DateSpec, resolved: date) -> None:
    config = load_config(write(tmp_path, f"[run]\nstart = {text}\nend = {text}\n" + WS_ACME),
                         env={})
    assert config.run.start == expected
    assert config.run.start.resolve(date(2026, 11, 27)) == resolved


def test_toml_datetime_is_not_a_date(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[run\] start: must be a date string"):
        load_config(write(tmp_path, "[run]\nstart = 2026-11-20T10:00:00Z\n" + WS_ACME), env={})


def test_config_workspace_lookup(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WS_ACME + WS_GLOBEX), env={})
    assert config.workspace("globex").app_id == "GLOBEX7"
    with pytest.raises(KeyError):
        config.workspace("nobody")


def test_example_config_loads_with_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "example.toml"
    env = {"MOE_ACME_API_KEY": "a", "MOE_ACME_SECRET": "s", "MOE_GLOBEX_API_KEY": "g"}
    config = load_config(example, env=env)
    assert isinstance(config, Config)
    assert [ws.name for ws in config.workspaces] == ["acme-eu", "globex-us"]
    assert config.workspaces[1].secret_key.reveal() == "g"


# ----------------------------------------------------------------------- fuzzing

def test_unprintable_names_do_not_break_the_one_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = config_error(capsys, write(tmp_path, WS_ACME.replace('"acme"', '"ac\\nme"')))
    assert "'ac\\nme'" in line


_scalars = (st.text(max_size=12) | st.integers(-3, 300) | st.booleans()
            | st.floats(allow_nan=True) | st.dates() | st.sampled_from(
                ["today", "-3d", "02", 2, "UTC", "Europe", "Asia/Tokyo", "weekly:mon",
                 "monthly:28", "${X}", "${MISSING}", "../x", "{workspace}/{x}", "http://h"]))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(["name", "schedule", "x"]), inner,
                                         max_size=3), max_leaves=6)
_WS_KEYS = ["name", "app_id", "data_center", "api_key", "secret_key", "timezone",
            "concurrency", "rate", "reports", "base_url", "bogus"]
_RUN_KEYS = ["start", "end", "output_dir", "manifest", "concurrency", "per_host", "layout",
             "max_file_bytes", "max_outage_s", "bogus"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run=st.dictionaries(st.sampled_from(_RUN_KEYS), _values, max_size=2),
    defaults=st.dictionaries(st.sampled_from(_WS_KEYS), _values, max_size=2),
    overrides=st.lists(st.dictionaries(st.sampled_from(_WS_KEYS), _values, max_size=2),
                       min_size=1, max_size=3),
)
def test_any_document_gives_a_config_or_a_config_error(
    run: dict[str, Any], defaults: dict[str, Any], overrides: list[dict[str, Any]]
) -> None:
    """Start from a valid document, break a few keys: only ever a ConfigError, one line each."""
    workspaces = [{"app_id": f"APP{i}", "api_key": "k", "reports": ["R"], **o}
                  for i, o in enumerate(overrides)]
    raw = {"run": run, "defaults": defaults, "workspace": workspaces}
    path = Path("/nonexistent/fuzz.toml")
    try:
        config = parse_config(raw, path, env={"X": "x"})
    except ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith(f"{path}: ")
            assert line.isprintable(), line
    else:
        assert config.workspaces
        assert config.run.concurrency >= 1
        for ws in config.workspaces:
            assert ws.concurrency >= 1
            assert ws.data_center in ("01", "02", "03", "04", "05", "06", "101")
            assert ws.rate is None or (ws.rate > 0 and not math.isnan(ws.rate))
            assert ws.reports


def test_http_proxy_and_ca_bundle_are_read(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    text = '[http]\nproxy = "proxy.corp:3128"\nca_bundle = "ca.pem"\n' + WS_ACME
    config = load_config(write(tmp_path, text), env={})
    assert config.http.proxy == "proxy.corp:3128"
    assert config.http.ca_bundle == tmp_path / "ca.pem"
    assert load_config(write(tmp_path, WS_ACME), env={}).http.proxy is None


@pytest.mark.parametrize(("value", "expected"), [
    ("$MOE_ACME_API_KEY", "'$MOE_ACME_API_KEY' is a shell-style reference, which is not "
                          "expanded: write \"${MOE_ACME_API_KEY}\" (with braces)"),
    ("$a1b2c3d4", "this value (not shown"),
])
def test_a_variable_without_braces_is_refused_at_load(tmp_path: Path, value: str,
                                                      expected: str) -> None:
    path = write(tmp_path, WS_ACME.replace('"k-acme"', f'"{value}"'))
    for env in ({}, None):  # also for plan, which resolves no secrets
        with pytest.raises(ConfigError) as info:
            load_config(path, env=env or {}, secrets=env is not None)
        (line,) = info.value.problems
        assert "api_key" in line and expected in line
        if "not shown" in expected:
            assert "a1b2c3d4" not in line


def test_a_variable_set_but_empty_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SECRETS_TOML)
    env = {"MOE_ACME_API_KEY": " ", "MOE_ACME_SECRET": "s", "MOE_GLOBEX_API_KEY": "g"}
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert info.value.problems == [
        f"{path}: [[workspace]] #1 (acme) api_key: environment variable MOE_ACME_API_KEY "
        "is set but empty"]


def test_output_dir_may_be_an_object_url_and_storage_a_table(tmp_path: Path) -> None:
    from backfill.destination import ObjectURL, StorageOptions

    cfg = load_config(write(tmp_path, '[run]\noutput_dir = "s3://bkt/land/ing/"\n'
                            '[storage]\nendpoint = "http://127.0.0.1:9000"\n'
                            'allow_http = true\nregion = "eu-west-1"\n' + WS_ACME))
    assert cfg.run.output_dir == ObjectURL("s3", "bkt", "land/ing")  # not s3:/bkt/…
    assert cfg.run.remote_manifest  # the manifest lives with the data
    assert cfg.run.manifest_path.name == "manifest.jsonl"  # its local journal
    assert cfg.storage == StorageOptions(endpoint="http://127.0.0.1:9000", region="eu-west-1",
                                         allow_http=True)
    local = load_config(write(tmp_path, '[run]\noutput_dir = "out"\n' + WS_ACME))
    assert local.run.output_dir == tmp_path / "out" and not local.run.remote_manifest


def test_output_dir_flag_takes_an_object_url() -> None:
    import argparse

    from backfill.cli.argtypes import output_dir
    from backfill.destination import ObjectURL

    assert output_dir("gs://bkt/p") == ObjectURL("gcs", "bkt", "p")
    assert output_dir("reports") == Path("reports")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown scheme"):
        output_dir("ftp://x/y")
