"""The transfer benchmarks' machinery: data sets, servers, clients, measurement.

Servers (each in its own process, so a client's figures are the client's alone):

- **simulator** — ``python -m backfill.simulator.cli``: checks every request's
  Authorization and Signature and can add latency *server-side* (``--latency``: the
  simulator's ``latency_s`` fault); used where the tool's own behaviour is measured.
- **nginx** — the same bytes as static files, generated once with the simulator's own
  body builder (``backfill.simulator.body.build_body``, seed 0) under
  ``bench-output/www/``; one worker process, keep-alive without a request cap, sendfile,
  no access log (see :data:`NGINX_CONF`); with ``tls=True`` also https on a third port
  with a certificate from a CA the bench makes (trustme, :func:`make_ca`). nginx checks
  no header; clients send them all the same. Install it with ``apt-get install
  nginx-light`` (or ``nginx``). Latency for nginx is added to the packets, in the kernel
  (``netns.py``).

Clients, given the same URLs, the same three signed headers per URL and the same
concurrency:

- **moe-backfill** — ``backfill.engine.Backfill`` in a child process (``engine_run.py``),
  measured like the peers (spawn to exit, start-up included); inside it also around
  ``Backfill.run()`` alone (``run_wall_s``/``run_cpu_s``) and its start-up
  (``startup_cpu_s``). TLS: the bench's CA as ``[http] ca_bundle``.
- **curl** — ``curl -Z --parallel-max N --config LIST``; LIST holds one block per URL
  (``url``, ``output``, ``create-dirs``, three ``header`` lines,
  ``next``). TLS: ``CURL_CA_BUNDLE`` (a ``--cacert`` would reach the first URL only).
- **aria2c** — ``aria2c -i LIST -j N``; LIST holds each URI followed by its indented
  per-URI options (``out=``, three ``header=`` lines). Install: ``apt-get install aria2``.
  TLS: ``--ca-certificate``.
- **urllib** — a sequential ``urllib.request`` loop, one request at a time, no keep-alive:
  the script users would otherwise keep.

CPU of peers comes from ``os.wait4`` (user + system time of the whole process), peak RSS
from polling its ``VmHWM`` every 2 ms until it exits; wall time from spawn to exit.
Outputs are counted and sized after every run: a run that did not store every file is an
error, not a figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from backfill.naming import report_filename, report_url
from backfill.signing import request_headers
from backfill.simulator.body import BodySpec, build_body, is_streamed, iter_body

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "bench-output"
TODAY = date(2026, 11, 27)
API_KEY = "bench-api-key"
SEED = 0
SAME_BODY = "/same-body.zip"  # nginx's second port serves this for every path


@dataclass(frozen=True, slots=True)
class Dataset:
    """``workspaces × reports × days`` files of ``size`` bytes (ages 0 .. days-1, ≤ 8)."""

    workspaces: int
    reports: int
    days: int
    size: int

    @property
    def files(self) -> int:
        return self.workspaces * self.reports * self.days

    @property
    def key(self) -> str:
        return f"{self.workspaces}x{self.reports}x{self.days}-{self.size}"

    def app_id(self, w: int) -> str:
        return f"APP{w:04d}"

    def report_names(self) -> list[str]:
        return [f"Report {r:03d}" for r in range(self.reports)]

    def items(self) -> Iterator[tuple[str, str, str]]:
        """(workspace name, app_id, file name) of every file."""
        names = self.report_names()
        for w in range(self.workspaces):
            for name in names:
                for age in range(self.days):
                    yield f"ws-{w:04d}", self.app_id(w), report_filename(
                        name, TODAY - timedelta(days=age))

    def config_doc(self, base_url: str, out: Path, concurrency: int,
                   per_workspace: int | None = None) -> dict[str, Any]:
        """The engine's config: the same files, one global limit (``concurrency``)."""
        return {
            "run": {"start": f"-{self.days - 1}d", "end": "today", "output_dir": str(out),
                    "concurrency": concurrency, "layout": "{workspace}/{filename}"},
            "defaults": {"api_key": API_KEY, "timezone": "UTC", "base_url": base_url,
                         "reports": self.report_names(),
                         "concurrency": per_workspace or concurrency},
            "workspace": [{"name": f"ws-{w:04d}", "app_id": self.app_id(w)}
                          for w in range(self.workspaces)],
        }

    def simulator_toml(self) -> str:
        names = ", ".join(json.dumps(n) for n in self.report_names())
        lines = ["[defaults]", f'api_key = "{API_KEY}"', 'timezone = "UTC"',
                 f"reports = [{names}]", ""]
        for w in range(self.workspaces):
            lines += ["[[workspace]]", f'name = "ws-{w:04d}"', f'app_id = "{self.app_id(w)}"',
                      ""]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    headers: dict[str, str]
    rel: str  # output path relative to the client's output directory


