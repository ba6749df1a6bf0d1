"""Every shard as one task on a Dask cluster: ``backfill run CONFIG --dask ADDRESS``.

``distributed`` is the optional extra ``moe-backfill[dask]``; nothing here imports it
until a run starts.

- One task per shard that owns a workspace, with a stable key
  (``backfill-shard-I-of-N-<digest of config and options>``): a resubmission of the same
  run while the scheduler still knows it is recognised, not run twice.
- The task is a plain function that runs the engine's own event loop
  (``anyio.run(engine.run)``) in the worker's thread: the worker's own event loop is never
  blocked, so its heartbeats go on (an ``async def`` task would run on the worker's loop).
- A shard whose worker dies is re-run by Dask (up to ``distributed.scheduler.
  allowed-failures`` times, default 3), and a task that raised unexpectedly is retried
  ``RETRIES`` times. Both are safe: a re-run shard reads the merged manifest view, skips
  what is recorded completed and fetches the rest; its lock died with the old process.
- Secrets never travel: a task carries the config *text*, with its ``${VAR}``
  references unresolved, and each worker resolves them from its own environment.
- The network settings of the submitting command travel (network.py): the CA bundle's
  content (``--cacert``/``[http] ca_bundle``) and its proxy variables, except a proxy
  URL with credentials, of which only the variable's name goes (the worker's own value
  is used).
- Progress: each shard sends a small message (counts only) through the scheduler's event
  log at most every ``PROGRESS_EVERY_S`` and when it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import resource
import socket
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import BackfillError, ConfigError
from .assign import Shard
from .network import Network, ca_file, worker_env

if TYPE_CHECKING:
    from ..engine import Options
    from ..events import Event

EXTRA: Final = "pip install 'moe-backfill[dask]'"
RETRIES: Final = 2
PROGRESS_EVERY_S: Final = 1.0
TOPIC_PREFIX: Final = "backfill-progress-"


def import_distributed() -> Any:
    """The ``distributed`` module, or ConfigError naming the extra that provides it."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"--dask needs Dask distributed: {EXTRA}") from None
    return distributed


@dataclass(frozen=True, slots=True)
class Target:
    """Where shards run: a scheduler address, or a LocalCluster of ``workers`` processes."""

    address: str | None
    workers: int | None = None

    @property
    def local(self) -> bool:
        return self.address is None


def parse_target(text: str, cpus: int | None = None) -> Target:
    """``local``, ``local:N`` or a scheduler address (``tcp://host:8786``, ``host:8786``).

    ConfigError naming the value when it is none of these.
    """
    text = text.strip()
    if text == "local" or text.startswith("local:"):
        count = text[len("local:"):] if ":" in text else str(cpus or os.cpu_count() or 1)
        if not count.isdecimal() or not 1 <= int(count) <= 1024:
            raise ConfigError(f"--dask {text!r}: expected local or local:N with N in 1..1024")
        return Target(None, int(count))
    if "://" not in text and text.rpartition(":")[2].isdecimal():
        text = "tcp://" + text
    scheme, sep, rest = text.partition("://")
    if not sep or not rest or scheme not in ("tcp", "tls", "ucx", "ws", "wss", "inproc"):
        raise ConfigError(f"--dask {text!r}: expected local, local:N or a scheduler address "
                          "such as tcp://scheduler:8786")
    return Target(text)


# ------------------------------------------------------------------ the task


@dataclass(frozen=True, slots=True)
class ShardJob:
    """What one task receives. No secret values: ``config_text`` keeps ``${VAR}``."""

    config_path: str
    config_text: str
    options: Options
    shard: Shard
    topic: str
    network: Network = dataclasses.field(default_factory=Network)


@dataclass(frozen=True, slots=True)
class ShardResult:
    """What one task returns."""

    shard: Shard
    exit_code: int
    error: str | None
    document: dict[str, Any] | None
    host: str
    pid: int
    wall_s: float = 0.0
    cpu_s: float = 0.0  # the worker process's CPU during the task, all threads
    peak_rss_mib: float = 0.0  # the worker process's peak RSS (Dask's own share included)


class _Reporter:
    """Engine events → a counts-only message through the worker's event log."""

    def __init__(self, job: ShardJob, send: Callable[[dict[str, Any]], None]) -> None:
        self.job, self.send = job, send
        self.total = self.done = 0
        self.statuses: dict[str, int] = {}
        self.last = 0.0

    def __call__(self, event: Event) -> None:
        from ..events import FileFinished, RunStarted

        if isinstance(event, RunStarted):
            self.total = sum(event.to_fetch.values())
            self.flush(force=True)
        elif isinstance(event, FileFinished) and event.fetched:
            self.done += 1
            self.statuses[event.status.value] = self.statuses.get(event.status.value, 0) + 1
            self.flush()

    def flush(self, *, force: bool = False, final: bool = False) -> None:
        now = time.monotonic()
        if force or final or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.send({"shard": self.job.shard.index, "count": self.job.shard.count,
                       "pid": os.getpid(), "host": socket.gethostname(), "total": self.total,
                       "done": self.done, "statuses": dict(self.statuses), "final": final})


