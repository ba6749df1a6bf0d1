"""Secrets stay secret: no API key, secret key, Basic token or signature, anywhere.

Representative scenarios — every fault mixed, 401s, redirects followed without
credentials, an outage, timeouts, an unusable output directory, a bad config holding the
keys inline — run through the real CLI (``python -m backfill run -vv --log-file``, text and
JSON logs), then ``status`` (table, grid, JSON) and ``verify``. The secrets are computed
with :mod:`backfill.signing` and searched for in stdout, stderr, the log file, the
manifest and every file under the test's directory. Exceptions raised by
:mod:`backfill.client` are checked the same way, through ``str``, ``repr`` and a printed
traceback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import socket
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from backfill.cli import main
from backfill.client import Client, translate
from backfill.config import HttpSettings, load_config
from backfill.errors import RemoteError
from backfill.naming import report_url
from backfill.planner import Kind
from backfill.signing import basic_auth, request_headers, signature
from backfill.simulator import Faults, FirstN, run_simulator

from .conftest import TODAY, cli_command, planned

pytestmark = pytest.mark.anyio

ENV = {
    "MOE_T_ACME_KEY": "acmeKEY-9f3Qz7LmR2vX8pWd",
    "MOE_T_ACME_SECRET": "acmeSECRET-4Hn6Tb1Jk0Ys5Ue",
    "MOE_T_GLOBEX_KEY": "globexKEY-7Cq2Wm9Ra3Nf8Lz",  # its secret_key defaults to this
}
WRONG_ENV = {k: v[::-1] for k, v in ENV.items()}  # what a server with other keys expects

CONFIG = """
[run]
start = "-9d"
end = "today"
output_dir = "out"
concurrency = 8

[http]
connect_timeout_s = 1
read_timeout_s = 0.3
file_timeout_s = 0.5
cross_origin_redirects = "{redirects}"

[retry]
max_attempts = 3
backoff_base_s = 0.01
backoff_max_s = 0.05
probe_interval_s = 0.05
probe_interval_max_s = 0.2
breaker_threshold = {threshold}

[defaults]
base_url = "{base_url}"
reports = ["Daily campaign summary", "Email - delivery (EU)"]

[[workspace]]
name = "acme"
app_id = "ACME01"
api_key = "{acme_key}"
secret_key = "{acme_secret}"
timezone = "Europe/Berlin"

