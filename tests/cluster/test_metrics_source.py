"""Reading serving's counters from Prometheus's HTTP API (contract check against a recording server)."""

from __future__ import annotations

import pytest

from ctloop.adapters.metrics_source import COUNTERS, MetricsSourceError, read_prometheus
from ctloop.core.monitor import Counts


def test_each_counter_is_one_increase_query_summed_by_its_labels(recorder):
    """Five instant queries, each `sum by (labels) (increase(name[window]))`; results become samples."""

    def answer(seen):
        query = seen.query["query"]
        if "ctloop_prediction_bucket_total" in query:
            result = [{"metric": {"model_version": "3", "bucket": "4"}, "value": [0, "120"]}]
        else:
            result = []
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    recorder.on("GET", "/api/v1/query", answer)
    samples = read_prometheus(recorder.url, "1d")
    queries = [r.query["query"] for r in recorder.requests]
    assert len(queries) == len(COUNTERS)
    assert "sum by (model_version, feature, bucket) (increase(ctloop_feature_bucket_total[1d]))" in queries
    assert Counts.from_samples(samples, "3").predictions == {"4": 120.0}


def test_a_refused_query_is_a_clear_error(recorder):
    """Prometheus's error status becomes MetricsSourceError naming the query."""
    recorder.on("GET", "/api/v1/query", lambda _: (200, {"status": "error", "error": "parse error"}))
    with pytest.raises(MetricsSourceError, match="parse error"):
        read_prometheus(recorder.url, "1d")
