"""Point-in-time correctness of the training set, against brute force over the raw snapshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.contract import flight_request
from ctloop.core import data, features

pytestmark = pytest.mark.slow
SAMPLE = 300


@pytest.fixture(scope="module")
def joined(training_set, snapshot):
    """The training set with each row's prediction time and keys, sampled reproducibly."""
    flights, weather, _ = data.read_snapshot(Path(snapshot.path))
    meta = flights.loc[:, ["flight_id", "sched_dep_utc", "dest"]]
    frame = training_set.frame.merge(meta, on="flight_id", validate="one_to_one")
    return frame.sample(SAMPLE, random_state=7).reset_index(drop=True), flights, weather


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or bool(np.isclose(a, b, rtol=0, atol=1e-9))


def test_weather_is_the_last_observation_at_or_before_departure(joined):
    """Weather features equal a brute-force as-of join (3 h TTL) and never come from after departure."""
    sample, _, weather = joined
    for row in sample.itertuples():
        seen = weather[(weather["origin"] == row.origin) & (weather["event_timestamp"] <= row.sched_dep_utc)]
        seen = seen[seen["event_timestamp"] >= row.sched_dep_utc - pd.Timedelta(hours=3)]
        expected = seen.sort_values("event_timestamp").iloc[-1] if len(seen) else None
        for name in features.WEATHER_FEATURES:
            want = float("nan") if expected is None else float(expected[name])
            assert _same(float(getattr(row, name)), want), (row.flight_id, name)


def test_delay_rates_count_only_flights_arrived_before_the_day(joined):
    """Carrier and route rates equal brute-force counts over outcomes known before the day began."""
    sample, flights, _ = joined
    for row in sample.itertuples():
        day = row.sched_dep_utc.floor("D")
        assert day <= row.sched_dep_utc
        for key, width, prefix in (("carrier", 7, "carrier"), ("carrier", 28, "carrier"), ("route", 28, "route")):
            known = flights[
                (flights[key] == getattr(row, key))
                & (flights["outcome_known_at"] < day)
                & (flights["outcome_known_at"] >= day - pd.Timedelta(days=width))
            ]
            assert float(getattr(row, f"{prefix}_flights_{width}d")) == len(known), (row.flight_id, key, width)
            rate = known["delayed"].mean() if len(known) else float("nan")
            assert _same(float(getattr(row, f"{prefix}_delay_rate_{width}d")), float(rate))
            # no counted outcome was known after this flight's scheduled departure
            assert (known["outcome_known_at"] < row.sched_dep_utc).all()


def test_request_features_match_the_shared_definition(joined):
    """Request-time features in the training set are exactly what the shared function computes."""
    sample, _, _ = joined
    expected = flight_request.request_features(sample["sched_dep_local"].tolist(), sample["distance_mi"].tolist())
    for name, values in expected.items():
        np.testing.assert_allclose(sample[name].to_numpy(dtype=float), np.asarray(values), rtol=0, atol=1e-12)


def test_training_set_keeps_every_flight_of_the_window(training_set, snapshot, window):
    """Feast returns every entity row (no de-duplication) and labels stay attached to their flight."""
    flights, _, _ = data.read_snapshot(Path(snapshot.path))
    rows = data.training_rows(flights, window)
    assert len(training_set.frame) == len(rows)
    merged = training_set.frame.merge(rows[["flight_id", "delayed"]], on="flight_id", suffixes=("", "_raw"))
    assert (merged["delayed"] == merged["delayed_raw"]).all()
