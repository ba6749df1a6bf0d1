"""configs/k8s-indexed-job.yaml: the fields an Indexed Job needs, and the container's
command run here, once per index with JOB_COMPLETION_INDEX set, against the simulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest

from backfill.config import parse_config
from backfill.simulator import run_simulator

yaml = pytest.importorskip("yaml")
pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
JOB_YAML = ROOT / "configs" / "k8s-indexed-job.yaml"


def documents() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(JOB_YAML.read_text())}


def test_the_job_is_an_indexed_job_with_a_shard_per_index() -> None:
    docs = documents()
    job, secret, config_map = docs["Job"], docs["Secret"], docs["ConfigMap"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["backoffLimitPerIndex"] >= 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    args = container["args"]
    shard = args[args.index("--shard") + 1]
    assert shard == f"$(JOB_COMPLETION_INDEX)/{spec['completions']}"
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    [mount] = container["volumeMounts"]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    [key] = config_map["data"]
    assert args[1] == f"{mount['mountPath']}/{key}"
    toml = config_map["data"][key]
    assert tomllib.loads(toml)["run"]["output_dir"].startswith("s3://")
    # every ${VAR} of the config comes from the Secret
    refs = {m for ws in tomllib.loads(toml)["workspace"] for v in ws.values()
            if isinstance(v, str) for m in re.findall(r"\$\{(\w+)\}", v)}
    assert refs and refs <= set(secret["stringData"])


def expand(arg: str, env: dict[str, str]) -> str:
    """$(VAR) as the kubelet expands it in command and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg)


async def test_the_container_command_runs_each_shard(tmp_path: Path) -> None:
    docs = documents()
    job, secret = docs["Job"], docs["Secret"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    count = job["spec"]["completions"]
    raw = tomllib.loads(docs["ConfigMap"]["data"]["backfill.toml"])
    keys = {name: f"key-of-{name.lower()}" for name in secret["stringData"]}
    sim_config = parse_config(raw, tmp_path / "sim.toml", keys)
    async with run_simulator(sim_config) as sim:
        text = docs["ConfigMap"]["data"]["backfill.toml"].replace(
            'output_dir = "s3://my-moe-bucket/reports"', 'output_dir = "out"').replace(
            "[defaults]", f'[defaults]\nbase_url = "{sim.base_url}"')
        config_path = tmp_path / "backfill.toml"
        config_path.write_text(text)
        codes = []
        for index in range(count):
            env = {**keys, "JOB_COMPLETION_INDEX": str(index), "PATH": "/usr/bin:/bin",
                   "PYTHONPATH": str(ROOT)}
            args = list(container["args"])
            args[1] = str(config_path)  # where the ConfigMap is mounted in the pod
            if index % 2 == 0:  # the kubelet expands $(VAR); odd ones test the fallback
                args = [expand(a, env) for a in args]
            assert container["command"] == ["backfill"]
            cmd = [sys.executable, "-m", "backfill", *args]
            proc = await anyio.run_process(cmd, env=env, check=False)
            assert proc.returncode == 0, proc.stderr.decode()[-2000:]
            codes.append(proc.returncode)
        status = await anyio.to_thread.run_sync(lambda: subprocess.run(
            [sys.executable, "-m", "backfill", "status", str(config_path), "--json"],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, check=True))
    doc = json.loads(status.stdout)
    shards = [Path(p).name for p in doc["manifests"][1:]]
    assert shards == [f"manifest.shard-{i}-of-{count}.jsonl" for i in range(count)]
    assert sum(doc["totals"].values()) == 2 * 8  # 2 workspaces × 1 report × 8 days
    assert doc["totals"]["failed"] == 0 and doc["totals"]["completed"] > 0
