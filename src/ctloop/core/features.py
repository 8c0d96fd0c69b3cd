"""Feature tables computed from a snapshot, and the request-time features.

Everything here is point-in-time by construction (docs/features.md defines each feature):

- a weather row's event time is the end of the hour it describes (set at ingest);
- carrier and route delay rates for New York day ``D`` (event time: New York midnight starting
  ``D``) count only flights that landed before that instant (``outcome_known_at``), so a
  prediction at a scheduled departure never sees an outcome that had not happened yet;
- request features depend on the request alone and have one definition, used by the Feast
  on-demand view (training and serving alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from ctloop.contract.flight_request import UNKNOWN_TAILNUM
from ctloop.core.clock import LOCAL_TZ, local_days

WEATHER_FEATURES = ("temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib")
CARRIER_WINDOWS_D = {"7d": 7, "28d": 28}
ROUTE_WINDOWS_D = {"28d": 28}
LONGEST_WINDOW_D = max(*CARRIER_WINDOWS_D.values(), *ROUTE_WINDOWS_D.values())
"""The history, in days before a window's first day, that its rates need."""
PLANE_FEATURES = ("plane_year", "plane_seats", "plane_engines")
REQUEST_FEATURES = ("sched_hour", "sched_weekday", "sched_month", "distance_mi")
PLANES_EVENT_TIME = pd.Timestamp("2000-01-01", tz="UTC")
"""Plane attributes are static: one row per plane, valid from long before the data."""

ENTITY_COLUMNS = ("origin", "carrier", "route", "tailnum")
REQUEST_COLUMNS = ("sched_dep_local", "distance")


def weather_table(weather: pd.DataFrame) -> pd.DataFrame:
    """Hourly weather per origin, at the end of the hour each row describes."""
    cols = ["origin", "event_timestamp", *WEATHER_FEATURES]
    return weather.loc[:, cols].sort_values(["origin", "event_timestamp"]).reset_index(drop=True)


def plane_table(planes: pd.DataFrame) -> pd.DataFrame:
    """Static plane attributes."""
    out = planes.loc[:, ["tailnum", *PLANE_FEATURES]].copy()
    out["event_timestamp"] = PLANES_EVENT_TIME.as_unit("us")
    return out


def trailing_rates(
    flights: pd.DataFrame,
    key: str,
    windows_d: dict[str, int],
    prefix: str,
    first_day: date,
    last_day: date,
    keys: Sequence[str] = (),
) -> pd.DataFrame:
    """Delay rate and flight count per ``key`` over trailing windows, one row per New York day.

    The row for day ``D`` (``first_day`` to ``last_day``) counts the flights that landed on days
    ``D - w`` to ``D - 1``: in ``[midnight(D - w), midnight(D))``, New York midnights. Its event
    time is New York midnight starting ``D``, in UTC. Every key of ``flights`` gets a row each
    day, and so does each of ``keys`` (a count of 0 where none of its flights landed).
    """
    landed_day = local_days(flights["outcome_known_at"])
    grouped = flights.assign(landed_day=landed_day).groupby(["landed_day", key], observed=True)["delayed"]
    n = grouped.size().unstack(key, fill_value=0)
    k = grouped.sum().unstack(key, fill_value=0)
    if len(keys):
        columns = n.columns.union(pd.Index(sorted(set(keys)), dtype=n.columns.dtype))
        n, k = n.reindex(columns=columns, fill_value=0), k.reindex(columns=columns, fill_value=0)
    longest = max(windows_d.values())
    days = pd.date_range(first_day - timedelta(days=longest), last_day, freq="D")
    n = n.reindex(days, fill_value=0).astype("float64")
    k = k.reindex(days, fill_value=0).astype("float64")
    frames: dict[str, pd.DataFrame] = {}
    for name, width in windows_d.items():
        # rows [D - w, D - 1] inclusive: a rolling sum ending at D - 1 (the shift) of width w
        n_w = n.rolling(width, min_periods=1).sum().shift(1, fill_value=0.0)
        k_w = k.rolling(width, min_periods=1).sum().shift(1, fill_value=0.0)
        frames[f"{prefix}_flights_{name}"] = n_w
        frames[f"{prefix}_delay_rate_{name}"] = k_w / n_w.where(n_w > 0)
    wanted = days[days >= pd.Timestamp(first_day)]
    long = pd.concat({name: frame.loc[wanted].stack(future_stack=True) for name, frame in frames.items()}, axis=1)
    long.index = long.index.set_names(["event_timestamp", key])
    out = long.reset_index()
    out[key] = out[key].astype("string")
    midnight = out["event_timestamp"].dt.tz_localize(LOCAL_TZ).dt.tz_convert("UTC")  # midnight is never ambiguous
    out["event_timestamp"] = midnight.astype("datetime64[us, UTC]")
    return out


def rate_span(flights: pd.DataFrame) -> tuple[date, date]:
    """New York days of the first departure and the day after the last: the rate rows ``flights`` need."""
    days = local_days(flights["sched_dep_utc"])
    return days.min().date(), days.max().date() + timedelta(days=1)


def carrier_rates(flights: pd.DataFrame, days: tuple[date, date]) -> pd.DataFrame:
    """Trailing delay rates per carrier, for New York days ``days`` (inclusive)."""
    return trailing_rates(flights, "carrier", CARRIER_WINDOWS_D, "carrier", *days)


def route_rates(flights: pd.DataFrame, days: tuple[date, date]) -> pd.DataFrame:
    """Trailing delay rates per route (``ORIGIN-DEST``), for New York days ``days`` (inclusive)."""
    return trailing_rates(flights, "route", ROUTE_WINDOWS_D, "route", *days)


def feature_tables(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, days: tuple[date, date] | None = None
) -> dict[str, pd.DataFrame]:
    """All offline feature tables, by Feast source name.

    ``days``: the New York days that get delay-rate rows (inclusive); by default those of the
    departures in ``flights`` and the day after (:func:`rate_span`), right when ``flights`` holds
    every flight there is. A snapshot's window passes its own days: its history rows only feed
    the window's rates.
    """
    span = days or rate_span(flights)
    return {
        "origin_weather": weather_table(weather),
        "carrier_delay": carrier_rates(flights, span),
        "route_delay": route_rates(flights, span),
        "plane": plane_table(planes),
    }


def entity_frame(flights: pd.DataFrame) -> pd.DataFrame:
    """Entity rows for ``get_historical_features``: join keys, prediction time, request inputs."""
    return pd.DataFrame(
        {
            "flight_id": flights["flight_id"],
            "origin": flights["origin"],
            "carrier": flights["carrier"],
            "route": flights["route"],
            "tailnum": flights["tailnum"].fillna(UNKNOWN_TAILNUM),
            "event_timestamp": flights["sched_dep_utc"],
            "sched_dep_local": flights["sched_dep_local"],
            "distance": flights["distance"].astype("float64"),
        }
    )


def as_float_matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """The model input: the named columns, in order, as float32 with NaN for missing."""
    return frame.loc[:, list(feature_names)].astype("float64").to_numpy(dtype=np.float32, na_value=np.nan)


def epoch_us(stamps: pd.Series) -> np.ndarray:
    """Timestamps (any time zone, or naive UTC) as microseconds since the epoch, UTC."""
    utc = pd.to_datetime(stamps, utc=True).dt.tz_localize(None)
    return np.asarray(utc.to_numpy().astype("datetime64[us]").astype(np.int64))
