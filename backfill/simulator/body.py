"""Report bodies: a deterministic CSV of campaign statistics inside a real zip file.

A body is a pure function of :class:`BodySpec` (seed, app id, file name, size). ``size``
is the exact length of the zip in bytes (a request below the minimum of one CSV row grows
to that minimum). The zip holds one ``ZIP_STORED`` member, so its length is known before
a single row is generated; that is what lets a 300 MB body be streamed with a correct
``Content-Length`` while only ~1 MB of it exists at any time.

Small bodies (≤ :data:`STREAM_THRESHOLD`) are built whole, with a plain local header, and
cached in :class:`BodyCache`. Large ones are produced by :func:`iter_body`: local header
with general-purpose flag bit 3 (CRC and sizes zero), the data while computing its CRC, a
data descriptor, then the central directory, which carries the real CRC and sizes. Python's
``zipfile`` reads the central directory, so it opens and ``testzip()``-checks both forms.

Rows come from a template block of up to :data:`ROWS_PER_BLOCK` rows generated once per
file; block *k* is the template with ``@@@@@@@@`` replaced by ``k`` in hex, so campaign
ids stay unique and producing a megabyte costs one ``bytes.replace``, not 10 000 f-strings.

The CSV looks like the dashboard's: a column set per report kind (:data:`COLUMN_SETS`,
chosen by a word in the report name: email, push, else summary) with title-case headers
(``Campaign Name``, ``All Platform Sent``, ``Email Sent``), campaign names quoted with
commas and doubled quotes inside, empty cells (~8 % of some counts), the ``Date`` and an
ISO ``Sent At`` with an offset. ``Revenue`` is integral in the first half of the rows
(at most :data:`INTEGRAL_BLOCKS` blocks, ≈ 2.5 MB) and has cents after: every template
row has an integral twin of the same length (its name three bytes longer), so sizes stay
exact and the switch costs nothing.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from ..naming import parse_filename

DEFAULT_SIZE = 10 * 1024
STREAM_THRESHOLD = 16 * 1024 * 1024
MAX_SIZE = 0xFFFF_FFFF - 1024  # no zip64: sizes must fit the 32-bit fields
ROWS_PER_BLOCK = 1024
STREAM_CHUNK = 1024 * 1024

_PLACEHOLDER = b"@@@@@@@@"
_CHANNELS = ("PUSH", "EMAIL", "SMS", "IN-APP", "WEB PUSH", "WHATSAPP")
_PLATFORMS = ("ANDROID", "IOS", "WEB", "ALL")
_TYPES = ("One Time", "Periodic", "Event Triggered", "Flows")
_GOALS = ("Purchase", "App Open", "Add to Cart", "")
_ADJ = ("Winter", "Summer", "Flash", "Weekend", "Welcome", "Loyalty", "Cart", "Black Friday",
        "New Year", "Festive", "Re-engagement", "Onboarding", "Price drop", "Back in stock")
_NOUN = ("sale", "reminder", "digest", "offer", "nudge", "update", "promo", "series",
         "journey", "alert", "recap", "launch")
_OFFSETS = ("Z", "+05:30", "+01:00", "-05:00", "+08:00")
_EPOCH = date(1980, 1, 1)
# Blocks that are integral in Revenue before it turns decimal: at most this many, and at
# most half the file's blocks (16 blocks ≈ 2.5 MB, beyond a 1 MiB inference prefix).
INTEGRAL_BLOCKS = 16

# Per report kind, the columns in order; each is a key of the row's values (see _values).
COLUMN_SETS: dict[str, tuple[tuple[str, str], ...]] = {
    "summary": (
        ("Campaign ID", "id"), ("Campaign Name", "name"), ("Campaign Type", "type"),
        ("Channel", "channel"), ("Platform", "platform"), ("Date", "date"),
        ("Sent At", "sent_at"), ("All Platform Sent", "sent"),
        ("All Platform Delivered", "delivered"), ("All Platform Impressions", "impressions"),
        ("All Platform Clicks", "clicks"), ("Conversions", "conversions"),
        ("Unsubscribes", "unsubscribes"), ("Revenue", "revenue"),
    ),
    "email": (
        ("Campaign ID", "id"), ("Campaign Name", "name"), ("Date", "date"),
        ("Sent At", "sent_at"), ("Email Sent", "sent"), ("Email Delivered", "delivered"),
        ("Email Opens", "impressions"), ("Email Clicks", "clicks"),
        ("Email Bounces", "bounces"), ("Email Unsubscribes", "unsubscribes"),
        ("CTR (%)", "ctr"), ("Revenue", "revenue"),
    ),
    "push": (
        ("Campaign ID", "id"), ("Campaign Name", "name"), ("Platform", "platform"),
        ("Date", "date"), ("Sent At", "sent_at"), ("Android Sent", "sent"),
        ("iOS Sent", "delivered"), ("Impressions", "impressions"), ("Clicks", "clicks"),
        ("Conversion Goal", "goal"), ("Conversions", "conversions"), ("Revenue", "revenue"),
    ),
}


def column_set(filename: str) -> str:
    """Which columns a report has: by a word in its name (email, push), else summary."""
    stem = filename.lower()
    return "email" if "email" in stem else "push" if "push" in stem else "summary"


def header(filename: str) -> bytes:
    """The CSV header row (title case, as the dashboard writes it) of ``filename``."""
    return (",".join(name for name, _ in COLUMN_SETS[column_set(filename)]) + "\n").encode()


HEADER = header("Daily_campaign_summary_20261126.zip")  # the summary report's

@dataclass(frozen=True, slots=True)
class BodySpec:
    """What identifies one body. ``size`` is the requested length of the zip in bytes."""

    seed: int
    app_id: str
    filename: str
    size: int = DEFAULT_SIZE


def _rng(spec: BodySpec) -> random.Random:
    digest = hashlib.sha256(f"{spec.seed}|{spec.app_id}|{spec.filename}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _day(filename: str) -> date:
    parsed = parse_filename(filename)
    return parsed[1] if parsed and parsed[1] >= _EPOCH else _EPOCH


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _values(rng: random.Random, iso: str, index: int) -> dict[str, str]:
    """One row's values as text. ``revenue`` is decimal; ``revenue_int`` its integral twin,
    and ``name_int`` the name three bytes longer, so both rows have the same length."""
    channel = rng.choice(_CHANNELS)
    sent = rng.randint(500, 900_000)
    delivered = sent - rng.randint(0, sent // 8)
    impressions = delivered - rng.randint(0, delivered // 3)
    clicks = rng.randint(0, impressions // 6)
    conversions = rng.randint(0, clicks // 4 + 1)
    units, cents = divmod(conversions * rng.randint(150, 9000), 100)
    name = f"{rng.choice(_ADJ)}, {rng.choice(_NOUN)} {channel.lower()}"
    if rng.random() < 0.1:
        name = f'{name} "{rng.choice(_NOUN)}"'
    sent_at = (f"{iso}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
               f"{rng.randint(0, 59):02d}{rng.choice(_OFFSETS)}")
    empty = rng.random() < 0.08  # a cell the dashboard leaves empty
    return {
        "id": f"cmp_@@@@@@@@{index:03x}", "name": _quote(name), "name_int": _quote(name + " v1"),
        "type": rng.choice(_TYPES), "channel": channel, "platform": rng.choice(_PLATFORMS),
        "date": iso, "sent_at": sent_at, "sent": str(sent), "delivered": str(delivered),
        "impressions": str(impressions), "clicks": str(clicks),
        "conversions": "" if empty else str(conversions),
        "unsubscribes": str(rng.randint(0, delivered // 500 + 1)),
        "bounces": "" if empty else str(sent - delivered),
        "ctr": f"{100 * clicks / max(delivered, 1):.2f}", "goal": rng.choice(_GOALS),
        "revenue": f"{units}.{cents:02d}", "revenue_int": f"{units}",
    }


def _rows(spec: BodySpec, day: date, need: int) -> tuple[list[bytes], list[bytes]]:
    """Template rows, generated until their total length exceeds ``need`` (or a full
    block): the decimal rows, and their integral twins of the same lengths."""
    rng = _rng(spec)
    columns = COLUMN_SETS[column_set(spec.filename)]
    rows: list[bytes] = []
    twins: list[bytes] = []
    total = 0
    iso = day.isoformat()
    while total <= need and len(rows) < ROWS_PER_BLOCK:
        v = _values(rng, iso, len(rows))
        rows.append((",".join(v[key] for _, key in columns) + "\n").encode())
        twin = {**v, "name": v["name_int"], "revenue": v["revenue_int"]}
        twins.append((",".join(twin[key] for _, key in columns) + "\n").encode())
        total += len(rows[-1])
    return rows, twins


@dataclass(frozen=True, slots=True)
class _Layout:
    """How a CSV of a given length is cut: header, ``blocks`` full template blocks, a tail.

    The first ``integral`` rows of the file use the integral twins (Revenue without
    cents); every later row is decimal, so Revenue "turns decimal" after that many rows.
    """

    header: bytes
    rows: list[bytes]
    twins: list[bytes]
    blocks: int
    tail_rows: int
    pad: int  # bytes added to the last tail row's campaign name to hit the exact length

    @property
    def integral(self) -> int:
        total = self.blocks * len(self.rows) + self.tail_rows
        return min(INTEGRAL_BLOCKS * ROWS_PER_BLOCK, total // 2)

    def block(self, k: int) -> bytes:
        """Template block ``k`` (placeholder not yet replaced)."""
        cut = min(max(self.integral - k * len(self.rows), 0), len(self.rows))
        return b"".join(self.twins[:cut] + self.rows[cut:])

    @property
    def csv_len(self) -> int:
        tail = sum(len(r) for r in self.rows[: self.tail_rows]) + self.pad
        return len(self.header) + self.blocks * sum(len(r) for r in self.rows) + tail


def _layout(spec: BodySpec, csv_len: int, day: date) -> _Layout:
    head = header(spec.filename)
    avail = max(csv_len - len(head), 0)
    rows, twins = _rows(spec, day, avail)
    avail = max(avail, len(rows[0]))  # at least one row
    block_len = sum(len(r) for r in rows)
    blocks, rest = divmod(avail, block_len) if len(rows) == ROWS_PER_BLOCK else (0, avail)
    if 0 < rest < len(rows[0]) and blocks:
        blocks, rest = blocks - 1, rest + block_len  # a tail needs room for one whole row
    used = count = 0
    while count < len(rows) and used + len(rows[count]) <= rest:
        used += len(rows[count])
        count += 1
    return _Layout(head, rows, twins, blocks, count, rest - used)


def _tail(layout: _Layout) -> bytes:
    if not layout.tail_rows:
        return b""
    rows = [row for _, row in zip(range(layout.tail_rows), _split(layout.block(layout.blocks),
                                                                  layout.rows), strict=False)]
    if layout.pad:
        last = rows[-1]
        cut = last.index(b'",')  # the closing quote of campaign_name (ids have no quotes)
        rows = [*rows[:-1], last[:cut] + b"~" * layout.pad + last[cut:]]
    return b"".join(rows).replace(_PLACEHOLDER, b"%08x" % layout.blocks)


def _split(block: bytes, rows: list[bytes]) -> Iterator[bytes]:
    """The rows of a template block (each has the length of the same row in ``rows``)."""
    pos = 0
    for row in rows:
        yield block[pos:pos + len(row)]
        pos += len(row)


def _csv_chunks(layout: _Layout, chunk: int = STREAM_CHUNK) -> Iterator[bytes]:
    yield layout.header
    plain = layout.block(layout.blocks)  # every block from the first all-decimal one on
    changing = min(layout.blocks, -(-layout.integral // len(layout.rows)))
    per_chunk = max(1, chunk // len(plain))
    k = 0
    while k < layout.blocks:
        n = min(per_chunk, layout.blocks - k)
        yield b"".join((plain if i >= changing else layout.block(i)).replace(
            _PLACEHOLDER, b"%08x" % i) for i in range(k, k + n))
        k += n
    tail = _tail(layout)
    if tail:
        yield tail


# ------------------------------------------------------------------------------ zip framing

def _member(filename: str) -> tuple[bytes, int]:
    """Member name (the .zip name as .csv, no '/') and the UTF-8 flag if it needs one."""
    stem = filename[:-4] if filename.endswith(".zip") else filename
    name = stem.replace("/", "_").replace("\\", "_") + ".csv"
    return name.encode(), (0 if name.isascii() else 0x800)


def _dos(day: date) -> tuple[int, int]:
    return 12 << 11, ((day.year - 1980) << 9) | (day.month << 5) | day.day  # noon that day


def _local(name: bytes, flags: int, crc: int, size: int, day: date) -> bytes:
    t, d = _dos(day)
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, t, d, crc, size, size,
                       len(name), 0) + name


def _central(name: bytes, flags: int, crc: int, size: int, day: date) -> bytes:
    """Central directory (one entry, local header at offset 0) and end record."""
    t, d = _dos(day)
    entry = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 0, t, d, crc, size,
                        size, len(name), 0, 0, 0, 0, 0, 0) + name
    offset = 30 + len(name) + size + (16 if flags & 0x8 else 0)
    return entry + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(entry), offset, 0)


def _overhead(name: bytes, streamed: bool) -> int:
    return 30 + 46 + 22 + 2 * len(name) + (16 if streamed else 0)


def is_streamed(size: int) -> bool:
    return size > STREAM_THRESHOLD


def _plan(spec: BodySpec) -> tuple[bytes, int, date, _Layout]:
    if spec.size > MAX_SIZE:
        raise ValueError(f"body size {spec.size} exceeds {MAX_SIZE} (no zip64)")
    name, flags = _member(spec.filename)
    day = _day(spec.filename)
    return name, flags, day, _layout(spec, spec.size - _overhead(name, is_streamed(spec.size)),
                                     day)


def build_body(spec: BodySpec) -> bytes:
    """The whole zip in memory. Streamed sizes give the same bytes :func:`iter_body` sends."""
    if is_streamed(spec.size):
        return b"".join(iter_body(spec))
    name, flags, day, layout = _plan(spec)
    data = b"".join(_csv_chunks(layout))
    crc = zlib.crc32(data)
    return (_local(name, flags, crc, len(data), day) + data
            + _central(name, flags, crc, len(data), day))


def body_length(spec: BodySpec) -> int:
    """Exact length of the body for ``spec`` (equals ``spec.size`` unless below minimum)."""
    name, _, _, layout = _plan(spec)
    return layout.csv_len + _overhead(name, is_streamed(spec.size))


def iter_body(spec: BodySpec, chunk: int = STREAM_CHUNK) -> Iterator[bytes]:
    """The body in chunks of about ``chunk`` bytes, holding one chunk at a time.

    Small sizes yield :func:`build_body` whole; large ones use the data-descriptor form.
    """
    if not is_streamed(spec.size):
        yield build_body(spec)
        return
    name, flags, day, layout = _plan(spec)
    flags |= 0x8
    yield _local(name, flags, 0, 0, day)
    crc = size = 0
    for part in _csv_chunks(layout, chunk):
        crc = zlib.crc32(part, crc)
        size += len(part)
        yield part
    yield struct.pack("<IIII", 0x08074B50, crc, size, size)
    yield _central(name, flags, crc, size, day)


def digest(spec: BodySpec) -> tuple[int, str]:
    """(length, sha256 hex) of the body, computed while streaming: for huge bodies."""
    h = hashlib.sha256()
    n = 0
    for part in iter_body(spec):
        h.update(part)
        n += len(part)
    return n, h.hexdigest()


class BodyCache:
    """Bounded LRU of small bodies, by total bytes: a hit costs one dict lookup."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[BodySpec, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, spec: BodySpec) -> bytes:
        body = self._items.get(spec)
        if body is not None:
            self.hits += 1
            self._items.move_to_end(spec)
            return body
        self.misses += 1
        body = build_body(spec)
        if len(body) <= self.max_bytes:
            self._items[spec] = body
            self.bytes += len(body)
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= len(old)
        return body

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
