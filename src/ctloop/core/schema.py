"""Declared schemas for a snapshot, checked with pandera.

pandera over great_expectations: the schema is plain, typed Python next to the code that uses
it; ``lazy=True`` collects every failure with its column and check in one DataFrame, which is
exactly the message a failed pipeline step must give; and it adds a few small dependencies
instead of GE's project context, stores and 100+ MB of dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from ctloop.contract.flight_request import CARRIERS, ORIGINS
from ctloop.core.clock import departs_within
from ctloop.core.data import MAX_FLIGHT_SPAN_D, Window

MAX_SAMPLES = 5


class DataValidationError(ValueError):
    """A snapshot broke its schema; ``failures`` names each column and rule."""

    def __init__(self, table: str, failures: list[Failure]) -> None:
        """Build the message: one line per failed rule."""
        self.table = table
        self.failures = failures
        lines = [f"{table}: {len(failures)} rule(s) failed"]
        lines += [f"  - {f.describe()}" for f in failures]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Failure:
    """One broken rule: the column (or ``<table>``), the check, how many rows, some samples."""

    column: str
    rule: str
    rows: int
    samples: tuple[str, ...]

    def describe(self) -> str:
        """One line a user can act on."""
        return f"column {self.column!r} failed {self.rule} on {self.rows} row(s), e.g. {list(self.samples)}"


def str_matches(pattern: str) -> pa.Check:
    """The check ``str_matches`` of pandera, with the pattern tried once per distinct value.

    A snapshot's string columns repeat a few thousand values over hundreds of thousands of rows:
    matching each row costs most of the validation. Failures read as pandera's own check's.
    """
    compiled = re.compile(pattern)

    def check(values: pd.Series) -> pd.Series:
        matched = [value for value in values.unique() if compiled.match(value)]
        return values.isin(matched)

    return pa.Check(check, name="str_matches", error=f"str_matches('{pattern}')")


def _non_empty(df: pd.DataFrame) -> bool:
    return len(df) > 0


def _lands_after_departure(df: pd.DataFrame) -> pd.Series:
    span = df["outcome_known_at"] - df["sched_dep_utc"]
    return (span > pd.Timedelta(0)) & (span < pd.Timedelta(days=MAX_FLIGHT_SPAN_D))


FLIGHTS = pa.DataFrameSchema(
    {
        "flight_id": pa.Column("string", nullable=False, unique=True),
        "sched_dep_utc": pa.Column(
            "datetime64[us, UTC]",
            pa.Check.in_range(pd.Timestamp("2012-12-01", tz="UTC"), pd.Timestamp("2014-01-02", tz="UTC")),
        ),
        "sched_dep_local": pa.Column("string", str_matches(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")),
        "carrier": pa.Column("string", pa.Check.isin(CARRIERS)),
        "flight": pa.Column("int64", pa.Check.in_range(1, 9999)),
        "tailnum": pa.Column("string", str_matches(r"^[0-9A-Z]{2,7}$"), nullable=True),
        "origin": pa.Column("string", pa.Check.isin(ORIGINS)),
        "dest": pa.Column("string", str_matches(r"^[A-Z]{3}$")),
        "route": pa.Column("string", str_matches(r"^[A-Z]{3}-[A-Z]{3}$")),
        "distance": pa.Column("float64", pa.Check.in_range(10, 6000)),
        "dep_delay": pa.Column("float64", pa.Check.in_range(-120, 2000)),
        "arr_delay": pa.Column("float64", pa.Check.in_range(-180, 2000)),
        "air_time": pa.Column("float64", pa.Check.in_range(5, 900)),
        "outcome_known_at": pa.Column("datetime64[us, UTC]"),
        "delayed": pa.Column("int8", pa.Check.isin([0, 1])),
    },
    checks=[
        pa.Check(_non_empty, name="non_empty", error="the window holds no flights"),
        pa.Check(
            _lands_after_departure,
            name="lands_after_departure",
            error=f"outcome_known_at (the landing) must come after sched_dep_utc, within {MAX_FLIGHT_SPAN_D} days",
        ),
    ],
    strict=True,
    ordered=False,
    name="flights",
)

WEATHER = pa.DataFrameSchema(
    {
        "origin": pa.Column("string", pa.Check.isin(ORIGINS)),
        "temp": pa.Column("float64", pa.Check.in_range(-40, 130), nullable=True),
        "dewp": pa.Column("float64", pa.Check.in_range(-60, 100), nullable=True),
        "humid": pa.Column("float64", pa.Check.in_range(0, 100), nullable=True),
        "wind_dir": pa.Column("float64", pa.Check.in_range(0, 360), nullable=True),
        "wind_speed": pa.Column("float64", pa.Check.in_range(0, 200), nullable=True),
        "wind_gust": pa.Column("float64", pa.Check.in_range(0, 250), nullable=True),
        "precip": pa.Column("float64", pa.Check.in_range(0, 10), nullable=True),
        "pressure": pa.Column("float64", pa.Check.in_range(900, 1100), nullable=True),
        "visib": pa.Column("float64", pa.Check.in_range(0, 20), nullable=True),
        "event_timestamp": pa.Column("datetime64[us, UTC]"),
    },
    checks=[pa.Check(_non_empty, name="non_empty", error="no weather rows in the window")],
    unique=["origin", "event_timestamp"],
    strict=True,
    name="weather",
)

PLANES = pa.DataFrameSchema(
    {
        "tailnum": pa.Column("string", unique=True),
        "plane_year": pa.Column("float64", pa.Check.in_range(1940, 2014), nullable=True),
        "plane_seats": pa.Column("float64", pa.Check.in_range(1, 1000), nullable=True),
        "plane_engines": pa.Column("float64", pa.Check.in_range(0, 8), nullable=True),
    },
    strict=True,
    name="planes",
)


def validate_table(schema: pa.DataFrameSchema, df: pd.DataFrame) -> None:
    """Raise :class:`DataValidationError` naming every column and rule that failed."""
    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        raise DataValidationError(str(schema.name), _failures(exc.failure_cases, str(schema.name))) from None
    except SchemaError as exc:  # raised for non-lazy errors such as a wrong index
        raise DataValidationError(str(schema.name), [Failure("<table>", str(exc), len(df), ())]) from None


def validate_snapshot(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, window: Window | None = None
) -> dict[str, int]:
    """Validate the three tables of a snapshot (and that ``window`` has flights); return row counts.

    With a ``window``, ``window_rows`` counts its departures (the training rows, before any
    ``known_by`` cut: :func:`ctloop.core.data.training_rows`).
    """
    validate_table(FLIGHTS, flights)
    counts = {"flights": len(flights), "weather": len(weather), "planes": len(planes)}
    if window is not None:
        counts["window_rows"] = int(departs_within(flights["sched_dep_local"], window.start, window.end).sum())
        if not counts["window_rows"]:
            rule = f"rows in window {window.start}..{window.end}"
            raise DataValidationError("flights", [Failure("sched_dep_local", rule, 0, ())])
    validate_table(WEATHER, weather)
    validate_table(PLANES, planes)
    return counts


def _failures(cases: pd.DataFrame, table: str) -> list[Failure]:
    out: list[Failure] = []
    column = cases["column"].fillna(table).astype(str)
    # table-level column checks name the column in failure_case: report it as the column
    rename = {"column_in_dataframe": "required column present", "column_in_schema": "column_in_schema (unexpected)"}
    about_column = cases["check"].astype(str).isin(list(rename))
    column = column.where(~about_column, cases["failure_case"].astype(str))
    column = column.where(column != table, "<table>")
    check = cases["check"].astype(str).replace(rename)
    cases = cases.assign(column=column, check=check)
    for (name, rule), group in cases.groupby(["column", "check"], sort=True, dropna=False):
        samples = tuple(str(v) for v in group["failure_case"].head(MAX_SAMPLES))
        out.append(Failure(str(name), str(rule), len(group), samples))
    return out


SCHEDULE = pa.DataFrameSchema(
    {
        "day": pa.Column("string", str_matches(r"^\d{4}-\d\d-\d\d$")),
        "carrier": pa.Column("string", pa.Check.isin(CARRIERS)),
        "route": pa.Column("string", str_matches(r"^[A-Z]{3}-[A-Z]{3}$")),
    },
    strict=True,
    name="schedule",
)


def validate_day_snapshot(
    landed: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, schedule: pd.DataFrame
) -> dict[str, int]:
    """Validate a day snapshot's tables (``ctloop.core.daily``); return row counts.

    The same column rules as a training snapshot; a table may be empty here (a day before the
    data begins has no landing yet), and a day with nothing at all is refused when its partition
    is computed.
    """
    for table_schema, frame in ((FLIGHTS, landed), (WEATHER, weather)):
        if len(frame):
            validate_table(table_schema, frame)
    validate_table(PLANES, planes)
    validate_table(SCHEDULE, schedule)
    return {"landed": len(landed), "weather": len(weather), "planes": len(planes), "scheduled": len(schedule)}
