"""Feature core: trailing delay rates against brute force, request features, entity rows."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from ctloop.contract import flight_request
from ctloop.core import features

WINDOWS = {"3d": 3, "7d": 7}
FIRST = date(2013, 1, 10)
LAST = date(2013, 1, 16)
NEW_YORK = ZoneInfo("America/New_York")


def midnight(day: date) -> pd.Timestamp:
    """New York midnight starting ``day``, as a UTC timestamp (by zoneinfo, not the code under test)."""
    return pd.Timestamp(datetime.combine(day, time(0), NEW_YORK).astimezone(UTC))


def flight_frame(carriers, known_at, delayed):
    """A synthetic flights frame with the columns trailing_rates and rate_span read."""
    known = pd.to_datetime(pd.Series(known_at), utc=True).astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "carrier": pd.array(carriers, dtype="string"),
            "outcome_known_at": known,
            "delayed": pd.array(delayed, dtype="int8"),
            "sched_dep_utc": (known - pd.Timedelta(hours=3)).astype("datetime64[us, UTC]"),
        }
    )


@pytest.fixture(scope="module")
def synthetic():
    """Random outcomes for three carriers over Dec 28 .. Jan 20, plus hand-placed edge cases."""
    rng = np.random.default_rng(7)
    n = 600
    start = pd.Timestamp("2012-12-28", tz="UTC")
    offsets = rng.integers(0, 24 * 24 * 60, n)  # minutes over 24 days
    carriers = list(rng.choice(["AA", "B6", "DL"], n))
    known = [start + pd.Timedelta(minutes=int(m)) for m in offsets]
    delayed = list(rng.integers(0, 2, n))
    # HA: one late flight known exactly at New York midnight starting 2013-01-12 (05:00 UTC)
    carriers.append("HA")
    known.append(pd.Timestamp("2013-01-12T05:00:00Z"))
    delayed.append(1)
    # UA: only known long after the last day: every row has zero flights
    carriers.append("UA")
    known.append(pd.Timestamp("2013-02-15T08:00:00Z"))
    delayed.append(0)
    return flight_frame(carriers, known, delayed)


def brute_force(flights, key, windows, prefix, first, last):
    """One row per (New York day, key): count and mean of flights landed in [midnight(D - w), midnight(D))."""
    rows = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        for value in sorted(flights[key].unique()):
            row = {"event_timestamp": midnight(day), key: value}
            for name, width in windows.items():
                count, late = 0, 0
                lo, hi = midnight(day - timedelta(days=width)), midnight(day)
                for k, when, y in zip(flights[key], flights["outcome_known_at"], flights["delayed"], strict=True):
                    if k == value and lo <= when < hi:
                        count += 1
                        late += int(y)
                row[f"{prefix}_flights_{name}"] = float(count)
                row[f"{prefix}_delay_rate_{name}"] = late / count if count else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def rates(flights, windows=WINDOWS, first=FIRST, last=LAST):
    return features.trailing_rates(flights, "carrier", windows, "carrier", first, last)


def test_trailing_rates_equal_brute_force(synthetic):
    """Every (New York day, carrier) count and rate equals a loop over [midnight(D - w), midnight(D))."""
    got = rates(synthetic).sort_values(["event_timestamp", "carrier"]).reset_index(drop=True)
    want = brute_force(synthetic, "carrier", WINDOWS, "carrier", FIRST, LAST)
    assert len(got) == len(want) == 7 * 5
    assert list(got["carrier"]) == list(want["carrier"])
    assert list(got["event_timestamp"]) == list(want["event_timestamp"])
    for column in want.columns.drop(["event_timestamp", "carrier"]):
        np.testing.assert_allclose(got[column].to_numpy(float), want[column].to_numpy(float), equal_nan=True)
    assert got["carrier_flights_7d"].max() > 50  # the random flights really are counted


def test_trailing_rates_column_types(synthetic):
    """Keys are strings, event times UTC microseconds, one count and one rate per window."""
    got = rates(synthetic)
    assert str(got["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert str(got["carrier"].dtype) == "string"
    assert set(got.columns) == {
        "event_timestamp",
        "carrier",
        "carrier_flights_3d",
        "carrier_delay_rate_3d",
        "carrier_flights_7d",
        "carrier_delay_rate_7d",
    }


def _row(frame, day, carrier):
    hit = frame[(frame["event_timestamp"] == midnight(date.fromisoformat(day))) & (frame["carrier"] == carrier)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_outcome_known_at_midnight_counts_from_the_next_day(synthetic):
    """A flight landed exactly at New York midnight of D is not in D's row, is in D+1's, and leaves after w days."""
    got = rates(synthetic)
    assert _row(got, "2013-01-12", "HA")["carrier_flights_3d"] == 0.0
    assert math.isnan(_row(got, "2013-01-12", "HA")["carrier_delay_rate_3d"])
    for day in ("2013-01-13", "2013-01-14", "2013-01-15"):
        assert _row(got, day, "HA")["carrier_flights_3d"] == 1.0
        assert _row(got, day, "HA")["carrier_delay_rate_3d"] == 1.0
    assert _row(got, "2013-01-16", "HA")["carrier_flights_3d"] == 0.0  # [01-13, 01-16) excludes 01-12
    assert _row(got, "2013-01-16", "HA")["carrier_flights_7d"] == 1.0


def test_one_microsecond_before_midnight_counts_for_that_day():
    """An outcome known at New York midnight of D minus 1 µs is in D's row."""
    flights = flight_frame(["AA"], ["2013-01-12T04:59:59.999999Z"], [0])
    got = rates(flights)
    assert _row(got, "2013-01-12", "AA")["carrier_flights_3d"] == 1.0
    assert _row(got, "2013-01-12", "AA")["carrier_delay_rate_3d"] == 0.0
    assert _row(got, "2013-01-11", "AA")["carrier_flights_3d"] == 0.0


