"""The offline store's day partitions: which days a run may append, and which days a window reads.

The offline feature tables grow one New York day at a time (docs/features.md). Partition ``P``
holds every feature row whose event time falls in ``(midnight(P), midnight(P + 1)]``: what
became known during day ``P``, the delay rates stamped at the closing midnight (those of day
``P + 1``) included. So the run for ``P`` can start at the end of ``P`` and serves tomorrow's
rates, and a training window of departure days ``start..end`` reads partitions
``start - 1 .. end``.

A run names its days (``2013-04-02``, ``2013-04-02,2013-04-03`` or ``2013-04-01..2013-04-07``).
Each day is either already in the store (a rerun: that day's partition is replaced, nothing
else) or the next day after the last one appended. Anything else is refused before anything is
written, by :class:`PartitionRuleError` naming its rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

PARTITION_KEY = "day"
"""The partition column of the hive-style layout: ``<table>/day=YYYY-MM-DD/part.parquet``."""
PARTITION_FILE = "part.parquet"
PARTITIONED_TABLES = ("origin_weather", "carrier_delay", "route_delay")
"""The offline tables that grow by day (hourly weather, daily delay rates)."""
STATIC_TABLES = ("plane",)
"""The offline tables rewritten whole at each append (plane attributes)."""
MAX_DAYS_PER_RUN = 400
"""A run appends at most this many days (a year's backfill fits)."""

RULES = {
    "day-format": "each day is an ISO date (YYYY-MM-DD), days are separated by ',' or given as FIRST..LAST",
    "no-duplicate-day": "a day appears once in a run's input",
    "days-in-order": "a run's days are in ascending order",
    "not-before-last": "a day before the last appended day must be a rerun of a day already in the store",
    "no-gap": "a new day is the day after the last appended day (the table grows without holes)",
    "run-size": f"a run appends between 1 and {MAX_DAYS_PER_RUN} days",
}
"""Every rule a run's days are checked against, by name."""


class PartitionRuleError(ValueError):
    """A run's days break a rule; nothing was appended."""

    def __init__(self, rule: str, detail: str) -> None:
        """Name the rule, what broke it, and the rule itself."""
        self.rule = rule
        super().__init__(f"rule {rule!r} refused the run: {detail} ({RULES[rule]}); nothing was appended")


def partitioned_path(table: str) -> str:
    """The relative path (a glob over every partition) that Feast's source of ``table`` reads."""
    return f"{table}/{PARTITION_KEY}=*/{PARTITION_FILE}"


def partition_dir(table: str, day: date) -> str:
    """The folder of one partition of ``table``, relative to the offline store."""
    return f"{table}/{PARTITION_KEY}={day.isoformat()}"


def _parse_one(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PartitionRuleError("day-format", f"{text.strip()!r} is not a date") from None


def parse_days(text: str) -> list[date]:
    """The days a run names, in the order given (``A``, ``A,B,...`` or ``A..B``)."""
    text = text.strip()
    if not text:
        raise PartitionRuleError("run-size", "no day given")
    if ".." in text:
        first_text, _, last_text = text.partition("..")
        first, last = _parse_one(first_text), _parse_one(last_text)
        if last < first:
            raise PartitionRuleError("days-in-order", f"range {first}..{last} ends before it starts")
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    else:
        days = [_parse_one(part) for part in text.split(",")]
    if len(days) > MAX_DAYS_PER_RUN:
        raise PartitionRuleError("run-size", f"{len(days)} days")
    return days


def format_days(days: Sequence[date]) -> str:
    """Days as a run names them: a range when they are consecutive, else a list."""
    if not days:
        return ""
    consecutive = all((b - a).days == 1 for a, b in pairwise(days))
    if consecutive and len(days) > 1:
        return f"{days[0]}..{days[-1]}"
    return ",".join(d.isoformat() for d in days)


@dataclass(frozen=True)
class AppendPlan:
    """The checked days of a run: which are new, which replace a partition already there."""

    days: tuple[date, ...]
    reruns: tuple[date, ...]

    @property
    def first(self) -> date:
        """The run's first day."""
        return self.days[0]

    @property
    def last(self) -> date:
        """The run's last day."""
        return self.days[-1]


def plan_append(days: Sequence[date], present: Iterable[date]) -> AppendPlan:
    """Check a run's days against the rules and the days already in the store."""
    if not days:
        raise PartitionRuleError("run-size", "no day given")
    seen: set[date] = set()
    for day in days:
        if day in seen:
            raise PartitionRuleError("no-duplicate-day", f"{day} is given twice")
        seen.add(day)
    for a, b in pairwise(days):
        if b < a:
            raise PartitionRuleError("days-in-order", f"{b} comes after {a}")
    stored = set(present)
    last = max(stored) if stored else None
    reruns = tuple(d for d in days if d in stored)
    for day in days:
        if day in stored:
            continue
        if last is not None and day < last:
            raise PartitionRuleError(
                "not-before-last", f"{day} is before the last appended day {last} and not in the store"
            )
        if last is not None and day != last + timedelta(days=1):
            raise PartitionRuleError("no-gap", f"{day} would leave {last + timedelta(days=1)} missing")
        last = day
    return AppendPlan(tuple(days), reruns)


def window_partitions(start: date, end: date) -> list[date]:
    """The partitions a training window of departure days ``start..end`` reads: ``start - 1 .. end``."""
    first = start - timedelta(days=1)
    return [first + timedelta(days=i) for i in range((end - first).days + 1)]


def missing(needed: Iterable[date], present: Iterable[date]) -> list[date]:
    """The needed days that are not in the store, in order."""
    stored = set(present)
    return sorted(d for d in needed if d not in stored)


def lineage_sha256(hashes: Mapping[date, str], static_sha256: str) -> str:
    """One hash over the partitions read (day and content hash, in day order) and the static tables."""
    digest = hashlib.sha256()
    for day in sorted(hashes):
        digest.update(f"{day.isoformat()}:{hashes[day]}\n".encode())
    digest.update(f"static:{static_sha256}\n".encode())
    return digest.hexdigest()
