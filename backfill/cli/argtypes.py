"""Argument types shared by the command lines: each turns a string into a value or raises
``argparse.ArgumentTypeError`` with one sentence naming the value."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import date
from typing import TypeVar

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


def day(text: str) -> date:
    """Strictly ``YYYY-MM-DD`` (``fromisoformat`` alone also takes ``20261127``)."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