def test_carrier_without_flights_in_range_has_zero_count_and_nan_rate(synthetic):
    """A carrier with no outcome inside any window: count 0 and rate NaN on every day."""
    ua = rates(synthetic).query("carrier == 'UA'")
    assert len(ua) == 7
    assert (ua["carrier_flights_3d"] == 0).all() and (ua["carrier_flights_7d"] == 0).all()
    assert ua["carrier_delay_rate_3d"].isna().all() and ua["carrier_delay_rate_7d"].isna().all()


def test_outcomes_before_the_history_span_are_not_counted():
    """An outcome known before first_day - longest window never reaches any row."""
    flights = flight_frame(["AA", "AA"], ["2013-01-01T12:00:00Z", "2013-01-08T12:00:00Z"], [1, 0])
    got = rates(flights)
    row = _row(got, "2013-01-10", "AA")
    assert (row["carrier_flights_7d"], row["carrier_delay_rate_7d"]) == (1.0, 0.0)


def test_the_day_is_new_york_not_utc():
    """A flight landed at 21:00 in New York on Jan 11 (02:00 UTC Jan 12) counts from Jan 12's row on."""
    got = rates(flight_frame(["AA"], ["2013-01-12T02:00:00Z"], [1]))
    assert _row(got, "2013-01-11", "AA")["carrier_flights_3d"] == 0.0
    assert _row(got, "2013-01-12", "AA")["carrier_flights_3d"] == 1.0
    assert _row(got, "2013-01-14", "AA")["carrier_flights_3d"] == 1.0
    assert _row(got, "2013-01-15", "AA")["carrier_flights_3d"] == 0.0


@pytest.mark.parametrize(
    ("first", "landed", "rows"),
    [
        # spring: Mar 10 has 23 hours; midnights at 05:00Z (EST) then 04:00Z (EDT)
        (date(2013, 3, 9), "2013-03-11T03:30:00Z", {"2013-03-10": 0.0, "2013-03-11": 1.0}),  # 23:30 EDT Mar 10
        (date(2013, 3, 9), "2013-03-11T04:30:00Z", {"2013-03-11": 0.0, "2013-03-12": 1.0}),  # 00:30 EDT Mar 11
        # autumn: Nov 3 has 25 hours; midnights at 04:00Z (EDT) then 05:00Z (EST)
        (date(2013, 11, 2), "2013-11-04T04:30:00Z", {"2013-11-03": 0.0, "2013-11-04": 1.0}),  # 23:30 EST Nov 3
        (date(2013, 11, 2), "2013-11-03T03:30:00Z", {"2013-11-02": 0.0, "2013-11-03": 1.0}),  # 23:30 EDT Nov 2
    ],
    ids=["spring, before midnight", "spring, after midnight", "autumn, before midnight", "autumn, the day before"],
)
def test_rate_rows_start_at_new_york_midnight_across_daylight_saving(first, landed, rows):
    """Each row's event time is that day's New York midnight in UTC; a landing counts from the next row on."""
    got = rates(flight_frame(["AA"], [landed], [0]), first=first, last=first + timedelta(days=4))
    stamps = sorted(got["event_timestamp"].unique())
    assert stamps == [midnight(first + timedelta(days=d)) for d in range(5)]
    for day, count in rows.items():
        assert _row(got, day, "AA")["carrier_flights_3d"] == count, day


