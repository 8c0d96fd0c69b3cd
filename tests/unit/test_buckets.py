"""One drift-bucket rule: the pure definition, training's vectorized reference and serving's counters agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctloop.contract import buckets
from ctloop.core.train import bucket_fractions

CUTS = [1.0, 2.0, 2.0, 5.0]


@pytest.mark.parametrize(
    ("value", "label"), [(0.5, "0"), (1.0, "1"), (1.5, "1"), (2.0, "3"), (4.9, "3"), (5.0, "4"), (99, "4")]
)
def test_bucket_is_the_number_of_cuts_at_or_below(value, label):
    """Bucket = count of cuts <= value (bisect_right); ties go up."""
    assert buckets.bucket_label(CUTS, value) == label


def test_missing_values_have_their_own_bucket():
    """None and NaN are counted as missing, not as a number."""
    assert buckets.bucket_label(CUTS, None) == buckets.MISSING
    assert buckets.bucket_label(CUTS, math.nan) == buckets.MISSING


def test_training_fractions_equal_the_pure_rule():
    """train.bucket_fractions (numpy) gives exactly buckets.fractions (pure Python) on random data with NaN."""
    rng = np.random.default_rng(7)
    values = rng.normal(2.5, 2.0, 2000)
    values[rng.random(2000) < 0.1] = np.nan
    values[:50] = 2.0  # ties on a cut
    assert bucket_fractions(CUTS, values) == pytest.approx(buckets.fractions(CUTS, values.tolist()))
    assert sum(bucket_fractions(CUTS, values).values()) == pytest.approx(1.0)


class _Served:
    """What ModelSeries reads of a loaded model (version, names, cuts, tags)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.feature_names = ("x",)
        self.cuts = {"x": np.asarray(CUTS)}
        self.reference: dict = {}

    def tags(self) -> dict[str, str]:
        return {"model_name": "m", "model_version": self.version, "alias": "a", "feature_service": "s"}


def _counts(version: str) -> dict[str, float]:
    from prometheus_client import REGISTRY

    labels = buckets.bucket_labels(CUTS)
    got = {
        b: REGISTRY.get_sample_value(
            "ctloop_feature_bucket_total", {"model_version": version, "feature": "x", "bucket": b}
        )
        for b in labels
    }
    return {b: v for b, v in got.items() if v}


def test_serving_counts_small_and_large_batches_by_the_same_rule():
    """Serving's two paths (plain Python up to 8 rows, numpy above) both count by the pure rule."""
    from serving.metrics import ModelSeries

    rng = np.random.default_rng(3)
    column = rng.normal(2.5, 2.0, 40)
    column[::7] = np.nan
    column[1] = 2.0
    expected: dict[str, float] = {}
    for value in column:
        label = buckets.bucket_label(CUTS, float(value))
        expected[label] = expected.get(label, 0) + 1
    small, large = ModelSeries(_Served("small")), ModelSeries(_Served("large"))  # type: ignore[arg-type]
    for start in range(0, 40, 4):
        chunk = column[start : start + 4]
        small.observe(chunk.reshape(-1, 1).astype(np.float32), np.full(len(chunk), 0.5))
    large.observe(column.reshape(-1, 1).astype(np.float32), np.full(40, 0.5))
    assert _counts("small") == {}  # counted in memory until flushed
    small.flush()
    large.flush()
    assert _counts("small") == expected
    assert _counts("large") == expected


def test_a_series_written_through_has_every_request_counted_when_it_returns():
    """metrics_flush_s 0: no flush thread; each observe's counts are in the counters before it returns."""
    from serving.metrics import Flusher, ModelSeries

    flusher = Flusher(0.0)
    series = ModelSeries(_Served("through"))  # type: ignore[arg-type]
    flusher.track(series)
    assert flusher._thread is None
    for batch in (np.asarray([[1.0]]), np.full((20, 1), 4.5)):  # the small and the numpy path
        series.observe(batch.astype(np.float32), np.full(len(batch), 0.5))
    assert sum(_counts("through").values()) == 21
