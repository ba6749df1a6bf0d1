"""Reading the CSV members of a report zip as a stream of Arrow batches.

Each member is read straight from the zip (``zipfile.ZipFile.open`` → ``pyarrow.csv
.open_csv``), block by block, never extracted to disk nor held whole. Two passes:

1. :func:`scan` reads every column as text (empty cells null) and feeds each batch to
   an :class:`~.infer.Inference`, so types are decided from the whole member while only
   one block (``BLOCK_SIZE``) is in memory;
2. :func:`batches` reads it again, converting each column straight to its final type.

Encoding: UTF-8 (a BOM is skipped). A member that is not valid UTF-8 is read as Latin-1,
where every byte is one character: nothing is lost or replaced, and the original bytes
come back with ``.encode("latin-1")``; the record says which encoding was used.

Members: every member whose name ends in ``.csv`` (any case) is a table; others (a
README, a nested archive, a folder) are skipped and listed. A zero-byte member has no
columns and no rows.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from .infer import FALSE_VALUES, TRUE_VALUES, Inference, arrow_type
from .kinds import ColumnType
from .names import column_names

BLOCK_SIZE = 4 * 1024 * 1024
# Members smaller than this are parsed on the calling thread: handing a few blocks to
# pyarrow's pool costs more than it saves (measured: ~2x slower per 10 KiB file on 2 CPUs).
THREADED_BYTES = 16 * 1024 * 1024
Opener = Callable[[], BinaryIO]  # opens the zip file afresh (seekable), for each pass
ENCODINGS = ("utf-8", "latin-1")
_HEAD_BYTES = 1 << 20
_BOM_LATIN1 = "\u00ef\u00bb\u00bf"


class SourceError(Exception):
    """A member cannot be read as a CSV table (ragged rows, not a zip, ...)."""


@dataclass(slots=True)
class Member:
    """One CSV member after the first pass: its columns, their types and its encoding."""

    name: str
    header: list[str]
    size: int  # uncompressed bytes
    columns: list[str]
    types: list[ColumnType]
    rows: int
    encoding: str
    text: list[Any] | None = None  # a small member's batches as text, kept for pass 2


@dataclass(slots=True)
class Scan:
    """Every CSV member of a zip, and the names of the members skipped."""

    members: list[Member] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def is_csv(info: zipfile.ZipInfo) -> bool:
    return not info.is_dir() and info.filename.lower().endswith(".csv")


def _field(i: int) -> str:
    return f"f{i}"


def _options(encoding: str, block_size: int, size: int) -> dict[str, Any]:
    return {
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
        "read_options": pacsv.ReadOptions(autogenerate_column_names=True, encoding=encoding,
                                          block_size=block_size,
                                          use_threads=size >= THREADED_BYTES),
    }


def _width(zf: zipfile.ZipFile, info: zipfile.ZipInfo, encoding: str) -> int | None:
    """Fields in the header row (parsed by :mod:`csv` from the member's first MiB, which
    quotes like pyarrow), or None for an empty member. Cheaper than letting pyarrow
    parse a first block just to count columns (for a small member: the whole file)."""
    with zf.open(info) as f:
        head = f.read(_HEAD_BYTES)
    text = head.decode(encoding, errors="replace").removeprefix("\ufeff")
    first = next((row for row in csv.reader(io.StringIO(text, newline="")) if row), None)
    return None if first is None else len(first)


def _text_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, encoding: str,
                 block_size: int) -> Any:
    """A reader of the member with every column as text, the header as its first row."""
    width = _width(zf, info, encoding)
    if width is None:
        return None
    opts = _options(encoding, block_size, info.file_size)
    opts["convert_options"] = pacsv.ConvertOptions(
        column_types={_field(i): pa.string() for i in range(width)},
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)
    return pacsv.open_csv(zf.open(info), **opts)


def _scan_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, encoding: str,
                 block_size: int) -> Member:
    reader = _text_reader(zf, info, encoding, block_size)
    if reader is None:
        return Member(info.filename, [], info.file_size, [], [], 0, encoding)
    kept: list[Any] | None = [] if info.file_size < THREADED_BYTES else None
    with reader:
        header: list[str] | None = None
        inference = Inference([])
        for batch in reader:
            if header is None:
                if batch.num_rows == 0:
                    continue
                header = [v or "" for v in batch.slice(0, 1).to_pylist()[0].values()]
                if header and header[0].startswith(_BOM_LATIN1):
                    header[0] = header[0][len(_BOM_LATIN1):]
                inference = Inference(column_names(header))
                batch = batch.slice(1)
            inference.feed(batch)
            if kept is not None:
                kept.append(batch)
    header = header or []
    return Member(info.filename, header, info.file_size, inference.names or column_names(header),
                  inference.types, inference.rows, encoding, kept)


def scan(opener: Opener, *, block_size: int = BLOCK_SIZE) -> Scan:
    """First pass over every member of the zip ``opener`` opens; SourceError if unreadable."""
    out = Scan()
    try:
        with opener() as f, zipfile.ZipFile(f) as zf:
            for info in zf.infolist():
                if not is_csv(info):
                    out.skipped.append(info.filename)
                    continue
                out.members.append(_scan_with_fallback(zf, info, block_size))
    except (zipfile.BadZipFile, pa.ArrowInvalid, UnicodeDecodeError, EOFError) as exc:
        raise SourceError(_reason(exc)) from exc
    return out


def _scan_with_fallback(zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                        block_size: int) -> Member:
    try:
        return _scan_member(zf, info, ENCODINGS[0], block_size)
    except pa.ArrowInvalid as exc:
        if "UTF8" not in str(exc) and "UTF-8" not in str(exc):
            raise
    return _scan_member(zf, info, ENCODINGS[1], block_size)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def batches(opener: Opener, member: Member, target: dict[str, Any], *,
            block_size: int = BLOCK_SIZE) -> Iterator[Any]:
    """Second pass: the member's batches, each column converted to ``target[name]``
    (a pyarrow type; a column missing from ``target`` keeps its own inferred type) and
    renamed to its normalised name. SourceError if a value does not convert."""
    if not member.columns:
        return
    types = [target.get(name, arrow_type(t)) for name, t in zip(member.columns, member.types,
                                                                 strict=True)]
    if member.text is not None:
        yield from _converted(member, types)
        return
    opts = _options(member.encoding, block_size, member.size)
    opts["read_options"] = pacsv.ReadOptions(
        column_names=[_field(i) for i in range(len(member.columns))], skip_rows=1,
        encoding=member.encoding, block_size=block_size,
        use_threads=member.size >= THREADED_BYTES)
    opts["convert_options"] = pacsv.ConvertOptions(
        column_types={_field(i): t for i, t in enumerate(types)}, null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=True, true_values=TRUE_VALUES,
        false_values=FALSE_VALUES)
    try:
        with (opener() as f, zipfile.ZipFile(f) as zf,
              pacsv.open_csv(zf.open(member.name), **opts) as r):
            for batch in r:
                yield pa.RecordBatch.from_arrays(batch.columns, names=member.columns)
    except (zipfile.BadZipFile, pa.ArrowInvalid, UnicodeDecodeError, EOFError) as exc:
        raise SourceError(_reason(exc)) from exc


def _converted(member: Member, types: list[Any]) -> Iterator[Any]:
    """A small member's kept text batches, each column cast to its type (the casts use
    the parsers the first pass checked the values with)."""
    assert member.text is not None
    try:
        for batch in member.text:
            arrays = [_cast_text(batch.column(i), t) for i, t in enumerate(types)]
            yield pa.RecordBatch.from_arrays(arrays, names=member.columns)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SourceError(_reason(exc)) from exc


def _cast_text(values: Any, dtype: Any) -> Any:
    if pa.types.is_string(dtype):
        return values
    if pa.types.is_null(dtype):
        return pa.nulls(len(values))
    return values.cast(dtype)
