"""The feature pipeline's steps (``flight-features``) as plain functions over paths and settings.

ingest → validate → compute → append to the offline store → materialize to the online store
(with the definitions registered).
Each KFP component in ``src/ctloop/components/`` adapts its artifacts to one function here. The
days a run names are checked against the offline store's rules (``ctloop.core.partitions``) at
ingest, so that a refused run stops before any work, and again at append, where they decide.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ctloop.config import Settings

log = logging.getLogger(__name__)

TABLES_FILE = "tables.json"


class DayDataError(ValueError):
    """A day has nothing to append (no weather, no delay rate): the source does not cover it."""


def offline(settings: Settings) -> Any:
    """The offline store of these settings (:class:`ctloop.adapters.offline_store.OfflineStore`)."""
    from ctloop.adapters.offline_store import OfflineStore

    return OfflineStore.of(settings)


def check_days(settings: Settings, days_text: str) -> Any:
    """The run's days, checked against the rules and the store (a :class:`ctloop.core.partitions.AppendPlan`)."""
    from ctloop.core import partitions

    return partitions.plan_append(partitions.parse_days(days_text), offline(settings).days())


def resolve_days(days_text: str, scheduled_at: str) -> str:
    """The days a run names, or else the New York day before its schedule time (ISO instant, UTC)."""
    if days_text.strip():
        return days_text
    import pandas as pd

    from ctloop.core.clock import LOCAL_TZ
    from ctloop.core.partitions import PartitionRuleError

    try:
        at = pd.Timestamp(scheduled_at)
    except ValueError:
        at = None
    if at is None or pd.isna(at):
        raise PartitionRuleError(
            "day-format", f"no days given and no schedule time to take them from ({scheduled_at!r})"
        )
    local = (at.tz_localize("UTC") if at.tzinfo is None else at).tz_convert(LOCAL_TZ)
    return (local.date() - timedelta(days=1)).isoformat()


@dataclass(frozen=True)
class Ingested:
    """What the ingest step wrote: the day snapshot's hash and counts, and the checked days."""

    sha256: str
    counts: dict[str, int]
    days: str
    reruns: str


def ingest(settings: Settings, days_text: str, out_dir: Path) -> Ingested:
    """Check the days, then write the day snapshot that covers them."""
    from ctloop.core import daily, partitions

    plan = check_days(settings, days_text)
    source = Path(settings.source_path) if settings.source_path else None
    result = daily.ingest_days(plan.first, plan.last, out_dir, source, settings.parse_cache)
    counts = {
        "days": len(plan.days),
        "reruns": len(plan.reruns),
        "landed": result.landed,
        "weather": result.weather,
        "scheduled": result.scheduled,
        "cancelled": result.cancelled,
        "diverted": result.diverted,
    }
    return Ingested(result.sha256, counts, partitions.format_days(plan.days), partitions.format_days(plan.reruns))


def validate(snapshot: Path, expected_sha256: str) -> dict[str, int]:
    """Check the day snapshot's integrity and schema; return row counts."""
    from ctloop.app.pipeline_steps import SnapshotIntegrityError
    from ctloop.core import daily, schema

    actual = daily.day_snapshot_sha256(snapshot)
    if actual != expected_sha256:
        raise SnapshotIntegrityError(
            f"day snapshot {snapshot} changed since ingest: sha256 {actual} != {expected_sha256}"
        )
    return schema.validate_day_snapshot(*daily.read_day_snapshot(snapshot))


def compute(snapshot: Path, days_text: str, out_dir: Path) -> dict[str, int]:
    """Each day's partition and the static tables, as parquet under ``out_dir``; rows per table."""
    from ctloop.core import daily, partitions

    days = partitions.parse_days(days_text)
    per_day, planes = daily.day_tables(snapshot, days[0], days[-1])
    counts = dict.fromkeys((*daily.PARTITIONED_TABLES, *daily.STATIC_TABLES), 0)
    rows: dict[str, dict[str, int]] = {}
    for day in days:
        tables = per_day[day]
        if all(frame.empty for frame in tables.values()):
            raise DayDataError(f"day {day} has no weather and no delay rate to append: the source does not cover it")
        folder = out_dir / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        rows[day.isoformat()] = {}
        for name, frame in tables.items():
            frame.to_parquet(folder / f"{name}.parquet", index=False)
            counts[name] += len(frame)
            rows[day.isoformat()][name] = len(frame)
    planes.to_parquet(out_dir / "plane.parquet", index=False)
    counts["plane"] = len(planes)
    (out_dir / TABLES_FILE).write_text(json.dumps({"days": [d.isoformat() for d in days], "rows": rows}))
    return counts


def append(settings: Settings, tables_dir: Path, days_text: str, run: str) -> dict[str, Any]:
    """Append the computed partitions to the offline store (a rerun's day replaced); their hash."""
    from ctloop.core import partitions

    days = partitions.parse_days(days_text)
    computed = json.loads((tables_dir / TABLES_FILE).read_text())
    if [date.fromisoformat(d) for d in computed["days"]] != days:
        raise DayDataError(f"the computed tables are for {computed['days']}, not {days_text}")
    files = {day: {t: tables_dir / f"{day}/{t}.parquet" for t in partitions.PARTITIONED_TABLES} for day in days}
    rows = {day: computed["rows"][day.isoformat()] for day in days}
    static = {t: tables_dir / f"{t}.parquet" for t in partitions.STATIC_TABLES}
    store = offline(settings)
    plan = store.append(days, files, static, rows, run)
    log.info(
        "appended %s (reruns: %s)", partitions.format_days(plan.days), partitions.format_days(plan.reruns) or "none"
    )
    return {
        "days": partitions.format_days(plan.days),
        "reruns": partitions.format_days(plan.reruns),
        "partitions_sha256": partitions.lineage_sha256(store.hashes(list(plan.days)), store.static_sha256()),
    }


