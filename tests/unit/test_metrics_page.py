"""Reading serving's ``/metrics`` page: the counters the monitor needs, the same with the page cut first."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ctloop.adapters.metrics_source import COUNTERS, parse_page
from ctloop.core.monitor import Counts, Sample


def _page() -> str:
    """A page like serving's: three versions' counters, reference gauges, a latency histogram."""
    registry = CollectorRegistry()
    feature = Counter("ctloop_feature_bucket", "", ["model_version", "feature", "bucket"], registry=registry)
    prediction = Counter("ctloop_prediction_bucket", "", ["model_version", "bucket"], registry=registry)
    feedback = Histogram(
        "ctloop_feedback_probability", "", ["model_version", "outcome"], registry=registry, buckets=(0.2, 0.5, 1.0)
    )
    squared = Counter("ctloop_feedback_squared_error", "", ["model_version"], registry=registry)
    share = Gauge("ctloop_feature_reference_share", "", ["model_version", "feature", "bucket"], registry=registry)
    seconds = Histogram("ctloop_http_request_duration_seconds", "", ["route"], registry=registry)
    for v in ("1", "3", "13"):
        for name in ("temp", "route_flights_28d"):
            for bucket in range(4):
                feature.labels(v, name, str(bucket)).inc(int(v) * 10 + bucket)
                share.labels(v, name, str(bucket)).set(0.25)
        prediction.labels(v, "2").inc(int(v))
        feedback.labels(v, "1").observe(0.4)
        feedback.labels(v, "0").observe(0.1 * int(v) % 1)
        squared.labels(v).inc(0.5 * int(v))
    seconds.labels("/predict").observe(0.01)
    return generate_latest(registry).decode()


def _full_parse(text: str) -> list[Sample]:
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in COUNTERS
    ]


def test_the_cut_page_gives_exactly_the_counters_the_whole_page_gives():
    text = _page()
    whole = _full_parse(text)
    assert parse_page(text) == whole
    for version in ("1", "3", "13"):
        mine = [s for s in whole if s.labels.get("model_version") == version]
        assert parse_page(text, version) == mine
        assert Counts.from_samples(parse_page(text, version), version) == Counts.from_samples(whole, version)
    assert {s.name for s in parse_page(text, "3")} == set(COUNTERS)  # every counter, histograms' parts included


def test_a_version_is_matched_whole_not_as_a_prefix():
    text = _page()
    assert all(s.labels["model_version"] == "1" for s in parse_page(text, "1"))  # never 13's
    assert parse_page(text, "7") == []
