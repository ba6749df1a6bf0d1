"""``backfill simulate`` argument parsing (serving is tested in integration)."""

from __future__ import annotations

import argparse

import pytest

from backfill.errors import ConfigError
from backfill.simulator.cli import add_arguments, add_parser, demo_config, faults_from_args


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(argv)


def test_defaults_serve_the_demo_workspaces() -> None:
    args = parse()
    assert (args.host, args.port, args.today, args.seed, args.config) == (
        "127.0.0.1", 0, None, 0, None)
    assert [w.app_id for w in demo_config().workspaces] == ["ACME01", "GLOBEX7", "INITECH3"]
    assert not faults_from_args(args).any_rate


def test_fault_flags() -> None:
    f = faults_from_args(parse(
        "--rate-503", "0.2", "--rate-truncate-close", "0.1", "--latency", "0.05",
        "--no-retry-after", "--rate-limit", "5", "--fail-first", "a:b_20261126.zip:3:reset",
        "--fail-first", "c_20261126.zip:2", "--fail-first", "d.zip:1:429",
        "--file-size", "x=y_20261126.zip=400000000", "--today-not-generated"))
    assert (f.rate_503, f.rate_truncate_close, f.latency_s) == (0.2, 0.1, 0.05)
    assert f.retry_after_s is None and f.rate_limit == 5 and not f.today_generated
    assert [(r.filename, r.n, r.fault) for r in f.first_n] == [
        ("a:b_20261126.zip", 3, "reset"), ("c_20261126.zip", 2, 503), ("d.zip", 1, 429)]
    assert f.sizes == {"x=y_20261126.zip": 400_000_000}


@pytest.mark.parametrize("argv", [
    ["--rate-503", "1.5"], ["--fail-first", "x.zip:two"], ["--fail-first", "x.zip:1:boom"],
    ["--file-size", "x.zip"], ["--today", "27/11/2026"], ["--latency", "-1"],
])
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def test_rates_above_one_in_total_are_refused() -> None:
    with pytest.raises(ConfigError, match="add up"):
        faults_from_args(parse("--rate-503", "0.7", "--rate-500", "0.7"))


def test_registers_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--port", "8080", "--today", "2026-11-27"])
    assert args.command == "simulate" and args.port == 8080