def requests_for(data: Dataset, base_url: str) -> list[Request]:
    return [Request(report_url(base_url, app, fn), request_headers(app, fn, API_KEY, API_KEY),
                    f"{ws}/{fn}") for ws, app, fn in data.items()]


# ------------------------------------------------------------------------------ processes


@dataclass(slots=True)
class Usage:
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(cmd: list[str], *, cwd: Path | None = None, timeout: float = 1800,
                 env: dict[str, str] | None = None) -> Usage:
    """Run ``cmd``; wall time spawn → exit, CPU and peak RSS of the process (os.wait4)."""
    out_path = OUTPUT / "tmp" / f"stdout-{os.getpid()}"
    err_path = out_path.with_name(f"stderr-{os.getpid()}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env)
        deadline = t0 + timeout
        hwm = 0
        try:
            while True:
                hwm = max(hwm, vm_hwm_kib(proc.pid))
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, ru = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.002)
        except BaseException:  # interrupted: the client does not outlive the bench
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    out_path.unlink()
    err_path.unlink()
    return Usage(wall, ru.ru_utime + ru.ru_stime, ru.ru_utime, ru.ru_stime, hwm / 1024,
                 proc.returncode, stdout, stderr)


def run_measured_all(cmds: list[list[str]], *, cwd: Path | None = None, timeout: float = 1800,
                     env: dict[str, str] | None = None) -> list[Usage]:
    """Run ``cmds`` side by side; each one's :class:`Usage`, every ``wall_s`` being the
    time from the first spawn to the last exit (what the user waits for)."""
    tmp = OUTPUT / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    files = [(open(tmp / f"stdout-{os.getpid()}-{i}", "w+b"),  # noqa: SIM115 -- closed below
              open(tmp / f"stderr-{os.getpid()}-{i}", "w+b"))  # noqa: SIM115
             for i in range(len(cmds))]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                              env=env) for cmd, (out, err) in zip(cmds, files, strict=True)]
    hwm = [0] * len(procs)
    done: dict[int, tuple[int, Any]] = {}
    while len(done) < len(procs):
        for i, proc in enumerate(procs):
            if i in done:
                continue
            hwm[i] = max(hwm[i], vm_hwm_kib(proc.pid))
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                done[i] = (status, ru)
            elif time.perf_counter() > t0 + timeout:
                proc.kill()
                done[i] = os.wait4(proc.pid, 0)[1:]
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    result = []
    for i, (out, err) in enumerate(files):
        status, ru = done[i]
        out.seek(0)
        err.seek(0)
        result.append(Usage(wall, ru.ru_utime + ru.ru_stime, ru.ru_utime, ru.ru_stime,
                            hwm[i] / 1024, os.waitstatus_to_exitcode(status),
                            out.read().decode(errors="replace"),
                            err.read().decode(errors="replace")))
        for f in (out, err):
            f.close()
            os.unlink(f.name)
    return result


def compile_engine(src: Path) -> None:
    """Byte-compile ``src/backfill`` once per bench run, as ``pip install`` does. This
    machine's environment sets ``PYTHONDONTWRITEBYTECODE=1``, so an editable checkout
    was compiled from source at every start: ~80 ms of CPU per run, charged to
    moe-backfill alone (a user's installed package has its ``.pyc`` files)."""
    import compileall

    compileall.compile_dir(str(src / "backfill"), quiet=1)