[[workspace]]
name = "globex"
app_id = "GLOBEX7"
api_key = "{globex_key}"
timezone = "America/New_York"
"""
BY_ENV = {"acme_key": "${MOE_T_ACME_KEY}", "acme_secret": "${MOE_T_ACME_SECRET}",
          "globex_key": "${MOE_T_GLOBEX_KEY}"}
INLINE = {"acme_key": ENV["MOE_T_ACME_KEY"], "acme_secret": ENV["MOE_T_ACME_SECRET"],
          "globex_key": ENV["MOE_T_GLOBEX_KEY"]}


def write_config(tmp: Path, base_url: str, *, redirects: str = "refuse",
                 keys: dict[str, str] = BY_ENV, extra: str = "", threshold: int = 5) -> Path:
    path = tmp / "backfill.toml"
    path.write_text(CONFIG.format(base_url=base_url, redirects=redirects, threshold=threshold,
                                  **keys) + extra)
    return path


def forbidden(path: Path) -> dict[str, str]:
    """Every secret value a run with this config could ever hold → a label for it."""
    config = load_config(path, env=ENV)
    out: dict[str, str] = {}
    for ws in config.workspaces:
        key, secret = ws.api_key.reveal(), ws.secret_key.reveal()
        out[key] = f"{ws.name} api_key"
        out[secret] = f"{ws.name} secret_key"
        token = basic_auth(ws.app_id, key).removeprefix("Basic ")
        out[token] = f"{ws.name} Basic token"
        out[token.rstrip("=")] = f"{ws.name} Basic token (unpadded)"
        out[base64.b64encode(key.encode()).decode().rstrip("=")] = f"{ws.name} key, base64"
    for task in planned(config):
        ws = task.workspace
        sig = signature(ws.app_id, task.filename, ws.secret_key.reveal())
        out[sig] = f"signature of {task.filename}"
    return out


def leaks(secrets: dict[str, str], where: str, data: bytes | str) -> list[str]:
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return [f"{label} in {where}" for value, label in secrets.items() if value.encode() in raw]


def files_under(root: Path, skip: Path | None = None) -> Iterator[Path]:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            if p != skip:
                yield p


def in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


LOG_MODES = {
    "text": ["-vv", "--log-format", "text"],
    "json": ["-vv", "--log-format", "json", "--json"],
}

SCENARIOS = ["mixed-faults", "unauthorized", "redirect-strip", "outage", "timeouts",
             "disk-full", "unusable-output", "config-error-inline-keys"]

# A full disk as the program sees it: writes past RLIMIT_FSIZE fail with EFBIG.
LIMITED = """\
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), hard))
os.execv(sys.executable, [sys.executable, "-m", "backfill", *sys.argv[2:]])
"""


@pytest.mark.parametrize("log_mode", list(LOG_MODES))
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_no_secret_in_any_output(tmp_path: Path, scenario: str, log_mode: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():  # for the subprocess and the in-process commands
        monkeypatch.setenv(name, value)
    env = dict(os.environ)
    sim_env = WRONG_ENV if scenario == "unauthorized" else ENV
    probe = write_config(tmp_path, "http://127.0.0.1:9")
    async with run_simulator(load_config(probe, env=sim_env), today=TODAY) as other, \
            run_simulator(load_config(probe, env=sim_env), today=TODAY, seed=5) as sim:
        keys, redirects, extra, run_args, threshold = BY_ENV, "refuse", "", [], 5
        wrap = cli_command()
        f = sim.faults
        if scenario == "mixed-faults":
            for name, rate in [("rate_429", 0.08), ("rate_500", 0.06), ("rate_503", 0.06),
                               ("rate_reset", 0.08), ("rate_truncate", 0.06),
                               ("rate_truncate_close", 0.06), ("rate_html", 0.06),
                               ("rate_corrupt", 0.06), ("rate_close", 0.06),
                               ("rate_redirect", 0.06), ("rate_redirect_loop", 0.06)]:
                setattr(f, name, rate)
            f.redirect_to = other.base_url
            f.retry_after_s = 0.5
        elif scenario == "redirect-strip":
            redirects = "strip"
            f.rate_redirect, f.redirect_to = 1.0, other.base_url
        elif scenario == "outage":
            sim.start_outage(60.0, mode="refused")
            run_args = ["--max-outage", "0.5"]
        elif scenario == "timeouts":
            f.rate_stall_headers, f.rate_drip, f.stall_s, f.drip_interval_s = 0.15, 0.15, 2, 0.1
            always = next(t.filename for t in planned(load_config(probe, env=ENV))
                          if t.kind is Kind.FETCHABLE)
            f.first_n = [FirstN(always, 99, "drip")]  # one file times out every time
            threshold = 1000  # the breaker would probe one timeout at a time: slow
        elif scenario == "disk-full":  # report bodies larger than any file may grow
            f.size = 96 * 1024
            wrap = [sys.executable, "-c", LIMITED, str(64 * 1024)]
        elif scenario == "unusable-output":
            (tmp_path / "out").write_text("a file where the output directory should be\n")
        elif scenario == "config-error-inline-keys":
            keys = INLINE
            extra = '\n[[workspace]]\napp_id = "X"\napi_key = 42\ntimezone = "Mars/Base"\n'
        secrets = forbidden(probe)
        path = write_config(tmp_path, sim.base_url, redirects=redirects, keys=keys, extra=extra,
                            threshold=threshold)
        log = tmp_path / "logs" / "backfill.log"
        with anyio.fail_after(60):
            result = await anyio.run_process(
                [*wrap, "run", str(path), "--today", TODAY.isoformat(), "--no-progress",
                 "--log-file", str(log), *LOG_MODES[log_mode], *run_args],
                check=False, env=env)
        if scenario == "outage":
            await sim.end_outage()

    found: list[str] = []
    found += leaks(secrets, "run stdout", result.stdout)
    found += leaks(secrets, "run stderr", result.stderr)
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    expected_code = {"unusable-output": 2, "config-error-inline-keys": 2,
                     "redirect-strip": 0}.get(scenario, 1)
    if scenario == "mixed-faults":
        expected_code = result.returncode if result.returncode in (0, 1) else -1
    assert result.returncode == expected_code, stderr
    if expected_code != 2:
        assert log.exists() and log.stat().st_size > 0
        for argv in (["status", str(path)], ["status", str(path), "--grid"],
                     ["status", str(path), "--json"], ["verify", str(path), "--json"]):
            code, out, err = await anyio.to_thread.run_sync(in_process, argv)
            assert code in (0, 1), err
            found += leaks(secrets, f"{' '.join(argv[:1] + argv[2:])} output", out + err)
    for p in files_under(tmp_path, skip=path if keys is INLINE else None):
        found += leaks(secrets, str(p.relative_to(tmp_path)), p.read_bytes())
    assert not found, "\n".join(found)
    if scenario == "unauthorized":  # the failure is reported, only without the keys
        assert b"auth" in result.stdout + result.stderr
    if scenario == "disk-full":
        assert "disk full" in stderr


# ---------------------------------------------------------------- the client's errors

API_KEY, SECRET_KEY = ENV["MOE_T_ACME_KEY"], ENV["MOE_T_ACME_SECRET"]


def client_secrets(filename: str) -> list[str]:
    headers = request_headers("ACME01", filename, API_KEY, SECRET_KEY)
    return [API_KEY, SECRET_KEY, headers["Authorization"], headers["Authorization"][6:],
            headers["Signature"]]


def assert_clean(exc: BaseException, filename: str) -> None:
    """str, repr, args and a printed traceback of *our* exception hold no secret.
    Its ``__cause__`` may be an aiohttp error (whose repr can hold headers): the
    traceback printed here leaves the chain out, as the CLI never prints one at all."""
    assert isinstance(exc, RemoteError), repr(exc)
    shown = [str(exc), repr(exc), repr(exc.args),
             "".join(traceback.format_exception_only(type(exc), exc)),
             "".join(traceback.format_exception(exc, chain=False))]
    for text in shown:
        for secret in client_secrets(filename):
            assert secret not in text, f"secret in {text!r}"
    assert exc.__cause__ is None or not isinstance(exc.__cause__, RemoteError)


async def _fetch(client: Client, url: str, filename: str) -> None:
    async with client.get(url, request_headers("ACME01", filename, API_KEY,
                                               SECRET_KEY)) as reply:
        assert reply.status == 200, reply.status  # the credentials are right
        async for _ in reply.chunks():
            pass


@pytest.mark.parametrize("fault", ["refused", "reset", "close", "truncate", "stall_headers",
                                   "stall_body", "redirect", "redirect_loop"])
async def test_client_errors_hold_no_secret(tmp_path: Path, fault: str) -> None:
    probe = write_config(tmp_path, "http://127.0.0.1:9")
    config = load_config(probe, env=ENV)
    task = next(t for t in planned(config) if t.kind is Kind.FETCHABLE
                and t.workspace.name == "acme")
    async with run_simulator(config, today=TODAY) as other, \
            run_simulator(config, today=TODAY) as sim:
        sim.faults = Faults(stall_s=2.0, redirect_to=other.base_url, size=200_000)
        if fault != "refused":
            setattr(sim.faults, f"rate_{fault}", 1.0)
        base = sim.base_url
        if fault == "refused":  # a port nobody listens on
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        http = HttpSettings(connect_timeout_s=1, read_timeout_s=0.3, file_timeout_s=2)
        async with Client(http, limit=2, limit_per_host=2) as client:
            url = report_url(base, "ACME01", task.filename)
            with anyio.fail_after(10), pytest.raises(RemoteError) as info:
                await _fetch(client, url, task.filename)
        assert_clean(info.value, task.filename)
        if fault == "redirect":
            assert other.counters.total == 0


def _request_info(headers: dict[str, str]) -> aiohttp.RequestInfo:
    url = URL("https://api-01.moengage.com/campaign_reports/rest_api/ACME01/R_20261127.zip")
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict(headers)), url)


AIOHTTP_ERRORS = {
    "response": lambda info: aiohttp.ClientResponseError(info, (), status=500, message="x"),
    "too-many-redirects": lambda info: aiohttp.TooManyRedirects(info, ()),
    "content-type": lambda info: aiohttp.ContentTypeError(info, ()),
    "payload": lambda info: aiohttp.ClientPayloadError(f"payload of {info!r}"),
    "disconnected": lambda info: aiohttp.ServerDisconnectedError(),
    "timeout": lambda info: aiohttp.ServerTimeoutError(),
    "os": lambda info: aiohttp.ClientOSError(104, "Connection reset by peer"),
    "connector": lambda info: aiohttp.ClientConnectorError(
        None, OSError(111, "Connection refused")),  # type: ignore[arg-type]
    "asyncio-timeout": lambda info: TimeoutError(),
    "connection-reset": lambda info: ConnectionResetError(104, "reset"),
}


@pytest.mark.parametrize("make", list(AIOHTTP_ERRORS.values()), ids=list(AIOHTTP_ERRORS))
def test_translated_errors_drop_what_aiohttp_would_show(make: Any) -> None:
    """aiohttp puts the request's headers into repr() of its response errors; the
    translation keeps the class name and the URL path only."""
    filename = "R_20261127.zip"
    headers = request_headers("ACME01", filename, API_KEY, SECRET_KEY)
    exc = make(_request_info(headers))
    if isinstance(exc, aiohttp.ClientResponseError):  # the precondition: aiohttp leaks
        assert headers["Signature"] in repr(exc)
    ours = translate(exc, "https://api-01.moengage.com/campaign_reports/rest_api/ACME01/"
                     + filename)
    assert_clean(ours, filename)
    assert type(exc).__name__ in str(ours)


def test_the_secret_set_is_what_the_client_sends(tmp_path: Path) -> None:
    """The forbidden strings are the real header values (else the scans prove nothing)."""
    path = write_config(tmp_path, "http://127.0.0.1:9")
    secrets = forbidden(path)
    config = load_config(path, env=ENV)
    for task in planned(config):
        if not task.kind.requested:
            continue
        ws = task.workspace
        headers = request_headers(ws.app_id, task.filename, ws.api_key.reveal(),
                                  ws.secret_key.reveal())
        assert headers["Signature"] in secrets
        assert headers["Authorization"].removeprefix("Basic ") in secrets
    assert set(ENV.values()) <= set(secrets)

