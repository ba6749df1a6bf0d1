"""Start the object-store emulators on 127.0.0.1 for the tests: moto (S3) and Azurite.

Each runs as a subprocess on a free port and is stopped at teardown. Where they are:

    moto      $BACKFILL_MOTO_SERVER, or <repo>/.venv-moto/bin/moto_server, or on PATH
    Azurite   $BACKFILL_AZURITE, or <repo>/.npm-azurite/node_modules/.bin/azurite-blob,
              or azurite-blob on PATH

``.ci/run`` installs both into those gitignored folders. A missing emulator skips its
tests on a workstation and fails them in CI (CI=true), so CI never passes by skipping.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBH"
               "BeksoGMGw==")  # Azurite's published development key


def find(env_var: str, in_repo: str, on_path: str) -> str | None:
    """The emulator executable, or None."""
    for candidate in (os.environ.get(env_var), str(REPO / in_repo)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(on_path)


def missing(what: str, install: str) -> None:
    """Skip (workstation) or fail (CI) for an emulator that is not installed."""
    message = f"{what} is not installed ({install}; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Emulator:
    """A running emulator: its endpoint and the process."""

    endpoint: str
    port: int
    process: subprocess.Popen[bytes]
    drain: threading.Thread

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.drain.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start(argv: list[str], ready: str, port: int, *, cwd: str, timeout: float = 60.0,
          ) -> Emulator:
    """Run ``argv``; return once a line of its output matches ``ready``."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = b""
    pattern = re.compile(ready.encode())
    while not pattern.search(seen):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            raise RuntimeError(f"{argv[0]} did not start: {seen[-2000:].decode(errors='replace')}")
        if sel.select(timeout=left):
            data = os.read(proc.stdout.fileno(), 65536)
            if not data and proc.poll() is not None:
                continue
            seen += data
    sel.close()
    # Drain the output from now on so the emulator never blocks on a full pipe.
    return Emulator(f"http://127.0.0.1:{port}", port, proc, _drain(proc))


def _drain(proc: subprocess.Popen[bytes]) -> threading.Thread:
    def run() -> None:
        assert proc.stdout is not None
        while os.read(proc.stdout.fileno(), 65536):
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def start_moto() -> Emulator:
    exe = find("BACKFILL_MOTO_SERVER", ".venv-moto/bin/moto_server", "moto_server")
    if exe is None:
        missing("moto (S3 emulator)", "python -m venv .venv-moto && "
                ".venv-moto/bin/pip install 'moto[s3]' flask flask-cors")
    assert exe is not None
    port = free_port()
    return start([exe, "-H", "127.0.0.1", "-p", str(port)], r"Running on http", port,
                 cwd=tempfile.gettempdir())


def start_azurite(workdir: Path) -> Emulator:
    exe = find("BACKFILL_AZURITE", ".npm-azurite/node_modules/.bin/azurite-blob",
               "azurite-blob")
    if exe is None:
        missing("Azurite (Azure emulator)", "npm install --prefix .npm-azurite azurite")
    assert exe is not None
    port = free_port()
    argv = [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--disableTelemetry",
            "--skipApiVersionCheck", "--inMemoryPersistence", "--silent"]
    return start(argv, r"successfully listens", port, cwd=str(workdir))


def s3_create_bucket(endpoint: str, bucket: str) -> None:
    """Create a bucket on moto (it accepts an unsigned CreateBucket)."""
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")):
        pass


def azure_create_container(endpoint: str, name: str) -> None:
    """Create a container on Azurite with a SharedKey-signed REST call (no SDK needed)."""
    date = email.utils.formatdate(usegmt=True)
    version = "2021-08-06"
    to_sign = ("PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n"
               f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container")
    key = base64.b64decode(AZURITE_KEY)
    sig = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    req = urllib.request.Request(
        f"{endpoint}/{AZURITE_ACCOUNT}/{name}?restype=container", method="PUT",
        headers={"x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
                 "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{sig}"})
    with urllib.request.urlopen(req):
        pass


def running(emulator: Emulator) -> Iterator[Emulator]:
    try:
        yield emulator
    finally:
        emulator.stop()


class Outage:
    """A TCP relay in front of an emulator that can go down and come back on its port.

    ``down()`` closes the listening socket and every relayed connection (what a store
    going away looks like to a client: resets, then refused connections); ``up()``
    listens again on the same port. ``stall_after(n)`` forwards only the first ``n``
    bytes clients send, then holds the rest until ``release()`` (an upload provably
    under way and unable to finish: a fault can be injected mid-upload, not by timing).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._budget: int | None = None  # bytes clients may still send; None: no limit
        self._flowing = threading.Condition(self._lock)
        self.stalled = threading.Event()
        self.up()

    def stall_after(self, nbytes: int) -> threading.Event:
        """Hold client bytes past the next ``nbytes``; the event is set once some are held."""
        with self._lock:
            self._budget = nbytes
            self.stalled.clear()
        return self.stalled

    def release(self) -> None:
        with self._lock:
            self._budget = None
            self._flowing.notify_all()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._spawn(self._accept, listener)

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def close(self) -> None:
        self.release()
        self.down()
        for t in self._threads:
            t.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            self._spawn(self._pipe, client, server, True)
            self._spawn(self._pipe, server, client, False)

    def _allow(self, data: bytes) -> bytes:
        """What of ``data`` (from a client) may go on now; waits while stalled."""
        with self._lock:
            while self._budget == 0:
                self.stalled.set()
                self._flowing.wait()
            if self._budget is None:
                return data
            n = min(len(data), self._budget)
            self._budget -= n
            return data[:n]

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                while upstream and data:
                    allowed = self._allow(data)
                    dst.sendall(allowed)
                    data = data[len(allowed):]
                if not upstream:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