def vm_hwm_kib(pid: int) -> int:
    """Peak RSS of a running process (VmHWM), 0 once it is gone.

    Polled, because ``ru_maxrss`` from wait4 would include the RSS of this (forking)
    process: the kernel carries the pre-exec peak over into the exec'd program.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


async def raw_worker(host: str, port: int, reqs: list[bytes], offset: int, stop_at: float,
                      counts: list[int], ca_file: Path | None = None) -> None:
    """One HTTP/1.1 keep-alive connection replaying ``reqs`` until ``stop_at`` (over TLS
    when ``ca_file`` is given); counts [200 responses, other responses, body bytes]."""
    ctx = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
    i = offset
    try:
        while time.monotonic() < stop_at:
            writer.write(reqs[i % len(reqs)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            start = lower.find(b"content-length: ") + 16
            length = int(head[start:head.index(b"\r\n", start)])
            await reader.readexactly(length)
            counts[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
            counts[2] += length
    finally:
        writer.close()


def process_cpu_s(pid: int) -> float:
    """CPU seconds used by a running process so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def drop_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


_RUNS = itertools.count(1)


def run_dir(name: str) -> Path:
    """A new output directory for one client run, named ``name`` plus a number never used
    before (in :func:`runs_dir`): ext4 picks a top directory's block group starting from
    a hash of its *name*, so a repeat under the same name would land in the group its
    predecessor's files were just deleted from (see :func:`runs_dir`)."""
    return runs_dir() / f"{name}-{os.getpid()}-{next(_RUNS)}"


def discard_run(out: Path, files: int) -> None:
    """Delete a finished run's output, or, if it has many ``files``, set it aside in the
    trash of :func:`runs_dir` (removed by :func:`empty_trash` once the bench ends):
    deleted now, thousands of inodes would be "recently deleted" for the next client's
    run (see :func:`runs_dir`). A few large files are deleted: no inodes to speak of."""
    if files < 1000:
        drop_tree(out)
        return
    trash = runs_dir() / "trash"
    trash.mkdir(exist_ok=True)
    try:
        out.rename(trash / out.name)
    except OSError:
        drop_tree(out)


def empty_trash() -> None:
    """Remove what :func:`discard_run` set aside (at the end of a bench, or left by a
    killed one at the start)."""
    drop_tree(runs_dir() / "trash")


def runs_dir() -> Path:
    """``bench-output/tmp/runs``, the parent of every client's output directory, flagged
    as a *top directory* (``chattr +T``) where the file system has the flag (ext4).

    Why: this machine's ext4 has no journal, and there a new inode is never one deleted
    in the last minute or more (``recently_deleted()`` in ext4's inode allocator): each
    create scans past them, reading inode tables — 0.3–0.75 ms of kernel CPU per new
    file right after a bench run (or a test suite) deleted thousands in the same block
    group, 20 µs otherwise. A subdirectory normally goes to its parent's block group, so
    every client's output landed where the previous client's had just been deleted, and
    paid ~3 s of CPU per 5,000 files for it (curl and aria2c on their only thread), more
    or less by luck of the allocator. Below a top directory, ext4 spreads each new
    subdirectory to a group with free space of its own (as for a directory at the root of
    the file system), so a client's files are created in a group nobody emptied lately.
    """
    path = OUTPUT / "tmp" / "runs"
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # not ext4 (or no such ioctl): nothing to do
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = bytearray(4)
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
            value = int.from_bytes(flags, sys.byteorder)
            if not value & FS_TOPDIR_FL:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS,
                            (value | FS_TOPDIR_FL).to_bytes(4, sys.byteorder))
        finally:
            os.close(fd)
    return path