def test_a_28_day_window_across_the_spring_change_counts_28_new_york_days():
    """Mar 20's 28-day row counts landings from New York midnight Feb 20 (05:00Z) up to Mar 20 (04:00Z)."""
    landed = ["2013-02-20T04:59:00Z", "2013-02-20T05:00:00Z", "2013-03-20T03:59:00Z", "2013-03-20T04:00:00Z"]
    got = features.trailing_rates(
        flight_frame(["AA"] * 4, landed, [1, 0, 0, 1]),
        "carrier",
        {"28d": 28},
        "carrier",
        date(2013, 3, 20),
        date(2013, 3, 20),
    )
    assert (got["carrier_flights_28d"].iloc[0], got["carrier_delay_rate_28d"].iloc[0]) == (2.0, 0.0)
    assert got["event_timestamp"].iloc[0] == pd.Timestamp("2013-03-20T04:00Z")


def test_carrier_rates_cover_the_day_after_the_last_departure():
    """rate_span runs from the first departure's New York day to the day after the last one's."""
    flights = flight_frame(["AA", "B6"], ["2013-03-01T10:00:00Z", "2013-03-05T02:00:00Z"], [1, 0])
    days = features.rate_span(flights)  # departures 3 h earlier: Mar 1 07:00Z and Mar 4 23:00Z (18:00 EST)
    assert days == (date(2013, 3, 1), date(2013, 3, 5))
    got = features.carrier_rates(flights, days)
    stamps = sorted(got["event_timestamp"].unique())
    assert stamps[0] == midnight(date(2013, 3, 1)) and stamps[-1] == midnight(date(2013, 3, 5))
    assert len(stamps) == 5
    assert _row(got, "2013-03-02", "AA")["carrier_flights_7d"] == 1.0


def test_request_features_hour_weekday_month_distance():
    """08:30 on Tuesday 2013-04-02: hour 8.5, weekday 1 (Monday is 0), month 4, distance as float."""
    got = flight_request.request_features(["2013-04-02T08:30:00", "2013-12-29T23:45:00"], [187, 1400.5])
    assert got == {
        "sched_hour": [8.5, 23.75],
        "sched_weekday": [1.0, 6.0],
        "sched_month": [4.0, 12.0],
        "distance_mi": [187.0, 1400.5],
    }
    assert all(isinstance(v, float) for values in got.values() for v in values)


@pytest.mark.parametrize("bad", ["hello world", "", "2013-13-01T08:00:00", "2013-02-30T08:00:00", None])
def test_unparseable_request_time_gives_nan_without_raising(bad):
    """A time that cannot be parsed yields NaN for the time features; the other rows are unaffected."""
    got = flight_request.request_features([bad, "2013-04-02T08:30:00"], [100.0, 200.0])
    assert all(math.isnan(got[name][0]) for name in ("sched_hour", "sched_weekday", "sched_month"))
    assert got["sched_hour"][1] == 8.5
    assert got["distance_mi"] == [100.0, 200.0]


def test_request_features_names_match_the_declared_list():
    """The output keys are exactly REQUEST_FEATURES, in order."""
    assert tuple(flight_request.request_features([], [])) == features.REQUEST_FEATURES


def test_entity_frame_fills_missing_tailnum():
    """Missing tail numbers become UNKNOWN_TAILNUM; other columns are carried over."""
    flights = pd.DataFrame(
        {
            "flight_id": pd.array(["f1", "f2"], dtype="string"),
            "origin": pd.array(["JFK", "EWR"], dtype="string"),
            "carrier": pd.array(["AA", "UA"], dtype="string"),
            "route": pd.array(["JFK-BOS", "EWR-IAH"], dtype="string"),
            "tailnum": pd.array(["N123AA", pd.NA], dtype="string"),
            "sched_dep_utc": pd.to_datetime(["2013-01-01T10:15Z", "2013-01-01T11:00Z"], utc=True),
            "sched_dep_local": pd.array(["2013-01-01T05:15:00", "2013-01-01T06:00:00"], dtype="string"),
            "distance": [187, 1400],
        }
    )
    got = features.entity_frame(flights)
    assert list(got["tailnum"]) == ["N123AA", flight_request.UNKNOWN_TAILNUM]
    assert got["tailnum"].notna().all()
    assert list(got["event_timestamp"]) == list(flights["sched_dep_utc"])
    assert str(got["distance"].dtype) == "float64"
    assert set(features.ENTITY_COLUMNS) <= set(got.columns)
    assert set(features.REQUEST_COLUMNS) <= set(got.columns)


def test_as_float_matrix_keeps_order_and_missing_values():
    """The model input follows feature_names order, as float32 with NaN for missing."""
    frame = pd.DataFrame({"b": pd.array([1, None], dtype="Int64"), "a": [0.5, 2.0]})
    matrix = features.as_float_matrix(frame, ["a", "b"])
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, np.array([[0.5, 1.0], [2.0, np.nan]], dtype=np.float32))
