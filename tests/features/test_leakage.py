"""No feature of a flight changes when everything unknown at its departure is taken out of the raw data.

For a cutoff ``t`` (a scheduled departure), the raw CSVs are pruned of every flight that had not
landed by ``t`` (and every flight without an outcome scheduled after ``t``) and of every weather
row whose hour had not ended by ``t``; the pipeline runs again on what is left, and the features
of the flights departing at ``t`` must be exactly those computed from the whole data. The
cutoffs sit at the edges where a leak would show: just after UTC midnight (many flights land
around then), just after New York midnight, half-way through an hour (the weather row of that
hour is not complete yet), and on the autumn daylight-saving day.
"""

from __future__ import annotations

import math
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ctloop.core import data
from tests.features import raw_truth
from tests.features.conftest import own_settings, pipeline_features

pytestmark = pytest.mark.slow

SUMMER, AUTUMN = date(2013, 6, 24), date(2013, 11, 3)
CUTOFFS = [  # the first departure of the day at or after each instant
    (SUMMER, "after UTC midnight", "2013-06-25T00:00Z"),
    (SUMMER, "after New York midnight", "2013-06-24T04:00Z"),
    (SUMMER, "half-way through an hour", "2013-06-24T14:30Z"),
    (AUTUMN, "after UTC midnight, daylight-saving day", "2013-11-04T00:00Z"),
]


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """The raw flights with each one's landing and departure (UTC), by the definitions."""
    frame = pd.read_csv(raw_truth.raw_folder() / "flights.csv.zip")
    zones = raw_truth.zones()
    landed, departed = [], []
    for row in frame.to_dict("records"):
        landed.append(raw_truth.landing(row, zones[row["dest"]]))
        departed.append(raw_truth.departure(row))
    return frame.assign(
        landed_at=pd.to_datetime([pd.NaT if t is None else t for t in landed], utc=True),
        departed_at=pd.to_datetime(departed, utc=True),
    )


@pytest.fixture(scope="module")
def whole(tmp_path_factory, redis_server) -> dict[date, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per cutoff day: the day's prepared flights and their features from the whole data."""
    out = {}
    for day in (SUMMER, AUTUMN):
        folder = tmp_path_factory.mktemp(f"whole-{day}")
        found = pipeline_features(own_settings(folder, redis_server.port), data.Window(day, day), folder)
        flights, _, _ = data.read_snapshot(folder / "snapshot")
        out[day] = (flights, found)
    return out


def pruned_source(raw: pd.DataFrame, at: pd.Timestamp, folder: Path) -> tuple[int, int]:
    """The raw CSVs as they stood at ``at``; returns how many flights and weather rows were removed."""
    source = raw_truth.raw_folder()
    keep = (raw["landed_at"] <= at) | (raw["landed_at"].isna() & (raw["departed_at"] <= at))
    folder.mkdir(parents=True)
    flights = raw.loc[keep].drop(columns=["landed_at", "departed_at"])
    flights.to_csv(
        folder / "flights.csv.zip", index=False, compression={"method": "zip", "archive_name": "flights.csv"}
    )
    weather = pd.read_csv(source / "weather.csv")
    available = pd.to_datetime(weather["time_hour"], utc=True) + raw_truth.WEATHER_HOUR
    weather.loc[available <= at].to_csv(folder / "weather.csv", index=False)
    for name in ("planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(source / name, folder / name)
    return len(raw) - len(flights), int((available > at).sum())


@pytest.mark.parametrize(("day", "edge", "cutoff"), CUTOFFS, ids=[f"{d} {e}" for d, e, _ in CUTOFFS])
def test_features_do_not_change_without_the_future(day, edge, cutoff, whole, raw, tmp_path, redis_server):
    """The features of the flights departing at the cutoff are the same with the future removed."""
    flights, full = whole[day]
    departing = flights.loc[flights["sched_dep_utc"] >= pd.Timestamp(cutoff)]
    at = departing["sched_dep_utc"].min()
    rows = departing.loc[departing["sched_dep_utc"] == at].reset_index(drop=True)
    assert len(rows), f"no departure {edge}"
    removed_flights, removed_weather = pruned_source(raw, at, tmp_path / "raw")
    assert removed_flights > 1000 and removed_weather > 100
    found = pipeline_features(
        own_settings(tmp_path / "store", redis_server.port), data.Window(day, day), tmp_path, tmp_path / "raw", rows
    )
    expected = full.set_index("flight_id").loc[rows["flight_id"]]
    changed = []
    for name in expected.columns:
        for flight_id, want, got in zip(rows["flight_id"], expected[name], found[name], strict=True):
            a, b = float(want), float(got)
            if not ((math.isnan(a) and math.isnan(b)) or a == b):
                changed.append((flight_id, name, a, b))
    assert not changed, f"{edge}: {len(changed)} feature values changed, e.g. {changed[:5]}"
