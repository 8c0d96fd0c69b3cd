"""Trailing delay rates and request features: exact values on hand-made data."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

from ctloop.contract import flight_request
from ctloop.core import data, features


def flights(rows):
    return pd.DataFrame(
        {
            "carrier": pd.array([r[0] for r in rows], dtype="string"),
            "outcome_known_at": pd.to_datetime([r[1] for r in rows], utc=True).astype("datetime64[us, UTC]"),
            "delayed": pd.array([r[2] for r in rows], dtype="int8"),
        }
    )


def rates(rows, first=date(2013, 1, 3), last=date(2013, 1, 5)):
    out = features.trailing_rates(flights(rows), "carrier", {"2d": 2}, "carrier", first, last)
    return {
        (str(r.event_timestamp.tz_convert("America/New_York").date()), r.carrier): (
            r.carrier_flights_2d,
            r.carrier_delay_rate_2d,
        )
        for r in out.itertuples()
    }


def test_rate_for_a_day_counts_outcomes_known_in_the_previous_window():
    """Day D counts landings in the two New York days before it; one at D's midnight (05:00Z) waits for D+1."""
    got = rates(
        [
            ("AA", "2013-01-01T10:00Z", 1),  # in D=01-03's window (01-01, 01-02)
            ("AA", "2013-01-03T04:59Z", 0),  # 23:59 EST on 01-02
            ("AA", "2013-01-03T05:00Z", 1),  # New York midnight starting 01-03: not before D=01-03
            ("B6", "2013-01-01T04:00Z", 1),  # 23:00 EST on 12-31: too old for 01-03
        ]
    )
    assert got[("2013-01-03", "AA")] == (2.0, 0.5)
    assert got[("2013-01-04", "AA")] == (2.0, 0.5)  # 01-02 and 01-03 outcomes
    assert got[("2013-01-05", "AA")] == (1.0, 1.0)  # only the 01-03 outcome remains
    flights_b6, rate_b6 = got[("2013-01-03", "B6")]
    assert flights_b6 == 0.0 and math.isnan(rate_b6)


def test_request_features_of_the_readme_example():
    """08:30 on Tuesday 2013-04-02, 187 miles."""
    got = flight_request.request_features(["2013-04-02T08:30:00"], [187])
    assert got == {"sched_hour": [8.5], "sched_weekday": [1.0], "sched_month": [4.0], "distance_mi": [187.0]}


def test_unparseable_request_time_gives_nan_not_an_error():
    got = flight_request.request_features(["hello world"], [1.0])
    assert math.isnan(got["sched_hour"][0]) and got["distance_mi"] == [1.0]


def test_label_threshold_and_cancelled_count():
    """15 minutes late is late, 14 is not; a flight without an arrival delay is dropped and counted."""
    base = {
        "year": 2013,
        "month": 1,
        "day": 1,
        "dep_time": 600.0,
        "sched_dep_time": 600,
        "arr_time": 900.0,
        "sched_arr_time": 900,
        "carrier": "AA",
        "flight": 1,
        "tailnum": "N1",
        "origin": "JFK",
        "dest": "BOS",
        "air_time": 40.0,
        "distance": 187,
        "hour": 6,
        "minute": 0,
        "time_hour": "2013-01-01T11:00:00Z",
        "dep_delay": 0.0,
    }
    raw = pd.DataFrame(
        [
            {**base, "flight": 1, "arr_delay": 15.0},
            {**base, "flight": 2, "arr_delay": 14.0},
            {**base, "flight": 3, "arr_delay": float("nan")},
        ]
    )
    raw["carrier"], raw["tailnum"] = raw["carrier"].astype("string"), raw["tailnum"].astype("string")
    prepared, excluded = data.prepare_flights(raw, {"BOS": "America/New_York"})
    assert excluded == data.Excluded(cancelled=0, diverted=1)  # it departed (dep_time) but has no arr_delay
    assert prepared.set_index("flight")["delayed"].to_dict() == {1: 1, 2: 0}
    row = prepared.iloc[0]
    assert row["sched_dep_local"] == "2013-01-01T06:00:00"
    assert row["outcome_known_at"] == pd.Timestamp("2013-01-01T14:00:00Z") + pd.Timedelta(minutes=15)  # 09:00 EST