def _sender(topic: str) -> Callable[[dict[str, Any]], None]:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not inside a Dask worker: no progress
        return lambda msg: None
    return lambda msg: worker.log_event(topic, msg)


def run_shard(job: ShardJob) -> ShardResult:
    """The task: load the config (secrets from this worker's environment) and run one
    shard with the engine's own event loop. Errors of ours become an exit code; anything
    else propagates, and Dask retries the task."""
    import anyio

    from ..config import parse_config
    from ..engine import Backfill

    reporter = _Reporter(job, _sender(job.topic))
    host, pid = socket.gethostname(), os.getpid()
    t0, cpu0 = time.perf_counter(), _cpu_s()
    try:
        with ca_file(job.network) as ca:  # the submitting command's network settings
            config = parse_config(tomllib.loads(job.config_text), Path(job.config_path))
            if ca is not None:
                config = dataclasses.replace(
                    config, http=dataclasses.replace(config.http, ca_bundle=ca))
            options = dataclasses.replace(job.options, shard=job.shard,
                                          proxy_env=worker_env(job.network, os.environ))
            engine = Backfill(config, options)
            engine.subscribe(reporter)
            summary = anyio.run(engine.run)
    except BackfillError as exc:
        return ShardResult(job.shard, exc.exit_code, str(exc), None, host, pid)
    finally:
        reporter.flush(final=True)
    return ShardResult(job.shard, summary.exit_code, summary.error,
                       summary.document(run=True), host, pid,
                       wall_s=round(time.perf_counter() - t0, 3),
                       cpu_s=round(_cpu_s() - cpu0, 3), peak_rss_mib=_peak_rss_mib())


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def task_key(job: ShardJob) -> str:
    """Stable for the same config, options and shard: a resubmission is recognised."""
    o = job.options
    net = job.network
    basis = repr((job.config_path, job.config_text, o.today, o.start, o.end,
                  tuple(o.workspaces), o.output_dir, o.manifest, o.concurrency,
                  o.max_outage_s, net.ca_pem, sorted(net.proxy_env.items()),
                  net.proxy_names)).encode()
    digest = hashlib.sha256(basis).hexdigest()[:16]
    return f"backfill-shard-{job.shard.index}-of-{job.shard.count}-{digest}"


# ------------------------------------------------------------------ the driver


@contextlib.contextmanager
def connect(target: Target) -> Iterator[Any]:
    """A Client of the scheduler, or of a LocalCluster made (and closed) here."""
    distributed = import_distributed()
    if target.local:
        with distributed.LocalCluster(
            n_workers=target.workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=40,  # logging.ERROR
        ) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(target.address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--dask {target.address}: cannot reach the scheduler "
                          f"({type(exc).__name__})") from None
    with client:
        yield client


def worker_count(client: Any) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


def submit_shards(client: Any, jobs: list[ShardJob],
                  on_progress: Callable[[dict[str, Any]], None] | None = None,
                  ) -> list[ShardResult]:
    """Submit one task per job, report progress, wait for all; results by shard index."""
    distributed = import_distributed()
    if jobs and on_progress is not None:
        client.subscribe_topic(jobs[0].topic, lambda event: on_progress(event[1]))
    futures = [client.submit(run_shard, job, key=task_key(job), retries=RETRIES, pure=False)
               for job in jobs]
    results: list[ShardResult] = []
    for future in distributed.as_completed(futures):
        try:
            results.append(future.result())
        except Exception as exc:  # retries exhausted, or the worker died too often
            job = jobs[futures.index(future)]
            results.append(ShardResult(job.shard, 1, f"{type(exc).__name__}: {exc}"[:300],
                                       None, "", 0))
    if jobs and on_progress is not None:
        client.unsubscribe_topic(jobs[0].topic)
    return sorted(results, key=lambda r: r.shard.index)


def plan_jobs(config_path: Path, options: Options, count: int, names: list[str],
              network: Network | None = None) -> list[ShardJob]:
    """One job per shard (of ``count``) that owns at least one of the workspace ``names``;
    ``network``: the submitting command's (network.capture), default none (the workers'
    own settings)."""
    text = config_path.read_bytes().decode("utf-8")
    topic = TOPIC_PREFIX + hashlib.sha256(f"{os.getpid()} {time.time_ns()}".encode()
                                          ).hexdigest()[:12]
    plain = dataclasses.replace(options, events=[], shard=None, proxy_env=None)
    jobs = []
    for index in range(count):
        shard = Shard(index, count)
        if any(shard.owns(n) for n in names):
            jobs.append(ShardJob(str(config_path), text, plain, shard, topic,
                                 network or Network()))
    return jobs


def worst(codes: list[int]) -> int:
    """The exit code of a sharded run: the highest of its shards' (0 when none ran)."""
    return max(codes, default=0)


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
