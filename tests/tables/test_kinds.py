"""The type lattice and whole-file inference over Arrow chunks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.tables.kinds import NULL, STRING, ColumnType, Kind, decimal, integer, join

pa = pytest.importorskip("pyarrow")

from backfill.tables.infer import Inference, arrow_type, column_type  # noqa: E402

KINDS = st.sampled_from([NULL, STRING, integer(3), integer(18), decimal(4, 2), decimal(1, 5),
                         ColumnType(Kind.FLOAT), ColumnType(Kind.DATE),
                         ColumnType(Kind.TIMESTAMP), ColumnType(Kind.TIMESTAMP_TZ),
                         ColumnType(Kind.BOOL)])


@given(KINDS, KINDS, KINDS)
def test_join_is_a_lattice(a: ColumnType, b: ColumnType, c: ColumnType) -> None:
    assert join(a, b) == join(b, a)
    assert join(join(a, b), c) == join(a, join(b, c))
    assert join(a, a) == a and join(a, NULL) == a and join(a, STRING) == STRING


def test_numbers_widen_without_loss() -> None:
    assert join(integer(3), decimal(4, 2)) == decimal(4, 2)
    assert join(integer(18), decimal(1, 2)) == decimal(18, 2)
    assert join(decimal(30, 0), decimal(1, 10)) == STRING  # 40 digits: no decimal128 holds it
    assert join(integer(18), integer(19)).kind is Kind.DECIMAL
    assert join(ColumnType(Kind.DATE), ColumnType(Kind.TIMESTAMP_TZ)) == STRING


def infer(*chunks: list[str | None]) -> ColumnType:
    inference = Inference(["x"])
    for chunk in chunks:
        inference.feed(pa.record_batch([pa.array(chunk, pa.string())], names=["x"]))
    return inference.types[0]


@pytest.mark.parametrize(("chunks", "dtype"), [
    ([["1", None, "-20"]], pa.int64()),
    ([["1", "2"], ["3"], ["1906.19"]], pa.decimal128(6, 2)),  # integral first, decimal later
    ([["0.5"], ["-12.125"]], pa.decimal128(5, 3)),
    ([["1.5e3", "2"]], pa.float64()),
    ([["007", "12"]], pa.string()),  # a leading zero is an id, not a number
    ([["+5", "3"]], pa.string()),  # pyarrow refuses a plus sign
    ([["2026-11-21", None]], pa.date32()),
    ([["2026-02-30"]], pa.string()),
    ([["2026-11-21T09:30:00+05:30"], ["2026-11-21 09:30:00Z"]], pa.timestamp("us", tz="UTC")),
    ([["2026-11-21 09:30:00"]], pa.timestamp("us")),
    ([["2026-11-21 09:30:00"], ["2026-11-21T09:30:00+01:00"]], pa.string()),
    ([["true", "FALSE"]], pa.bool_()),
    ([[None, None], [None]], pa.null()),
    ([["1"], ["x"], ["2"]], pa.string()),
    ([["123456789012345678901234"]], pa.decimal128(24, 0)),
])
def test_inference_looks_at_every_chunk(chunks: list[list[str | None]], dtype: object) -> None:
    t = infer(*chunks)
    assert arrow_type(t) == dtype
    assert column_type(arrow_type(t)).kind is t.kind
