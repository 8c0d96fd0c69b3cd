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
