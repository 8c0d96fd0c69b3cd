"""One flight as a prediction request: its fields, its entity keys and its request-time features.

Standard library only: this module is shared by the platform side (Feast's on-demand view, the
training set) and the serving side (the Seldon model class, which runs in the serving env with
no pandas, Feast or MLflow). Keeping the definitions here is what makes training and serving
compute the same request features and the same join keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ORIGINS = ("EWR", "JFK", "LGA")
CARRIERS = (
    "9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV",
)  # fmt: skip
UNKNOWN_TAILNUM = "UNKNOWN"
EXAMPLE = {
    "origin": "JFK",
    "carrier": "B6",
    "tailnum": "N503JB",
    "dest": "BOS",
    "sched_dep": "2013-04-02T08:30:00",
    "distance": 187,
}
"""A valid flight of the request (``ctloop serve`` prints it in a curl; benchmarks and tests send it)."""
MAX_DISTANCE_MI = 6000.0
REQUIRED_FIELDS = ("origin", "carrier", "dest", "sched_dep", "distance")
OPTIONAL_FIELDS = ("tailnum",)
_AIRPORT = re.compile(r"[A-Z0-9]{3}")
_TAILNUM = re.compile(r"[A-Z0-9]{1,8}")


class RequestError(ValueError):
    """A request field is missing or wrong; ``field`` names it (``flights[2].origin``)."""

    def __init__(self, field: str, message: str) -> None:
        """Keep the field apart so an endpoint can return it structured."""
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Flight:
    """A validated flight: what a prediction needs to know before departure."""

    origin: str
    carrier: str
    dest: str
    tailnum: str
    sched_dep_local: str
    distance: float

    def entity_keys(self) -> dict[str, str]:
        """Feast join keys of this flight (the same mapping the training set uses)."""
        return {
            "origin": self.origin,
            "carrier": self.carrier,
            "route": route_key(self.origin, self.dest),
            "tailnum": self.tailnum,
        }


def route_key(origin: str, dest: str) -> str:
    """The route entity's join key."""
    return f"{origin}-{dest}"


def request_features(sched_dep_local: Sequence[str], distance: Sequence[float]) -> dict[str, list[float]]:
    """Request-time features from the scheduled local departure and the distance.

    The single definition behind Feast's on-demand view ``request_time``, hence training, and
    behind serving. An unparseable time gives NaN features (endpoints validate before this).
    """
    hours: list[float] = []
    weekdays: list[float] = []
    months: list[float] = []
    nan = float("nan")
    for text in sched_dep_local:
        try:
            when = datetime.fromisoformat(text)
        except (TypeError, ValueError):
            hours.append(nan)
            weekdays.append(nan)
            months.append(nan)
            continue
        hours.append(when.hour + when.minute / 60.0)
        weekdays.append(float(when.weekday()))
        months.append(float(when.month))
    return {
        "sched_hour": hours,
        "sched_weekday": weekdays,
        "sched_month": months,
        "distance_mi": [float(d) for d in distance],
    }


def _text(row: Mapping[str, Any], name: str, where: str) -> str:
    value = row[name]
    if not isinstance(value, str):
        raise RequestError(f"{where}.{name}", f"expected a string, got {type(value).__name__}")
    return value


def _sched_dep(row: Mapping[str, Any], where: str) -> str:
    text = _text(row, "sched_dep", where)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(f"{where}.sched_dep", f"not an ISO 8601 local time: {text[:40]!r}") from None
    if when.tzinfo is not None:
        raise RequestError(f"{where}.sched_dep", "give the local time at the origin, without a UTC offset")
    return when.isoformat(timespec="seconds")


def _distance(row: Mapping[str, Any], where: str) -> float:
    value = row["distance"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{where}.distance", f"expected a number of miles, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer past a double's range
        raise RequestError(f"{where}.distance", "must be a finite number (this one is past a double's range)") from None
    if not math.isfinite(number):
        raise RequestError(f"{where}.distance", "must be a finite number (NaN and Infinity are not)")
    if not 0 < number <= MAX_DISTANCE_MI:
        raise RequestError(f"{where}.distance", f"must be in (0, {MAX_DISTANCE_MI:g}] miles, got {number:g}")
    return number


def parse_flight(row: object, where: str) -> Flight:
    """Validate one flight object; ``where`` prefixes field names in errors."""
    if not isinstance(row, Mapping):
        raise RequestError(where, f"expected an object with {', '.join(REQUIRED_FIELDS)}")
    unknown = sorted(str(k) for k in row if k not in REQUIRED_FIELDS and k not in OPTIONAL_FIELDS)
    if unknown:
        allowed = ", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS)
        raise RequestError(f"{where}.{unknown[0]}", f"unknown field (allowed: {allowed})")
    for name in REQUIRED_FIELDS:
        if name not in row:
            raise RequestError(f"{where}.{name}", "missing")
    origin = _text(row, "origin", where)
    if origin not in ORIGINS:
        raise RequestError(f"{where}.origin", f"unknown origin {origin[:10]!r} (one of {', '.join(ORIGINS)})")
    carrier = _text(row, "carrier", where)
    if carrier not in CARRIERS:
        raise RequestError(f"{where}.carrier", f"unknown carrier {carrier[:10]!r} (one of {', '.join(CARRIERS)})")
    dest = _text(row, "dest", where)
    if not _AIRPORT.fullmatch(dest):
        raise RequestError(f"{where}.dest", f"expected a 3-letter FAA airport code, got {dest[:10]!r}")
    tailnum = UNKNOWN_TAILNUM
    if row.get("tailnum") is not None:
        tailnum = _text(row, "tailnum", where)
        if not _TAILNUM.fullmatch(tailnum):
            raise RequestError(f"{where}.tailnum", f"expected 1-8 letters or digits, got {tailnum[:10]!r}")
    return Flight(origin, carrier, dest, tailnum, _sched_dep(row, where), _distance(row, where))


def parse_flights(value: object, max_batch: int, where: str = "jsonData.flights") -> list[Flight]:
    """Validate a batch of flights (a non-empty list of at most ``max_batch`` objects)."""
    if not isinstance(value, list):
        raise RequestError(where, f"expected a list of flights, got {type(value).__name__}")
    if not value:
        raise RequestError(where, "empty batch: send at least one flight")
    if len(value) > max_batch:
        raise RequestError(where, f"batch of {len(value)} flights is over the limit of {max_batch}")
    return [parse_flight(row, f"{where}[{i}]") for i, row in enumerate(value)]
