"""Argument types shared by the command lines: each turns a string into a value or raises
``argparse.ArgumentTypeError`` with one sentence naming the value."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from ..destination import ObjectURL, ObjectURLError, is_object_url, parse_object_url

N = TypeVar("N", int, float)


def number(convert: Callable[[str], N], what: str, *, minimum: N | None = None,
           maximum: N | None = None) -> Callable[[str], N]:
    """A parser for ``convert(text)`` within [minimum, maximum]."""

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


positive_int = number(int, "an integer", minimum=1)
byte_count = number(int, "a number of bytes", minimum=0)
seconds = number(float, "a number of seconds", minimum=0.0)
fraction = number(float, "a number", minimum=0.0, maximum=1.0)
port = number(int, "a port number", minimum=0, maximum=65535)


def day(text: str) -> date:
    """Strictly ``YYYY-MM-DD`` (``fromisoformat`` alone also takes ``20261127``)."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h``, ``1.5h`` or ``1d``."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*", text.lower())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (seconds, or with a unit: 90s, 30m, 2h)")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def output_dir(text: str) -> Path | ObjectURL:
    """``--output-dir``: an s3:// gs:// az:// URL, or a local path (as given)."""
    if not is_object_url(text):
        return Path(text)
    try:
        return parse_object_url(text)
    except ObjectURLError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
