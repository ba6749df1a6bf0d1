"""Fault decisions: pure functions of (seed, app, file, attempt); rates stack; buckets."""

from __future__ import annotations

import email.utils
from collections import Counter

import pytest

from backfill.simulator.faults import KINDS, Faults, FirstN, TokenBucket, choose, latency, missing


def test_no_faults_by_default() -> None:
    f = Faults()
    assert not f.any_rate
    assert all(choose(f, 0, "A", f"f{i}", 1) is None for i in range(100))


def test_any_rate_follows_assignment() -> None:
    f = Faults(rate_drip=0.1)
    assert f.any_rate
    f.rate_drip = 0.0
    assert not f.any_rate
    f.rate_503 = 0.5
    assert f.any_rate


def test_choice_is_a_function_of_its_arguments() -> None:
    f = Faults(rate_503=0.3, rate_reset=0.2)
    a = [choose(f, 1, "A", f"f{i}", k) for i in range(200) for k in (1, 2)]
    b = [choose(f, 1, "A", f"f{i}", k) for i in range(200) for k in (1, 2)]
    c = [choose(f, 2, "A", f"f{i}", k) for i in range(200) for k in (1, 2)]
    assert a == b != c


def test_rates_stack_and_exclude_each_other() -> None:
    f = Faults(rate_429=0.2, rate_503=0.3, rate_html=0.1)
    got = Counter(choose(f, 0, "A", f"f{i}", 1) for i in range(4000))
    assert set(got) == {None, 429, 503, "html"}
    assert abs(got[503] / 4000 - 0.3) < 0.04 and abs(got[None] / 4000 - 0.4) < 0.04
    f = Faults(rate_500=1.0)
    assert {choose(f, 0, "A", f"f{i}", 1) for i in range(50)} == {500}


def test_first_n_wins_for_its_file_and_app() -> None:
    f = Faults(first_n=[FirstN("x.zip", 2, "reset", app_id="A")])
    assert [choose(f, 0, "A", "x.zip", k) for k in (1, 2, 3)] == ["reset", "reset", None]
    assert choose(f, 0, "B", "x.zip", 1) is None
    f.first_n.append(FirstN("y.zip", 1))
    assert choose(f, 0, "B", "y.zip", 1) == 503


@pytest.mark.parametrize("bad", [42, 700, "teapot"])
def test_unknown_fault_is_refused(bad: int | str) -> None:
    with pytest.raises(ValueError):
        FirstN("x.zip", 1, bad)


def test_every_kind_has_a_rate_field() -> None:
    f = Faults()
    assert all(hasattr(f, f"rate_{k}") for k in KINDS)


def test_latency_and_missing_are_deterministic() -> None:
    f = Faults(latency_s=0.1, jitter_s=0.2)
    values = [latency(f, 0, "A", f"f{i}", 1) for i in range(100)]
    assert all(0.1 <= v < 0.3 for v in values) and len(set(values)) > 50
    assert values == [latency(f, 0, "A", f"f{i}", 1) for i in range(100)]
    f.missing_rate = 0.5
    gone = {i for i in range(200) if missing(f, 0, "A", f"f{i}")}
    assert 60 < len(gone) < 140 and gone == {i for i in range(200) if missing(f, 0, "A", f"f{i}")}


def test_retry_after_forms() -> None:
    assert Faults(retry_after_s=2.5).retry_after() == "3"
    assert Faults().retry_after(0.2) == "1"
    assert Faults(retry_after_s=None).retry_after() is None
    assert email.utils.parsedate_to_datetime(Faults(retry_after_date=True).retry_after() or "")


def test_token_bucket() -> None:
    b = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    assert [b.take(0.0), b.take(0.0)] == [0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.5)
    assert b.take(0.5) == 0.0
