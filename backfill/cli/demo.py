"""``backfill demo``: a real backfill against the embedded simulator, zero set-up.

Starts the simulator in-process on a free loopback port with freshly generated
credentials, writes the config it uses, runs a backfill with live progress, shows the
summary and the status grid, then runs again to show that a resumed run downloads
nothing. ``--faults`` adds throttling, 5xx, dropped connections and a short outage.

Each demo starts afresh: the files a previous demo recorded in its manifest (and the
manifest) are removed first — only those, and only when the directory's ``demo.toml`` was
written by a demo. ``--resume`` keeps them and says so.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
from rich.console import Console

from ..config import Config, load_config
from ..engine import Backfill, Options
from ..errors import OutputDirError, os_error_reason
from ..journal.state import load_manifest
from ..safe_write import LinkAtName, write_replacing
from ..simulator import Faults, run_simulator
from ..summary import Summary, tally_records
from .democlear import DEMO_MARK, clear_previous
from .hints import command, prog
from .logs import EventLog, secrets_of, setup
from .progress import Progress
from .render import console as render_console
from .render import print_grid, print_status, print_summary

REPORT_NAMES = ("Daily campaign summary", "Email - delivery (EU)", "Push & in-app (all)",
                "Weekly SMS", "Journeys / flows")
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Singapore", "UTC",
         "Australia/Sydney")
KEY_ENV = "MOE_DEMO_API_KEY"


@dataclass(frozen=True, slots=True)
class DemoSettings:
    workspaces: int = 3
    reports: int = 2
    days: int = 10
    faults: bool = False
    output_dir: Path = Path("demo-output")
    progress: bool = True
    resume: bool = False


def demo_toml(s: DemoSettings, base_url: str) -> str:
    """The config the demo runs with; the key itself stays in the environment."""
    reports = ", ".join(f'"{n}"' for n in REPORT_NAMES[: s.reports])
    cfg = shlex.quote(str(s.output_dir / "demo.toml"))
    port = base_url.rsplit(":", 1)[-1]
    parts = [textwrap.dedent(f"""\
        {DEMO_MARK} (its simulator has stopped). To use it again, any key
        # will do as long as the simulator and the run share it:
        #   export {KEY_ENV}=demo-api-key
        #   {prog()} simulate --config {cfg} --port {port} &
        #   {prog()} run {cfg}
        [run]
        start = "-{s.days - 1}d"
        end = "today"
        output_dir = "."
        concurrency = 16

        [retry]
        backoff_base_s = 0.2
        backoff_max_s = 2
        breaker_threshold = 4
        probe_interval_s = 0.5
        probe_interval_max_s = 2

        [defaults]
        api_key = "${{{KEY_ENV}}}"
        base_url = "{base_url}"
        reports = [{reports}]
        concurrency = 4
        """)]
    for i in range(s.workspaces):
        parts.append(textwrap.dedent(f"""
            [[workspace]]
            name = "demo-{i + 1}"
            app_id = "DEMO{i + 1:03d}"
            timezone = "{ZONES[i % len(ZONES)]}"
            """))
    return "".join(parts)


def _faults(enabled: bool) -> Faults:
    base = Faults(latency_s=0.15, jitter_s=0.25, missing_rate=0.08)
    if enabled:
        base.rate_429 = 0.08
        base.retry_after_s = 0.5
        base.rate_503 = 0.06
        base.rate_500 = 0.03
        base.rate_reset = 0.04
    return base


async def run_demo(s: DemoSettings, console: Console | None = None) -> Summary:
    console = console or render_console(sys.stderr)
    out = s.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if s.resume:
        console.print(f"Resuming the previous demo in {out} (without --resume a demo starts "
                      "afresh).")
    elif removed := clear_previous(out):
        console.print(f"Starting afresh: removed the previous demo's {removed} files from "
                      f"{out} (--resume keeps them).")
    os.environ.setdefault(KEY_ENV, "demo-" + secrets.token_hex(12))
    cfg_path = out / "demo.toml"
    # The simulator needs the workspaces before it has a port: parse once with a
    # placeholder URL, then write the real file.
    write_demo_config(cfg_path, demo_toml(s, "http://127.0.0.1:1"))
    placeholder = load_config(cfg_path)
    async with run_simulator(placeholder, faults=_faults(s.faults)) as sim:
        write_demo_config(cfg_path, demo_toml(s, sim.base_url))
        config = load_config(cfg_path)
        console.print(f"[bold]moe-backfill demo[/bold]: simulator at {sim.base_url}, "
                      f"{s.workspaces} workspaces × {s.reports} reports × {s.days} days")
        console.print(f"config: {cfg_path}  ·  files: {out}")
        if s.faults:
            console.print("faults on: throttling (429), 5xx, dropped connections, and a "
                          "3-second outage a moment after the start")
        first = await _one_run(config, sim, s, console, outage=s.faults)
        print_summary(first, console)
        state = load_manifest(config.run.manifest_path)
        print_grid(list(state), config.workspaces, datetime.now(UTC), console)
        console.print("\n[bold]Running again[/bold]: the manifest says what is done, so a "
                      "resumed run downloads nothing new (it only re-checks missing files).")
        before = sim.counters.statuses()[200]
        second = await _one_run(config, sim, s, console, outage=False)
        fetched = sim.counters.statuses()[200] - before
        console.print(f"second run: {second.requests} requests, {fetched} downloads, "
                      f"{second.totals['completed']} files complete.")
        print_status(tally_records(load_manifest(config.run.manifest_path),
                                   config.workspaces, datetime.now(UTC)),
                     config.run.manifest_path, console)
        console.print(f"\nTry: {command('status', str(cfg_path), '--grid')}")
        return first


def write_demo_config(path: Path, text: str) -> None:
    """Replace the demo's config atomically; a link planted at its name is refused, never
    written through (OutputDirError, exit 2, naming the path)."""
    try:
        write_replacing(path, text.encode())
    except LinkAtName as exc:
        raise OutputDirError(str(exc)) from None
    except OSError as exc:
        raise OutputDirError(f"{path}: cannot write ({os_error_reason(exc)})") from None


async def _one_run(config: Config, sim: object, s: DemoSettings, console: Console,
                   *, outage: bool) -> Summary:
    engine = Backfill(config, Options())
    progress = Progress(enabled=s.progress, stream=console.file, interval_s=1.0)
    setup(quiet=progress.live_mode, secrets=secrets_of(config))
    engine.subscribe(EventLog())
    engine.subscribe(progress)
    with progress:
        async with anyio.create_task_group() as tg:
            if outage:
                tg.start_soon(_outage_soon, sim)
            summary = await engine.run()
            tg.cancel_scope.cancel()
    return summary


async def _outage_soon(sim: object) -> None:
    from ..simulator import Simulator

    assert isinstance(sim, Simulator)
    await sim.wait_until(lambda c: c.total >= 20)
    sim.start_outage(3.0, mode="refused")
