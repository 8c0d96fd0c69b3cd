"""Serving's feature-server client against the real `feast serve`: mapping by name, the TTL cache, errors."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from serving.errors import FeatureServerUnavailableError
from serving.features_client import READ_COST, FeatureClient
from tests.online_store import online_features

pytestmark = pytest.mark.slow
KEYS = {"origin": "JFK", "carrier": "B6", "route": "JFK-BOS", "tailnum": "N503JB"}
BATCH = [
    KEYS,
    {"origin": "EWR", "carrier": "UA", "route": "EWR-ORD", "tailnum": "N14228"},
    {**KEYS, "route": "JFK-MIA"},
    {"origin": "LGA", "carrier": "B6", "route": "LGA-BOS", "tailnum": "N0NE"},
]


def client(live, registered, ttl_s: float, static_ttl_s: float = 0.0, read_cost: float = READ_COST) -> FeatureClient:
    layout = registered.bundles["1"].metadata["feature_layout"]
    return FeatureClient(live.feature_server_url, layout["views"], 2.0, ttl_s, 100, static_ttl_s, read_cost)


def test_values_match_the_online_store_by_name(live, registered, store):
    """Every view's values equal Feast's in-process online read for the same keys."""
    got = client(live, registered, 0.0).fetch([KEYS])[0]
    row = {**KEYS, "sched_dep_local": "2013-03-15T08:30:00", "distance": 187.0}
    local = online_features(store, registered.settings.features.feature_service, [row]).iloc[0]
    layout = registered.bundles["1"].metadata["feature_layout"]["views"]
    for view, spec in layout.items():
        for name, value in zip(spec["features"], got[view], strict=True):
            want = local[name]
            assert (math.isnan(value) and pd.isna(want)) or value == pytest.approx(want), name


@pytest.mark.parametrize(
    ("read_cost", "reads"), [(1e12, 1), (READ_COST, 1), (0.0, 2)], ids=["one", "cheapest", "apart"]
)
def test_a_batch_gets_each_flights_own_values(live, registered, read_cost, reads):
    """Flights read together get what each would alone.

    Their keys are packed into shared rows, and the views read at once or side by side.
    """
    flights = BATCH
    batch = client(live, registered, 0.0, read_cost=read_cost)
    assert len(batch.reads(flights, {view: [0, 1, 2, 3] for view in batch.views})) == reads
    together = batch.fetch(flights)
    for flight, got in zip(flights, together, strict=True):
        alone = client(live, registered, 0.0).fetch([flight])[0]
        assert got.keys() == alone.keys()
        for view in got:
            assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got[view], alone[view], strict=True))


def test_cache_answers_repeated_keys_until_the_ttl_passes(live, registered):
    """Within the TTL a key is answered from the cache; after it, from the server; static views last longer."""
    cached = client(live, registered, ttl_s=0.3, static_ttl_s=60.0)
    first = cached.fetch([KEYS, {**KEYS, "tailnum": "UNKNOWN"}])
    assert (cached.hits, cached.misses) == (0, 8)  # 4 views x 2 rows
    second = cached.fetch([KEYS])
    assert (cached.hits, cached.misses) == (4, 8) and second[0] == first[0]
    time.sleep(0.35)
    cached.fetch([KEYS])
    assert (cached.hits, cached.misses) == (5, 11)  # weather, carrier and route expired; the plane (no TTL) did not


def test_unknown_keys_give_nan_not_an_error(live, registered):
    """A plane the store never saw comes back as NaN features (the model handles missing values)."""
    got = client(live, registered, 0.0).fetch([{**KEYS, "tailnum": "N0NE"}])[0]
    assert all(math.isnan(v) for v in got["plane"])
    assert not any(math.isnan(v) for v in got["origin_weather"][:2])


def test_nothing_listening_is_feature_server_unavailable(registered):
    """A refused connection is a 503-class error naming the server."""
    from ctloop.adapters import services

    layout = registered.bundles["1"].metadata["feature_layout"]["views"]
    dead = FeatureClient(f"http://127.0.0.1:{services.free_port()}", layout, 0.5, 0.0, 10)
    with pytest.raises(FeatureServerUnavailableError, match="unreachable") as caught:
        dead.fetch([KEYS])
    assert caught.value.status == 503


def test_a_closed_client_lets_its_reading_thread_go_and_reads_again_on_demand(live, registered):
    """A client replaced at a model swap leaves no thread behind; used again, it reconnects."""
    import threading

    def readers() -> int:
        return sum(t.name.startswith("feature-read") for t in threading.enumerate())

    flights = BATCH
    batch = client(live, registered, 0.0, read_cost=0.0)  # two reads (see the test above)
    before = readers()
    first = batch.fetch(flights)
    assert readers() == before + 1  # the second read went out beside the first
    batch.close()
    deadline = time.monotonic() + 5.0
    while readers() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert readers() == before
    assert batch.fetch(flights) == first
