"""Proxies and TLS through real local servers: a CONNECT proxy on 127.0.0.1 and the
simulator over HTTPS with a throw-away CA (trustme)."""

from __future__ import annotations

import base64
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import trustme
from aiohttp import web

from backfill.client import USER_AGENT, Client
from backfill.config import HttpSettings
from backfill.engine import Backfill, Options
from backfill.errors import ConfigError
from backfill.journal import Status
from backfill.simulator import run_simulator

from .conftest import TODAY, WORKSPACES_TOML, by_status, make_config, manifest_records, pointed_at
from .connect_proxy import connect_proxy

pytestmark = pytest.mark.anyio

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
              "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
SECRET_HEADERS = ("Authorization", "Signature", "MOE-APPKEY")


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield path


def tls_config(tmp: Path, ca_file: Path | None, **http: object):  # type: ignore[no-untyped-def]
    if ca_file is not None:
        http["ca_bundle"] = str(ca_file)
    config = make_config(tmp, workspaces=[{"name": "acme", "app_id": "ACME01"}],
                         run={"start": "-2d"}, http=http)
    return config


async def run_engine(config):  # type: ignore[no-untyped-def]
    return await Backfill(config, Options(today=TODAY)).run()


def https_base(sim) -> str:  # type: ignore[no-untyped-def]
    return f"https://localhost:{sim.port}"


async def test_https_through_connect_proxy_keeps_credentials_from_the_proxy(
        tmp_path: Path, ca_file: Path, server_ssl: ssl.SSLContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tls_config(tmp_path, ca_file)
    async with run_simulator(config, today=TODAY, ssl=server_ssl) as sim, \
            connect_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        summary = await run_engine(pointed_at(config, https_base(sim)))
    assert summary.exit_code == 0
    records = manifest_records(config)
    assert by_status(records) == {Status.COMPLETED: 3 * 2}  # the simulator checked signatures
    assert proxy.connects and set(proxy.connects) == {f"CONNECT localhost:{sim.port} HTTP/1.1"}
    for seen in proxy.seen:
        assert not set(seen.headers) & set(SECRET_HEADERS), seen


async def test_proxy_credentials_go_to_the_proxy_only(
        tmp_path: Path, ca_file: Path, server_ssl: ssl.SSLContext) -> None:
    want = "Basic " + base64.b64encode(b"alice:s3:cret").decode()
    config = tls_config(tmp_path, ca_file)
    async with run_simulator(config, today=TODAY, ssl=server_ssl) as sim, \
            connect_proxy(require_auth=want) as proxy:
        good = proxy.url.replace("http://", "http://alice:s3%3Acret@")
        cfg = pointed_at(tls_config(tmp_path, ca_file, proxy=good), https_base(sim))
        assert (await run_engine(cfg)).exit_code == 0
        assert all(s.headers.get("Proxy-Authorization") == want for s in proxy.seen)
        # a wrong password: every file fails at once with the proxy's answer, no retries
        bad_dir = tmp_path / "bad"
        bad_dir.mkdir()
        bad = proxy.url.replace("http://", "http://alice:wrong@")
        cfg = pointed_at(tls_config(bad_dir, ca_file, proxy=bad), https_base(sim))
        summary = await run_engine(cfg)
    assert summary.exit_code == 1 and summary.retries == 0
    assert list(summary.failures) == [
        "proxy refused CONNECT to localhost (status 407): check the proxy's user:password"]
    assert "wrong" not in repr(summary.document(run=True))


async def test_plain_http_through_a_proxy_is_refused_before_any_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path)
    async with run_simulator(config, today=TODAY) as sim, connect_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with pytest.raises(ConfigError, match=r"in clear text.*NO_PROXY"):
            await run_engine(pointed_at(config, sim.base_url))
        assert sim.counters.total == 0 and proxy.seen == []
        monkeypatch.setenv("NO_PROXY", "localhost")  # 127.0.0.1 is loopback too: direct
        assert (await run_engine(pointed_at(config, sim.base_url))).exit_code == 0
    assert proxy.seen == []


