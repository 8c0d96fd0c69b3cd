"""Drift buckets: the one rule that assigns a value to a bucket, shared by training and serving.

Training records, per feature, cut points at the reference's deciles and the share of reference
rows in each bucket; serving counts live values into the same buckets (a Prometheus counter per
bucket), so drift (PSI) can be computed from metrics alone. Standard library only: the serving
env imports this module too.

A value ``x`` falls in bucket ``i`` = the number of cuts ``<= x`` (``bisect_right``, the same as
``numpy.searchsorted(cuts, x, side="right")``); a missing value (None or NaN) in ``MISSING``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

MISSING = "missing"
PREDICTION_CUTS = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Fixed cut points for predicted probabilities (20 buckets of 0.05)."""
NORMAL = "normal"
"""Key of a model's ``reference_fractions`` holding each feature's normal PSI (``ctloop.core.drift_normal``)."""


def bucket_label(cuts: Sequence[float], value: float | None) -> str:
    """The bucket of ``value`` as a metric label: ``"0"`` .. ``str(len(cuts))`` or ``MISSING``."""
    if value is None or math.isnan(value):
        return MISSING
    return str(bisect_right(cuts, value))


def bucket_labels(cuts: Sequence[float]) -> list[str]:
    """Every label a feature with these cuts can produce, in order, ``MISSING`` last."""
    return [*(str(i) for i in range(len(cuts) + 1)), MISSING]


def fractions(cuts: Sequence[float], values: Iterable[float | None]) -> dict[str, float]:
    """Share of ``values`` in each bucket (all labels present, summing to 1; empty input → zeros)."""
    counts = dict.fromkeys(bucket_labels(cuts), 0)
    total = 0
    for value in values:
        counts[bucket_label(cuts, value)] += 1
        total += 1
    return {label: (n / total if total else 0.0) for label, n in counts.items()}
