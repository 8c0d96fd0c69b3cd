"""Values as text for tables (the CLI's and the report's)."""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def cell(value: Any) -> str:
    """A table cell: ``—`` for nothing or NaN, four decimals for a float, ``; ``-joined lists."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return MISSING if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or MISSING
    return str(value)


def human(value: Any) -> str:
    """A value as people read it: ``—`` for nothing or NaN, numbers by :func:`number`, lists joined with ``; ``."""
    if value is None:
        return MISSING
    if isinstance(value, list):
        return "; ".join(human(v) for v in value) or MISSING
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number(float(value))
    return str(value)


def number(value: float) -> str:
    """Thousands separated, as many decimals as the size needs, never a fixed-width tail of zeros.

    Whole numbers as integers (``249,435``); from 100 no decimals, from 10 one, from 1 two
    (``69.8`` seconds, ``2.31``); below 1 four significant digits (``0.6845``, ``0.05``).
    """
    size = abs(value)
    if math.isnan(value):
        return MISSING
    if value.is_integer() and size < 1e15:
        return f"{int(value):,}"
    decimals = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else -1
    return f"{value:.4g}" if decimals < 0 else f"{value:,.{decimals}f}"
