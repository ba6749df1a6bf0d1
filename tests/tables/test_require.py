"""Without pyarrow, tables are one clear error naming the extra (exit 2)."""

from __future__ import annotations

import sys

import pytest

from backfill.tables import MissingExtra, require


def test_missing_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(MissingExtra) as caught:
        require()
    assert str(caught.value) == ("tables need pyarrow, which is not installed: "
                                 "pip install 'moe-backfill[parquet]'")
    assert caught.value.exit_code == 2


def test_present_pyarrow_passes() -> None:
    require()