def recycle_memory(nbytes: int) -> None:
    """Write and delete ``nbytes`` (+10 %) of scratch, untimed, right before a client runs.

    This VM reports free memory to its host (``page_reporting``); a page reported a few
    seconds ago costs a host fault when it is used again, so writing 5 MiB into the page
    cache costs ~10 ms of CPU with such pages and ~1.5 ms with recently freed ones. The
    order of the runs would decide who gets which: instead every client starts with
    enough recently freed memory for everything it will write.
    """
    path = OUTPUT / "tmp" / "scratch"
    block = bytes(1 << 20)
    with open(path, "wb", buffering=0) as f:
        for _ in range(int(nbytes * 1.1) // len(block) + 1):
            f.write(block)
    path.unlink()


def count_outputs(out: Path, size: int) -> tuple[int, int]:
    """(files of exactly ``size`` bytes ending in .zip, total bytes of them) under ``out``."""
    n = total = 0
    for dirpath, _, names in os.walk(out):
        for name in names:
            if name.endswith(".zip"):
                st = os.stat(os.path.join(dirpath, name))
                if st.st_size == size:
                    n += 1
                    total += st.st_size
    return n, total


# ------------------------------------------------------------------------------ servers


class Server:
    """A running server process: ``base_url``, ``name``, ``pid``."""

    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatorServer(Server):
    """``python -m backfill.simulator.cli`` serving ``data`` (latency added server-side)."""

    name = "simulator"

    def __init__(self, data: Dataset, work: Path, *, latency_s: float = 0.0) -> None:
        super().__init__()
        work.mkdir(parents=True, exist_ok=True)
        cfg = work / f"simulator-{data.key}.toml"
        cfg.write_text(data.simulator_toml())
        cache = max(64 * 2**20, data.files * data.size + 2**20) if not is_streamed(
            data.size) else 64 * 2**20
        cmd = [sys.executable, "-m", "backfill.simulator.cli", "--config", str(cfg),
               "--today", TODAY.isoformat(), "--port", "0", "--seed", str(SEED),
               "--size", str(data.size), "--boundary-available", "--cache-bytes", str(cache)]
        if latency_s:
            cmd += ["--latency", str(latency_s)]
        self.latency_s = latency_s
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"simulator did not start (got {line!r})")
        self.base_url = line
        if latency_s:
            self.name = f"simulator +{latency_s * 1000:g} ms"


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75;
    keepalive_requests 10000000;
    open_file_cache max=200000 inactive=120s;
    open_file_cache_valid 120s;
    types {{ }}
    default_type application/zip;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{ }}
    }}
    server {{
        listen 127.0.0.1:{same_port};
        root {www};
        location / {{ rewrite ^ {same} break; }}
    }}
{tls}}}
"""

# The https server: the same root, a certificate from the bench's own CA (trustme),
# keep-alive as above, TLS session tickets/cache on (what a browser-grade server does).
NGINX_TLS = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        root {www};
        ssl_certificate {pem};
        ssl_certificate_key {pem};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:TLS:10m;
        location / {{ }}
    }}
"""


def make_ca(work: Path) -> tuple[Path, Path]:
    """(CA certificate, server key + chain) for 127.0.0.1 and localhost, made with trustme
    once per bench run under ``work``."""
    import trustme

    work.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="moe-backfill bench")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, pem = work / "bench-ca.pem", work / "bench-server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    return ca_file, pem


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)


class NginxServer(Server):
    """nginx on 127.0.0.1 serving ``www``; ``same_url`` serves one body for every path."""

    name = "nginx"

    def __init__(self, www: Path, work: Path, *, tls: bool = False) -> None:
        super().__init__()
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx")
        prefix = (work / "nginx").absolute()
        www = www.absolute()
        prefix.mkdir(parents=True, exist_ok=True)
        port, same_port, tls_port = free_port(), free_port(), free_port()
        self.ca_file: Path | None = None
        tls_block = ""
        if tls:
            self.ca_file, pem = make_ca(prefix)
            tls_block = NGINX_TLS.format(port=tls_port, www=www, pem=pem)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "", prefix=prefix, port=port,
            same_port=same_port, www=www, same=SAME_BODY, tls=tls_block))
        self.proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf)], cwd=prefix,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(port)
            wait_listening(same_port)
            if tls:
                wait_listening(tls_port)
        except OSError:
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            self.stop()
            raise RuntimeError(f"nginx did not start: {err.decode(errors='replace')}") from None
        self.base_url = f"http://127.0.0.1:{port}"
        self.same_url = f"http://127.0.0.1:{same_port}"
        self.tls_url = f"https://127.0.0.1:{tls_port}" if tls else None

    @property
    def pid(self) -> int:
        """The worker's pid (the master does no serving)."""
        assert self.proc is not None
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            if children.split():
                return int(children.split()[0])
        return self.proc.pid


