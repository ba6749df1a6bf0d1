"""run --dask with the submitting command's network settings: --cacert and proxy
variables reach the workers of a LocalCluster; a proxy password never goes into a task.
The simulator over HTTPS with a throw-away CA (trustme), a CONNECT proxy on 127.0.0.1."""

from __future__ import annotations

import json
import os
import pickle
import ssl
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme

from backfill.config import HttpSettings, load_config
from backfill.engine import Options
from backfill.errors import ConfigError
from backfill.shards.network import Network, ca_file, capture, worker_env
from backfill.simulator import run_simulator

from ..faults.conftest import planned
from .conftest import TODAY, make_config
from .connect_proxy import connect_proxy
from .test_dask import ENV
from .test_network import PROXY_VARS
from .test_shards import write_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def pem(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def test_capture_sends_no_proxy_password() -> None:
    env = {"HTTPS_PROXY": "http://alice:s3cret@proxy.corp:3128", "http_proxy": "proxy:3128",
           "NO_PROXY": "localhost,.corp", "PATH": "/bin"}
    net = capture(HttpSettings(), env)
    assert net.proxy_env == {"http_proxy": "proxy:3128", "NO_PROXY": "localhost,.corp"}
    assert net.proxy_names == ("HTTPS_PROXY",)
    assert b"s3cret" not in pickle.dumps(net)
    own = {"HTTPS_PROXY": "http://alice:s3cret@proxy.corp:3128", "https_proxy": "other:1"}
    assert worker_env(net, own) == {**net.proxy_env, "HTTPS_PROXY": own["HTTPS_PROXY"]}
    with pytest.raises(ConfigError, match="HTTPS_PROXY: the submitting command's proxy"):
        worker_env(net, {})
    assert worker_env(Network(), own) is own  # the submitter sets none: the worker's own


def test_the_ca_bundle_travels_as_content_to_a_private_file(pem: Path) -> None:
    net = capture(HttpSettings(ca_bundle=pem), {})
    assert net.ca_pem == pem.read_text()
    with ca_file(net) as path:
        assert path is not None and path.read_text() == net.ca_pem
        assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0
    assert not path.exists()


async def test_run_dask_local_uses_cacert(tmp_path: Path, pem: Path,
                                          server_ssl: ssl.SSLContext) -> None:
    pytest.importorskip("distributed")
    config = make_config(tmp_path / "sim")
    async with run_simulator(config, today=TODAY, ssl=server_ssl) as sim:
        path = write_config(tmp_path, f"https://localhost:{sim.port}")
        cmd = [sys.executable, "-m", "backfill", "run", str(path), "--today", str(TODAY),
               "--dask", "local:2", "--json"]
        proc = await anyio.run_process([*cmd, "--cacert", str(pem)], env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["totals"]["failed"] == 0
    assert doc["totals"]["completed"] == len(planned(load_config(path, ENV)))


async def test_workers_use_the_submitting_commands_proxy(
        tmp_path: Path, pem: Path, server_ssl: ssl.SSLContext) -> None:
    pytest.importorskip("distributed")
    from backfill.shards.dask import Target, connect, plan_jobs, submit_shards

    config = make_config(tmp_path / "sim")
    names = [w.name for w in config.workspaces]
    async with run_simulator(config, today=TODAY, ssl=server_ssl) as sim, connect_proxy() as proxy:
        path = write_config(tmp_path, f"https://localhost:{sim.port}")
        secret = proxy.url.replace("http://", "http://alice:s3cret@")

        def drive() -> tuple[list[Any], list[Any], bytes]:
            saved = {n: os.environ.pop(n) for n in PROXY_VARS if n in os.environ}
            os.environ["MOE_TEST_KEY"] = "test-key"  # the workers' own environment
            try:
                with connect(Target(None, 2)) as client:  # workers start with no proxy
                    os.environ["HTTPS_PROXY"] = proxy.url  # the submitting command's
                    net = capture(HttpSettings(ca_bundle=pem), os.environ)
                    good = submit_shards(client, plan_jobs(
                        path, Options(today=TODAY), 2, names, net))
                    os.environ["HTTPS_PROXY"] = secret
                    jobs = plan_jobs(path, Options(today=TODAY, workspaces=names[:1]), 2,
                                     names, capture(HttpSettings(ca_bundle=pem), os.environ))
                    return good, submit_shards(client, jobs), pickle.dumps(jobs)
            finally:
                for n in ("HTTPS_PROXY", "MOE_TEST_KEY"):
                    os.environ.pop(n, None)
                os.environ.update(saved)

        good, bad, sent = await anyio.to_thread.run_sync(drive)
    assert [r.exit_code for r in good] == [0, 0], [r.error for r in good]
    assert set(proxy.connects) == {f"CONNECT localhost:{sim.port} HTTP/1.1"}
    assert b"s3cret" not in sent
    assert bad and all(r.exit_code == 2 for r in bad)  # the workers lack HTTPS_PROXY
    assert all("HTTPS_PROXY" in (r.error or "") and "s3cret" not in (r.error or "")
               for r in bad)

