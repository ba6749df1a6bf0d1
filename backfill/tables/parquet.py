"""Parquet files of one dataset: batches completed to the dataset's schema and written in
row groups of about :data:`ROW_GROUP_ROWS` rows, zstd-compressed.

Memory: at most one row group of Arrow data is held (batches are buffered until the row
group is full, then written), whatever the size of the CSV.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .infer import arrow_type
from .names import EXTRA_COLUMNS
from .schema import Columns

ROW_GROUP_ROWS = 1_000_000
# ... or fewer, when that many rows would hold more than this in memory (a wide CSV):
# measured on a 500 MB simulator CSV, 1M-row groups peaked at ~900 MiB RSS.
ROW_GROUP_BYTES = 128 * 1024 * 1024
COMPRESSION = "zstd"
EXTRA_TYPES = {"workspace": pa.string(), "app_id": pa.string(), "report": pa.string(),
               "generation_date": pa.date32(), "source_file": pa.string()}


@dataclass(frozen=True, slots=True)
class Origin:
    """The values of the extra columns for every row of one file."""

    workspace: str
    app_id: str
    report: str
    generation_date: date
    source_file: str

    def value(self, name: str) -> Any:
        return getattr(self, name)


def arrow_schema(columns: Columns) -> Any:
    fields = [pa.field(name, arrow_type(t)) for name, t in columns]
    fields += [pa.field(name, EXTRA_TYPES[name]) for name in EXTRA_COLUMNS]
    return pa.schema(fields)


def complete(batch: Any, schema: Any, origin: Origin | None) -> Any:
    """``batch`` with every field of ``schema``: cast where the type differs, null where
    the column is absent, the extra columns from ``origin`` (or kept from ``batch``)."""
    n = batch.num_rows
    have = set(batch.schema.names)
    arrays = []
    for f in schema:
        if origin is not None and f.name in EXTRA_TYPES:
            arrays.append(pa.repeat(pa.scalar(origin.value(f.name), f.type), n))
        elif f.name in have:
            col = batch.column(f.name)
            arrays.append(col if col.type == f.type else _cast(col, f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _cast(values: Any, dtype: Any) -> Any:
    """A lossless cast to a wider type. An int64 goes to a decimal through the widest
    decimal of its scale (pyarrow checks the type's 19 digits, not the values')."""
    if pa.types.is_integer(values.type) and pa.types.is_decimal(dtype):
        values = pc.cast(values, pa.decimal128(min(19 + dtype.scale, 38), dtype.scale))
    return pc.cast(values, dtype)


def write(sink: BinaryIO, schema: Any, batches: Iterable[Any], *,
          row_group_rows: int = ROW_GROUP_ROWS, row_group_bytes: int = ROW_GROUP_BYTES) -> int:
    """Write ``batches`` (already of ``schema``) to ``sink`` as one Parquet file, in row
    groups of ``row_group_rows`` rows (fewer when they would exceed ``row_group_bytes`` of
    Arrow data); return the number of rows."""
    rows = 0
    held: list[Any] = []
    held_rows = held_bytes = 0
    with pq.ParquetWriter(sink, schema, compression=COMPRESSION) as writer:
        for batch in batches:
            held.append(batch)
            held_rows += batch.num_rows
            held_bytes += batch.nbytes
            rows += batch.num_rows
            if held_bytes >= row_group_bytes:
                writer.write_table(pa.Table.from_batches(held, schema),
                                   row_group_size=max(held_rows, 1))
                held, held_rows, held_bytes = [], 0, 0
            elif held_rows >= row_group_rows:
                full = held_rows - held_rows % row_group_rows
                table = pa.Table.from_batches(held, schema)
                writer.write_table(table.slice(0, full), row_group_size=row_group_rows)
                held = table.slice(full).to_batches()
                held_rows -= full
                held_bytes = sum(b.nbytes for b in held)
        if held_rows or rows == 0:
            writer.write_table(pa.Table.from_batches(held, schema),
                               row_group_size=row_group_rows)
    return rows


def read_schema(source: BinaryIO) -> Any:
    return pq.read_schema(source)


def rewritten(source: BinaryIO, schema: Any, batch_rows: int = 65_536) -> Iterable[Any]:
    """The batches of an existing part, completed to ``schema`` (a wider one)."""
    pf = pq.ParquetFile(source)
    for batch in pf.iter_batches(batch_size=batch_rows):
        yield complete(batch, schema, None)


def csv_columns(schema: Any) -> Mapping[str, Any]:
    """The CSV columns of a part's schema: name → pyarrow type (extras left out)."""
    return {f.name: f.type for f in schema if f.name not in EXTRA_TYPES}