def materialize(settings: Settings, days_text: str) -> tuple[str, str]:
    """Register the definitions, load the appended days' rows into the online store (incremental); the span.

    Returns the span of event times loaded (ISO, UTC).
    """
    from ctloop.adapters import featurestore as fs
    from ctloop.core import partitions

    days = partitions.parse_days(days_text)
    store = fs.open_store(settings)
    fs.apply(store, fs.definitions(settings))  # the training pipeline reads the registry these sources are in
    start, end = fs.materialize_days(store, days[0], days[-1])
    return start.isoformat(), end.isoformat()


PARTITION_POLL_S = 0.05
"""The first pause between two looks at the offline store's manifest while partitions are awaited."""
PARTITION_POLL_MAX_S = 0.4
"""The longest pause (each pause doubles up to it): a few reads a second of an object store's manifest."""


def read_lineage(settings: Settings, start: str, end: str) -> dict[str, str]:
    """The feature data that departures of days ``start..end`` read: partitions and hash; refused if one is missing.

    ``start``, ``end``: the first and last departure day of the training rows (a window that
    begins before the data reads no partition before its first flight). A missing partition is
    awaited for up to ``[pipeline] partition_wait_s`` first.
    """
    from ctloop.core import partitions

    window_start, window_end = date.fromisoformat(start), date.fromisoformat(end)
    needed = partitions.window_partitions(window_start, window_end)
    store = offline(settings)
    deadline = time.monotonic() + settings.pipeline.partition_wait_s
    pause = PARTITION_POLL_S
    while absent := partitions.missing(needed, store.days()):  # a run's days appear when its manifest is written
        if time.monotonic() >= deadline:
            raise MissingPartitionsError(absent)
        time.sleep(pause)
        pause = min(2 * pause, PARTITION_POLL_MAX_S)
    return {
        "feature_partitions": partitions.format_days(needed),
        "feature_partitions_count": str(len(needed)),
        "feature_data_sha256": partitions.lineage_sha256(store.hashes(needed), store.static_sha256()),
    }


class MissingPartitionsError(ValueError):
    """A training window needs day partitions the offline store lacks."""

    def __init__(self, absent: list[date]) -> None:
        """Name the missing days and the run that appends them."""
        from ctloop.core import partitions

        self.absent = absent
        days = partitions.format_days(absent) if len(absent) < 10 else f"{absent[0]}..{absent[-1]} ({len(absent)} days)"
        super().__init__(
            f"the offline store lacks the day partitions {days}: run the feature pipeline for them first "
            "(ctloop features run --days FIRST..LAST)"
        )


def run_in_process(
    settings: Settings, days_text: str, work_dir: Path, *, online: bool = True, run: str = "in-process"
) -> dict[str, Any]:
    """The feature pipeline's steps called in this process, in order (tests, the benchmark's baseline).

    ``online``: materialize the appended days too (needs the online store); else only register
    the definitions, as the last step does first.
    """
    from ctloop.adapters import featurestore as fs

    ingested = ingest(settings, days_text, work_dir / "snapshot")
    validate(work_dir / "snapshot", ingested.sha256)
    compute(work_dir / "snapshot", ingested.days, work_dir / "tables")
    done = append(settings, work_dir / "tables", ingested.days, run)
    if online:
        materialize(settings, ingested.days)
    else:
        fs.apply(fs.open_store(settings), fs.definitions(settings))
    return done


def window_days(start: str, end: str) -> str:
    """The days a training window of departures ``start..end`` reads, as a run names them."""
    from ctloop.core import partitions

    return partitions.format_days(partitions.window_partitions(date.fromisoformat(start), date.fromisoformat(end)))


def days_to_append(settings: Settings, start: str, end: str) -> str:
    """The days to append before training on ``start..end``, as a run names them ('' when none).

    The days after the last appended one up to the window's end, or the window's whole span
    (``start - 1 .. end``) in an empty store. A day before the store's first is never appended
    here: the training set step refuses the window if its flights need one.
    """
    from ctloop.core import partitions

    needed = partitions.window_partitions(date.fromisoformat(start), date.fromisoformat(end))
    present = offline(settings).days()
    if not present:
        return partitions.format_days(needed)
    last = max(present)
    return partitions.format_days([d for d in needed if d > last])


def days_through(settings: Settings, last_day: date) -> str:
    """The days after the store's last appended one up to ``last_day``, as a run names them ('' when none)."""
    from ctloop.core import partitions

    present = offline(settings).days()
    if not present:
        raise MissingPartitionsError([last_day])
    first = max(present) + timedelta(days=1)
    return partitions.format_days([first + timedelta(days=i) for i in range((last_day - first).days + 1)])