def www_root() -> Path:
    return OUTPUT / "www"


def files_ready(data: Dataset) -> bool:
    return (www_root() / data.key / ".done").exists()


def ensure_files(data: Dataset) -> Path:
    """Write ``data``'s bodies under ``bench-output/www/<key>/`` once (a marker records it);
    return that document root."""
    www = www_root() / data.key
    marker = www / ".done"
    if marker.exists():
        return www
    for _, app, fn in data.items():
        path = www / "campaign_reports" / "rest_api" / app / fn
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = BodySpec(SEED, app, fn, data.size)
        with open(path, "wb") as f:
            if is_streamed(data.size):
                for part in iter_body(spec):
                    f.write(part)
            else:
                f.write(build_body(spec))
    marker.touch()
    return www


def ensure_same_body(size: int) -> Path:
    www = www_root()
    path = www / SAME_BODY.lstrip("/")
    spec = BodySpec(SEED, "APP0000", report_filename("Report 000", TODAY), size)
    body = build_body(spec)
    if not path.exists() or path.stat().st_size != len(body):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return www


# ------------------------------------------------------------------------------ clients


def curl_binary() -> str | None:
    return shutil.which("curl")


def aria2c_binary() -> str | None:
    return shutil.which("aria2c")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_curl_config(reqs: list[Request], out: Path, path: Path) -> None:
    with open(path, "w") as f:
        for i, r in enumerate(reqs):
            if i:
                f.write("next\n")  # a trailing one would start an operation without a URL
            f.write(f"url = {_quote(r.url)}\noutput = {_quote(str(out / r.rel))}\n"
                    "create-dirs\n")
            for k, v in r.headers.items():
                f.write(f"header = {_quote(f'{k}: {v}')}\n")


def curl_command(config: Path, concurrency: int) -> list[str]:
    """(The CA of a TLS run goes in ``CURL_CA_BUNDLE``: a ``--cacert`` would apply to the
    first transfer only, ``next`` resets per-transfer options.)"""
    curl = curl_binary()
    assert curl is not None
    return [curl, "-Z", "--parallel-max", str(concurrency), "-s", "-S", "--config", str(config)]


def write_aria2_input(reqs: list[Request], path: Path) -> None:
    with open(path, "w") as f:
        for r in reqs:
            f.write(f"{r.url}\n  out={r.rel}\n")
            for k, v in r.headers.items():
                f.write(f"  header={k}: {v}\n")


def aria2c_command(input_file: Path, out: Path, concurrency: int,
                   ca_file: Path | None = None) -> list[str]:
    aria2c = aria2c_binary()
    assert aria2c is not None
    tls = [f"--ca-certificate={ca_file}"] if ca_file else []
    return [aria2c, "--no-conf=true", *tls, "-i", str(input_file), "-d", str(out),
            "-j", str(concurrency), "--split=1", "--max-connection-per-server=1",
            "--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false",
            "--http-accept-gzip=false", "--remote-time=false", "--conditional-get=false",
            "--enable-http-keep-alive=true", "--max-tries=1", "--disable-ipv6=true",
            "--deferred-input=true", "--quiet=true", "--summary-interval=0",
            "--console-log-level=error", "--download-result=hide"]


URLLIB_SCRIPT = """
import json, os, sys, urllib.request
out = sys.argv[2]
for url, headers, rel in json.load(open(sys.argv[1])):
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp, \\
            open(path, "wb") as f:
        while chunk := resp.read(256 * 1024):
            f.write(chunk)
"""


def write_urllib_input(reqs: list[Request], path: Path) -> None:
    path.write_text(json.dumps([[r.url, r.headers, r.rel] for r in reqs]))


def urllib_command(input_file: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", URLLIB_SCRIPT, str(input_file), str(out)]
