"""The command line: argument parsing and presentation only.

    commands.py   the ``backfill`` parser and one function per command
    helptext.py   the words of ``--help``: what it does, commands, examples, exit codes
    hints.py      the command as the user can type it, for "Try: …" hints
    argtypes.py   argparse value types (dates, durations, sizes)
    render.py     tables and summaries on the terminal (rich)
    progress.py   the live progress panel (engine events)
    logs.py       log lines from engine events, secrets scrubbed
    demo.py       ``backfill demo``: the simulator in-process and a real backfill

Each command imports what it needs when it runs: ``backfill plan`` loads neither the
engine nor aiohttp.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The ``backfill`` command; returns its exit code."""
    from .commands import main as run

    return run(argv)
