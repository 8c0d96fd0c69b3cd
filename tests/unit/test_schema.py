"""Snapshot validation: a real snapshot passes; each injected fault is named by column and rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ctloop.core import data, schema

WINDOW = data.Window.parse("2013-01-01", "2013-01-03")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    result = data.ingest(WINDOW, 28, tmp_path_factory.mktemp("schema") / "snap")
    return data.read_snapshot(Path(result.path))


def test_a_real_snapshot_is_valid(tables):
    """A real ingest passes every table's schema and the row counts are returned."""
    flights, weather, planes = tables
    counts = schema.validate_snapshot(flights, weather, planes, WINDOW)
    window_rows = len(data.training_rows(flights, WINDOW))
    tables = {"flights": len(flights), "weather": len(weather), "planes": len(planes)}
    assert counts == {**tables, "window_rows": window_rows}
    one_day = data.Window.parse("2013-01-02", "2013-01-02")
    counted = schema.validate_snapshot(flights, weather, planes, one_day)["window_rows"]
    assert 0 < counted == len(data.training_rows(flights, one_day)) < window_rows
    assert counts["flights"] > 2000 and counts["weather"] > 100 and counts["planes"] > 3000


def _set(frame, column, value, rows=1):
    """A copy with the first ``rows`` values of ``column`` replaced (dtype kept)."""
    out = frame.copy()
    dtype = out[column].dtype
    out[column] = out[column].astype(object)
    out.loc[out.index[:rows], column] = value
    out[column] = out[column].astype(dtype)
    return out


FLIGHT_FAULTS = [
    ("missing column", lambda f: f.drop(columns=["carrier"]), "carrier", "required column present"),
    ("wrong dtype", lambda f: f.astype({"delayed": "int64"}), "delayed", "dtype('int8')"),
    ("arr_delay too large", lambda f: _set(f, "arr_delay", 5000.0, rows=2), "arr_delay", "in_range(-180, 2000)"),
    ("arr_delay too small", lambda f: _set(f, "arr_delay", -500.0), "arr_delay", "in_range(-180, 2000)"),
    ("unknown origin", lambda f: _set(f, "origin", "BOS"), "origin", "isin"),
    ("unknown carrier", lambda f: _set(f, "carrier", "ZZ"), "carrier", "isin"),
    ("duplicated rows", lambda f: pd.concat([f, f.iloc[[5, 6]]], ignore_index=True), "flight_id", "field_uniqueness"),
    ("null air_time", lambda f: _set(f, "air_time", float("nan")), "air_time", "not_nullable"),
    ("null flight_id", lambda f: _set(f, "flight_id", pd.NA), "flight_id", "not_nullable"),
    ("unexpected column", lambda f: f.assign(arrived_late=f["delayed"]), "arrived_late", "column_in_schema"),
    ("bad local time", lambda f: _set(f, "sched_dep_local", "2013-01-01 05:15"), "sched_dep_local", "str_matches"),
]


@pytest.mark.parametrize(
    ("fault", "column", "rule"),
    [pytest.param(fault, column, rule, id=name) for name, fault, column, rule in FLIGHT_FAULTS],
)
def test_flight_fault_is_named_by_column_and_rule(tables, fault, column, rule):
    """The fault fails validation with exactly one failure naming its column and rule."""
    flights, weather, planes = tables
    with pytest.raises(schema.DataValidationError) as caught:
        schema.validate_snapshot(fault(flights), weather, planes, WINDOW)
    error = caught.value
    assert error.table == "flights"
    assert [f.column for f in error.failures] == [column]
    assert rule in error.failures[0].rule
    assert error.failures[0].rows >= 1
    assert f"column {column!r}" in str(error) and rule in str(error)
    assert str(error).startswith("flights: 1 rule(s) failed")


def test_failure_samples_show_the_bad_values(tables):
    """Samples carry the offending values, at most MAX_SAMPLES of them."""
    flights, weather, planes = tables
    with pytest.raises(schema.DataValidationError) as caught:
        schema.validate_snapshot(_set(flights, "arr_delay", 4321.0, rows=20), weather, planes)
    (failure,) = caught.value.failures
    assert failure.rows == 20
    assert failure.samples == ("4321.0",) * schema.MAX_SAMPLES


def test_several_faults_are_all_reported(tables):
    """Lazy validation reports every broken column at once, sorted by column."""
    flights, weather, planes = tables
    broken = _set(_set(flights, "origin", "BOS"), "arr_delay", 9999.0).drop(columns=["distance"])
    with pytest.raises(schema.DataValidationError) as caught:
        schema.validate_snapshot(broken, weather, planes)
    assert [f.column for f in caught.value.failures] == ["arr_delay", "distance", "origin"]
    assert str(caught.value).startswith("flights: 3 rule(s) failed")


def test_window_without_flights_is_named(tables):
    """A window holding no rows of the snapshot fails on sched_dep_local, naming the window."""
    flights, weather, planes = tables
    empty = data.Window.parse("2013-02-01", "2013-02-02")
    with pytest.raises(schema.DataValidationError) as caught:
        schema.validate_snapshot(flights, weather, planes, empty)
    (failure,) = caught.value.failures
    assert failure.column == "sched_dep_local"
    assert failure.rule == "rows in window 2013-02-01..2013-02-02"
    assert failure.rows == 0


def test_empty_flights_table_is_named(tables):
    """A flights table with no rows fails the table-level non-empty rule."""
    flights, weather, planes = tables
    with pytest.raises(schema.DataValidationError, match="the window holds no flights") as caught:
        schema.validate_snapshot(flights.iloc[:0], weather, planes)
    assert [f.column for f in caught.value.failures] == ["<table>"]


@pytest.mark.parametrize(
    ("table", "fault", "column", "rule"),
    [
        pytest.param(1, lambda w: _set(w, "origin", "BOS"), "origin", "isin", id="weather unknown origin"),
        pytest.param(1, lambda w: _set(w, "humid", 150.0), "humid", "in_range(0, 100)", id="weather humidity"),
        pytest.param(
            1,
            lambda w: pd.concat([w, w.iloc[[0]]], ignore_index=True),
            "event_timestamp",
            "multiple_fields_uniqueness",
            id="weather duplicate hour",
        ),
        pytest.param(
            2, lambda p: pd.concat([p, p.iloc[[0]]], ignore_index=True), "tailnum", "unique", id="planes duplicate"
        ),
        pytest.param(2, lambda p: _set(p, "plane_seats", 0.0), "plane_seats", "in_range", id="planes no seats"),
    ],
)
def test_weather_and_plane_faults_name_their_table(tables, table, fault, column, rule):
    """Weather and plane tables are checked too; the error names the table, column and rule."""
    parts = list(tables)
    parts[table] = fault(parts[table])
    with pytest.raises(schema.DataValidationError) as caught:
        schema.validate_snapshot(*parts, WINDOW)
    error = caught.value
    assert error.table == ("weather", "planes")[table - 1]
    assert any(f.column == column and rule in f.rule for f in error.failures), str(error)
