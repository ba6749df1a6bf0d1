"""The words of ``backfill --help`` and of each command's ``--help``: plain text that fits
80 columns, laid out like pip's and rclone's help (what it does, commands, examples, exit
codes, where the config reference is)."""

from __future__ import annotations

DESCRIPTION = """\
Download MoEngage campaign reports before they expire.

MoEngage keeps each report file for 7 days. backfill plans every
(workspace, report, day) file in a date range, downloads them concurrently with
retries, and records each outcome in a manifest, so that a run that is killed,
interrupted or cut off by an outage resumes without losing or re-downloading
anything."""

EXIT_CODES = """\
exit codes:
  0    nothing failed (missing, expired and pending files are not failures)
  1    some files failed: a re-run retries them (check, verify: a check failed)
  2    bad config or usage: one line names the key, value or path
  3    status --check found a problem (for monitoring)
  75   another run holds the manifest lock
  130  interrupted: the manifest is consistent; a re-run resumes"""

EPILOG = f"""\
examples:
  backfill demo                     a real backfill against a built-in simulator
  backfill check my.toml            are keys, app_id and report names right?
  backfill plan my.toml             what a run would fetch (sends nothing)
  backfill run my.toml              fetch; run it again at any time to resume
  backfill status my.toml --grid    what is done, what is at risk
  backfill completion bash          shell completion (see the README)

{EXIT_CODES}

The config reference is configs/example.toml (every key, commented) and the
README's "Configuration" section. 'backfill COMMAND --help' shows a command's
options."""

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (one line for the command list, epilog of its own --help)
    "plan": ("show what a run would fetch, without any request", """\
examples:
  backfill plan my.toml
  backfill plan my.toml --start 2026-11-01 --end yesterday --json"""),
    "run": ("download every planned file not yet done", """\
examples:
  backfill run my.toml                     the last 7 days, as the config says
  backfill run my.toml --workspace acme    one workspace only
  backfill run my.toml --max-outage 2h     wait longer for a flapping API
  backfill run my.toml --no-progress --log-file backfill.log   for cron

Run it again at any time: completed files are skipped, failed ones retried."""),
    "status": ("what the manifest says, per workspace, and what is at risk", """\
examples:
  backfill status my.toml
  backfill status my.toml --grid
  backfill status reports/manifest.jsonl --json"""),
    "verify": ("re-hash completed files; queue missing or altered ones again", """\
Sends no request and needs no API keys. Exit 1 when a file was bad."""),
    "check": ("one request per workspace and report: are keys and names right?", """\
Reads only the status of each answer: downloads nothing, writes nothing.
Exit 0 when every check passed, 1 otherwise.

examples:
  backfill check my.toml
  backfill check my.toml --workspace acme"""),
    "extract": ("convert completed downloads into typed Parquet tables", """\
Needs pyarrow: pip install 'moe-backfill[parquet]'."""),
    "manifest": ("manifest tools: merge shard manifests (manifest merge OUT IN...)", """\
A completed file beats any other status, otherwise the newest record wins."""),
    "simulate": ("serve a local imitation of the API, with fault injection", """\
The base URL is printed on the first line of stdout; it serves until Ctrl-C.
Without --config it serves the demo workspaces (api_key "demo-api-key").

examples:
  backfill simulate --port 8080
  backfill simulate --config my.toml --rate-503 0.1 --latency 0.05"""),
    "demo": ("a real backfill against the built-in simulator, zero set-up", """\
Starts a simulator in-process, writes DIR/demo.toml and downloads into DIR.
Each demo starts afresh (the previous demo's files in DIR are removed);
--resume runs again on the previous manifest instead."""),
    "completion": ("print a shell completion script (bash, zsh or fish)", """\
examples:
  backfill completion bash > ~/.local/share/bash-completion/completions/backfill
  backfill completion zsh > ~/.zfunc/_backfill     (fpath+=~/.zfunc in ~/.zshrc)
  backfill completion fish > ~/.config/fish/completions/backfill.fish"""),
}