async def test_untrusted_certificate_fails_each_file_once_and_names_the_fix(
        tmp_path: Path, server_ssl: ssl.SSLContext) -> None:
    config = tls_config(tmp_path, None)
    async with run_simulator(config, today=TODAY, ssl=server_ssl) as sim:
        summary = await run_engine(pointed_at(config, https_base(sim)))
        assert sim.counters.total == 0
    assert summary.retries == 0
    (reason,) = summary.failures
    assert reason.startswith("certificate verify failed for localhost (")
    assert reason.endswith("set ca_bundle in [http] (or --cacert) to the CA file that signed it")
    assert summary.totals["failed"] == 3 * 2


async def test_user_agent_and_no_netrc(tmp_path: Path, ca: trustme.CA, ca_file: Path,
                                       server_ssl: ssl.SSLContext,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine localhost login someone password leaked\n")
    monkeypatch.setenv("NETRC", str(netrc))
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    port = runner.addresses[0][1]
    try:
        http = HttpSettings(ca_bundle=ca_file)
        async with Client(http, limit=1, limit_per_host=1) as client, \
                client.get(f"https://localhost:{port}/x", {"Authorization": "a"}) as reply:
            assert reply.status == 200
    finally:
        await runner.cleanup()
    assert seen[0]["User-Agent"] == USER_AGENT and USER_AGENT.startswith("moe-backfill/")
    assert seen[0]["Authorization"] == "a"  # not replaced by netrc credentials


def test_proxy_table_is_checked_when_the_client_is_made() -> None:
    with pytest.raises(ConfigError, match="socks5:// proxies are not supported"):
        Client(HttpSettings(), limit=1, limit_per_host=1,
               env={"HTTPS_PROXY": "socks5://proxy:1080"})


CLI_CONFIG = """
[run]
start = "-1d"
output_dir = "out"

[defaults]
api_key = "test-key"
base_url = "{base_url}"
reports = ["Daily campaign summary"]

""" + WORKSPACES_TOML


async def test_cli_unsupported_proxy_exits_2_and_cacert_is_used(
        tmp_path: Path, ca_file: Path, server_ssl: ssl.SSLContext) -> None:
    config = make_config(tmp_path / "sim")
    async with run_simulator(config, today=TODAY, ssl=server_ssl) as sim:
        path = tmp_path / "backfill.toml"
        path.write_text(CLI_CONFIG.format(base_url=https_base(sim)))
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        cmd = [sys.executable, "-m", "backfill", "run", str(path), "--today",
               TODAY.isoformat(), "--no-progress"]
        bad = await anyio.run_process(cmd, check=False,
                                      env={**env, "HTTPS_PROXY": "socks5://u:pw@p:1080"})
        err = bad.stderr.decode()
        assert bad.returncode == 2, err
        assert "HTTPS_PROXY" in err and "not supported" in err and "Traceback" not in err
        assert ":pw@" not in err
        assert sim.counters.total == 0
        good = await anyio.run_process([*cmd, "--cacert", str(ca_file)], check=False, env=env)
        assert good.returncode == 0, good.stderr.decode()
        missing = await anyio.run_process([*cmd, "--cacert", str(tmp_path / "nope.pem")],
                                          check=False, env=env)
        assert missing.returncode == 2 and b"--cacert" in missing.stderr


async def test_check_reports_an_untrusted_certificate_and_passes_with_the_ca(
        tmp_path: Path, ca_file: Path, server_ssl: ssl.SSLContext) -> None:
    from backfill.check import check

    async with run_simulator(tls_config(tmp_path, None), today=TODAY, ssl=server_ssl) as sim:
        untrusted = pointed_at(tls_config(tmp_path, None), https_base(sim))
        (verdict,) = await check(untrusted, [], {"acme": TODAY})
        trusted = pointed_at(tls_config(tmp_path, ca_file), https_base(sim))
        verdicts = await check(trusted, [], {"acme": TODAY})
    assert not verdict.ok and verdict.text.startswith("certificate verify failed for localhost")
    assert all(v.ok for v in verdicts) and len(verdicts) == 1 + 2
