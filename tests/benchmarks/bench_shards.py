"""Shards: one process against ``--dask local:2``, one shard's own figures, and the
merged manifest view at a million records.

    python -m tests.benchmarks --only shards [--quick]

- ``one process``: ``backfill run`` of the whole dataset (100,000 × 10 KiB files,
  125 workspaces × 100 reports × 8 days; ``--quick``: 20,000), nginx serving one body for
  every path, 64 downloads in flight.
- ``dask local:2``: ``backfill run --dask local:2`` of the same files: a LocalCluster of two
  worker processes, one shard each (64 in flight each), then the merge of the two shard
  manifests into the main one. Wall time is the command's, spawn to exit (cluster start and
  merge included); each shard's own wall, CPU and peak RSS (the worker process's, Dask's
  share included) come from its task.
- ``shard 0/2 alone``: ``backfill run --shard 0/2`` on its own (half the files).
- ``view``: ``load_state`` of a main manifest with 4 shard manifests beside it holding
  1,000,000 records in all (``--quick``: 200,000), and ``manifest merge`` of them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import harness as h

CONCURRENCY = 64
PER_WORKSPACE = 8


def _toml(doc: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, list) else "[" + ", ".join(
            json.dumps(x) for x in v) + "]"

    lines = []
    for table in ("run", "defaults"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {value(v)}" for k, v in doc[table].items()]
        lines.append("")
    for ws in doc["workspace"]:
        lines.append("[[workspace]]")
        lines += [f"{k} = {value(v)}" for k, v in ws.items()]
        lines.append("")
    return "\n".join(lines)


def _cli(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "backfill", "run", str(config), "--today", str(h.TODAY),
            "--no-progress", "--json", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(h.ROOT)}


def _measure(cmd: list[str], out: Path) -> dict[str, Any]:
    h.drop_tree(out)
    os.sync()
    use = h.run_measured(cmd, cwd=h.ROOT, env=_env())
    if use.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:6])}: exit {use.returncode}: {use.stderr[-500:]}")
    doc = json.loads(use.stdout)
    return {"wall_s": round(use.wall_s, 2), "cpu_s": round(use.cpu_s, 2),
            "peak_rss_mib": round(use.peak_rss_mib, 1), "completed": doc["totals"]["completed"],
            "doc": doc}


def _figures(files: int, m: dict[str, Any]) -> dict[str, Any]:
    return {"files": files, "wall_s": m["wall_s"], "files_per_s": round(files / m["wall_s"]),
            "cpu_s_per_1000": round(m["cpu_s"] / files * 1000, 3),
            "peak_rss_mib": m["peak_rss_mib"]}


def _transfers(data: h.Dataset, work: Path) -> dict[str, Any]:
    www = h.ensure_same_body(data.size)
    out = work / "out"
    with h.NginxServer(www, work) as ngx:
        config = work / "backfill.toml"
        config.write_text(_toml(data.config_doc(ngx.same_url, out, CONCURRENCY, PER_WORKSPACE)))
        one = _measure(_cli(config), out)
        two = _measure(_cli(config, "--dask", "local:2"), out)
        alone = _measure(_cli(config, "--shard", "0/2"), out)
    for m in (one, two, alone):
        assert m["completed"] > 0
    assert one["completed"] == two["completed"] == data.files
    shards = two["doc"]["shards"]
    result = {
        "one_process": _figures(data.files, one),
        "dask_local_2": {**_figures(data.files, two), "shards": [
            {"shard": s["shard"], "files": s["totals"]["completed"], "wall_s": s["wall_s"],
             "files_per_s": round(s["totals"]["completed"] / s["wall_s"]),
             "cpu_s_per_1000": round(s["cpu_s"] / s["totals"]["completed"] * 1000, 3),
             "peak_rss_mib": s["peak_rss_mib"]} for s in shards]},
        "shard_alone": _figures(alone["completed"], alone),
    }
    result["speedup_2_workers"] = round(one["wall_s"] / two["wall_s"], 2)
    result["speedup_2_workers_tasks"] = round(
        one["wall_s"] / max(s["wall_s"] for s in shards), 2)
    return result


def _view(records: int, work: Path) -> dict[str, Any]:
    from backfill.journal import Record, Status
    from backfill.shards import Shard, shard_manifest
    from backfill.shards.view import load_state, merge_files

    main = work / "view" / "manifest.jsonl"
    main.parent.mkdir(parents=True, exist_ok=True)
    files = [main.with_name(f"manifest.shard-{i}-of-4.jsonl") for i in range(4)]
    assert files[1] == shard_manifest(main, Shard(1, 4))
    handles = [open(p, "wb") for p in files]  # noqa: SIM115 -- closed below
    sha = "ab" * 32
    for i in range(records):
        day = h.TODAY - timedelta(days=i % 90)
        fn = f"Report_{i // 90 % 1000:03d}_{day:%Y%m%d}.zip"
        ws = f"ws-{i // 90000:04d}"
        handles[i % 4].write(Record(
            ws, f"APP{i // 90000:04d}", "Report", day.isoformat(), fn, Status.COMPLETED,
            f"{ws}/{fn}", 10240, sha, 1, 200, updated_at="2026-11-27T00:00:00Z").to_line())
    for f in handles:
        f.close()
    size = sum(p.stat().st_size for p in files)
    t0, c0 = time.perf_counter(), time.process_time()
    state = load_state(main)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(state) == records
    rss = h.vm_hwm_kib(os.getpid()) / 1024
    del state
    t0 = time.perf_counter()
    report = merge_files(main, [main, *files])
    merge_s = time.perf_counter() - t0
    assert report.records == records and not report.conflicts
    return {"records": records, "manifests": 5, "bytes": size, "load_s": round(load_s, 2),
            "load_cpu_s": round(load_cpu, 2), "load_us_per_record": round(
                load_s / records * 1e6, 2), "merge_s": round(merge_s, 2),
            "bench_process_peak_rss_mib": round(rss, 1),
            "main_bytes": main.stat().st_size}


def main(quick: bool = False) -> dict[str, Any]:
    data = h.Dataset(25, 100, 8, 10 * 1024) if quick else h.Dataset(125, 100, 8, 10 * 1024)
    with tempfile.TemporaryDirectory(dir=h.OUTPUT if h.OUTPUT.exists() else None) as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {}
        if h.nginx_binary() is None:
            result["transfers"] = "skipped: nginx not installed (apt-get install nginx-light)"
        else:
            result["transfers"] = _transfers(data, work)
        result["view"] = _view(200_000 if quick else 1_000_000, work)
    return result


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv), indent=2))
