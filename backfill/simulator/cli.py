"""``backfill simulate``: serve the simulator until SIGINT/SIGTERM.

The base URL is the first line on stdout (flushed), so a script can start the server with
``--port 0`` and read where it listens. Without ``--config`` it serves :data:`DEMO_TOML`,
the same workspaces as ``configs/demo.toml`` (embedded: the package may be installed
without the repository's configs/).

Also runnable as ``python -m backfill.simulator.cli`` (used by the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli.argtypes import byte_count, day, fraction, port, seconds
from ..config import Config, load_config, parse_config
from ..errors import ConfigError
from .catalog import DEFAULT_CACHE_BYTES
from .faults import KINDS, Faults, FirstN, check_fault, rate_fields

if TYPE_CHECKING:
    from .app import Simulator

DEMO_TOML = """
[defaults]
api_key = "demo-api-key"
reports = ["Daily campaign summary", "Email - delivery (EU)"]

[[workspace]]
name = "acme"
app_id = "ACME01"
data_center = "02"
timezone = "Europe/Berlin"

[[workspace]]
name = "globex"
app_id = "GLOBEX7"
timezone = "America/New_York"
secret_key = "demo-secret"
reports = ["Daily campaign summary", { name = "Weekly push", schedule = "weekly:mon" }]

[[workspace]]
name = "initech"
app_id = "INITECH3"
data_center = "03"
timezone = "Asia/Kolkata"
"""


def demo_config() -> Config:
    """The built-in demo workspaces (keys are fake, see :data:`DEMO_TOML`)."""
    return parse_config(tomllib.loads(DEMO_TOML), Path("<built-in demo>"), env={})


def _first_n(text: str) -> FirstN:
    """``FILENAME:N[:FAULT]`` (split from the right: file names may contain ':')."""
    parts = text.rsplit(":", 2)
    try:
        if len(parts) == 3 and parts[1].isdigit():
            name, n, fault = parts
        else:
            name, n = text.rsplit(":", 1)
            fault = "503"
        kind: int | str = int(fault) if fault.isdigit() else fault
        return FirstN(name, int(n), check_fault(kind))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use FILENAME:N[:FAULT] with FAULT a status or one of "
            f"{', '.join(KINDS)} ({exc})") from None


def _file_size(text: str) -> tuple[str, int]:
    name, sep, size = text.rpartition("=")
    if not sep or not name or not size.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use FILENAME=BYTES")
    return name, int(size)


def add_parser(subparsers: Any) -> None:
    """Register ``simulate`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "simulate", help="serve a local imitation of the API, with fault injection",
        description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Faults()
    p.add_argument("--config", help="serve the workspaces of this TOML config "
                   "(default: the built-in demo workspaces)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    p.add_argument("--port", type=port, default=0, help="port; 0 picks a free one (%(default)s)")
    p.add_argument("--today", type=day, help="pin the server's date in every workspace zone")
    p.add_argument("--seed", type=int, default=0, help="seed of bodies and faults (%(default)s)")
    p.add_argument("--size", type=byte_count, default=d.size,
                   help="body size in bytes (%(default)s)")
    p.add_argument("--file-size", type=_file_size, action="append", default=[],
                   metavar="FILENAME=BYTES", help="body size of one file (repeatable)")
    p.add_argument("--cache-bytes", type=byte_count, default=DEFAULT_CACHE_BYTES,
                   help="body cache bound in bytes (%(default)s)")
    g = p.add_argument_group("faults (rates are probabilities per request, summed ≤ 1)")
    for name in rate_fields():
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=fraction, default=0.0,
                       metavar="P", help=f"probability of the {name[5:]} fault")
    g.add_argument("--latency", type=seconds, default=0.0, metavar="S",
                   help="added to every request")
    g.add_argument("--jitter", type=seconds, default=0.0, metavar="S",
                   help="plus uniform [0, S) per request")
    g.add_argument("--retry-after", type=seconds, default=d.retry_after_s, metavar="S",
                   help="Retry-After on 429 (%(default)s)")
    g.add_argument("--retry-after-date", action="store_true",
                   help="send Retry-After as an HTTP date")
    g.add_argument("--no-retry-after", action="store_true", help="send 429 without Retry-After")
    g.add_argument("--stall", type=seconds, default=d.stall_s, metavar="S",
                   help="length of stall_headers / stall_body (%(default)s)")
    g.add_argument("--drip-interval", type=seconds, default=d.drip_interval_s, metavar="S",
                   help="seconds between bytes of a drip (%(default)s)")
    g.add_argument("--too-large-bytes", type=byte_count, default=d.too_large_bytes, metavar="N",
                   help="body size of the too_large fault (%(default)s)")
    g.add_argument("--redirect-to", metavar="URL", help="other origin for the redirect fault")
    g.add_argument("--rate-limit", type=float, metavar="RPS",
                   help="per-workspace token bucket; over it: 429")
    g.add_argument("--rate-burst", type=float, metavar="N", help="bucket size (max(1, RPS))")
    g.add_argument("--missing-rate", type=fraction, default=0.0, metavar="P",
                   help="fraction of files that do not exist (400)")
    g.add_argument("--fail-first", type=_first_n, action="append", default=[],
                   metavar="FILENAME:N[:FAULT]", help="fail the first N attempts (repeatable)")
    g.add_argument("--boundary-available", action="store_true",
                   help="still serve files exactly 7 days old")
    g.add_argument("--today-not-generated", action="store_true",
                   help="today's files do not exist yet (400)")


def faults_from_args(args: argparse.Namespace) -> Faults:
    rates = {name: getattr(args, name) for name in rate_fields()}
    faults = Faults(
        latency_s=args.latency, jitter_s=args.jitter,
        retry_after_s=None if args.no_retry_after else args.retry_after,
        retry_after_date=args.retry_after_date, stall_s=args.stall,
        drip_interval_s=args.drip_interval, too_large_bytes=args.too_large_bytes,
        redirect_to=args.redirect_to, rate_limit=args.rate_limit, rate_burst=args.rate_burst,
        missing_rate=args.missing_rate, first_n=list(args.fail_first),
        boundary_available=args.boundary_available,
        today_generated=not args.today_not_generated, size=args.size,
        sizes=dict(args.file_size), **rates,
    )
    if faults.total_rate() > 1.0 + 1e-9:
        raise ConfigError(f"usage: fault rates add up to {faults.total_rate():.3f} (> 1)")
    return faults


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 2 on a bad config."""
    try:
        config = load_config(args.config) if args.config else demo_config()
        faults = faults_from_args(args)
    except ConfigError as exc:
        print(f"backfill simulate: {exc}", file=sys.stderr)
        return exc.exit_code
    from .app import Simulator

    sim = Simulator(config, seed=args.seed, today=args.today, faults=faults,
                    cache_bytes=args.cache_bytes)
    try:
        asyncio.run(_serve(sim, args.host, args.port))
    except OSError as exc:
        print(f"backfill simulate: cannot listen on {args.host}:{args.port} ({exc.strerror})",
              file=sys.stderr)
        return 2
    return 0


async def _serve(sim: Simulator, host: str, port: int) -> None:
    await sim.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print(sim.base_url, flush=True)
        names = ", ".join(ws.app_id for ws in sim.catalog.workspaces)
        print(f"serving {names} (seed {sim.seed}); Ctrl-C to stop", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backfill simulate", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DEMO_TOML", "add_arguments", "add_parser", "demo_config", "faults_from_args", "main",
           "run"]
