"""Latency in the kernel path: a private network namespace whose loopback delays packets.

The latency scenarios run servers and clients inside a network namespace that the bench
makes itself (``ip netns add``), on its loopback (127.0.0.1 *inside* that namespace: no
other address is ever a target). While a scenario runs, one iptables rule sends every TCP
packet leaving loopback to an NFQUEUE, and ``nfq-delay`` (``nfq_delay.c``, compiled here
on first use) accepts each one ``one_way_s`` later. A packet crosses that rule once on
loopback, so a round trip costs ``2 × one_way_s`` — the SYN, every request, every response
segment and every ACK alike, for every client. This kernel has no ``netem`` qdisc; the
method is the same in spirit (the packets are delayed, not the server's answers).

The driver process itself joins the namespace (``setns``), so every process it starts —
nginx, the clients, the delay helper, py-spy — is inside it; it returns to the network
namespace it came from on exit, and the namespace is deleted.

Needs root, ``ip`` (iproute2), ``iptables`` and gcc with libnetfilter_queue:
``apt-get install iproute2 iptables gcc libnetfilter-queue-dev``. Without them the
latency scenarios are skipped with that hint (:func:`missing`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "nfq_delay.c"
INSTALL = "apt-get install iproute2 iptables gcc libnetfilter-queue-dev"
CLONE_NEWNET = 0x40000000
QUEUE = 7
RULE = ["OUTPUT", "-o", "lo", "-p", "tcp", "-j", "NFQUEUE", "--queue-num", str(QUEUE)]


def _libc_setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip() or res.returncode}")


def helper_binary(build_dir: Path) -> Path:
    """``nfq-delay``, compiled from ``nfq_delay.c`` when missing or older than it."""
    binary = build_dir / "nfq-delay"
    if binary.exists() and binary.stat().st_mtime >= SOURCE.stat().st_mtime:
        return binary
    build_dir.mkdir(parents=True, exist_ok=True)
    cc = shutil.which("gcc") or shutil.which("cc") or "gcc"
    _run([cc, "-O2", "-o", str(binary), str(SOURCE), "-lnetfilter_queue", "-lnfnetlink"])
    return binary


def missing(build_dir: Path) -> str | None:
    """Why kernel-path latency cannot run here (with the install hint), or None."""
    if os.geteuid() != 0:
        return "needs root (a network namespace and an iptables rule)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} not installed ({INSTALL})"
    try:
        helper_binary(build_dir)
    except (RuntimeError, OSError) as exc:
        return f"cannot build nfq-delay ({INSTALL}): {str(exc)[-300:]}"
    return None


class Namespace:
    """``with Namespace(name):`` — this process (and what it starts) in a fresh netns."""

    def __init__(self, name: str, build_dir: Path) -> None:
        self.name = name
        self.build_dir = build_dir
        self._home: int | None = None
        self.helper: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Namespace:
        with contextlib.suppress(RuntimeError):
            _run(["ip", "netns", "del", self.name])  # a leftover of a killed run
        _run(["ip", "netns", "add", self.name])
        try:
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
            self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                _libc_setns(fd)
            finally:
                os.close(fd)
        except BaseException:
            self.__exit__()
            raise
        return self

    def inside(self) -> bool:
        try:
            return (os.stat("/proc/self/ns/net").st_ino
                    == os.stat(f"/run/netns/{self.name}").st_ino)
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self._home is not None:
            _libc_setns(self._home)
            os.close(self._home)
            self._home = None
        with contextlib.suppress(RuntimeError):
            _run(["ip", "netns", "del", self.name])

    @contextlib.contextmanager
    def delay(self, one_way_s: float) -> Iterator[subprocess.Popen[bytes]]:
        """Every TCP packet on this namespace's loopback held ``one_way_s``; yields the
        helper process (its CPU is reported beside the clients')."""
        if not self.inside():  # never put a rule into the host's own namespace
            raise RuntimeError(f"not inside network namespace {self.name}")
        binary = helper_binary(self.build_dir)
        proc = subprocess.Popen([str(binary), str(QUEUE), str(round(one_way_s * 1e6))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            proc.kill()
            err = proc.communicate()[1].decode(errors="replace")
            raise RuntimeError(f"nfq-delay did not start: {err.strip()}")
        try:
            _run(["iptables", "-A", *RULE])
            try:
                yield proc
            finally:
                _run(["iptables", "-D", *RULE])
        finally:
            proc.terminate()
            proc.communicate(timeout=10)
