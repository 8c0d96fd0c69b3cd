"""The replay report's tables: weeks by local date, quarters, drift per week for the version that served it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctloop.app.report import quarter_table, weekly_drift, weekly_metrics
from ctloop.core.monitor import Counts


def results(rows: list[tuple[str, int, float, float, int]]) -> pd.DataFrame:
    """(local departure, delayed, served p, static p, version) rows as the replay writes them."""
    local = pd.to_datetime([r[0] for r in rows]).tz_localize("America/New_York")
    return pd.DataFrame(
        {
            "sched_dep_utc": local.tz_convert("UTC"),
            "delayed": [r[1] for r in rows],
            "probability": [r[2] for r in rows],
            "static_probability": [r[3] for r in rows],
            "version": [r[4] for r in rows],
        }
    )


def test_weeks_follow_the_local_calendar_and_name_the_version_that_served_most():
    """A flight at 23:30 on the 7th day (04:30 UTC on the 8th) is still week 0; week 1 starts on day 8."""
    frame = results(
        [
            ("2013-04-01 08:00", 1, 0.9, 0.6, 1),
            ("2013-04-01 09:00", 0, 0.1, 0.4, 1),
            ("2013-04-07 23:30", 1, 0.8, 0.3, 2),
            ("2013-04-08 06:00", 0, 0.2, 0.7, 2),
            ("2013-04-08 07:00", 1, 0.7, 0.2, 2),
        ]
    )
    weeks = weekly_metrics(frame)
    assert weeks["flights"].tolist() == [3, 2]
    assert weeks["version"].tolist() == [1, 2]
    assert weeks["ct_auc"].tolist() == [1.0, 1.0] and weeks["static_auc"].tolist() == [0.5, 0.0]
    assert np.isclose(weeks["ct_brier"].iat[0], (0.01 + 0.01 + 0.04) / 3)


def test_quarters_compare_the_loop_with_the_static_champion():
    """Per calendar quarter: AUC and Brier of both models on the same flights."""
    frame = results(
        [
            ("2013-06-30 12:00", 1, 0.9, 0.5, 1),
            ("2013-06-30 13:00", 0, 0.2, 0.5, 1),
            ("2013-07-01 12:00", 1, 0.4, 0.9, 2),
            ("2013-07-01 13:00", 0, 0.6, 0.1, 2),
        ]
    )
    q2, q3 = quarter_table(frame)
    assert (q2["quarter"], q2["ct_auc"], q2["static_auc"], q2["static_brier"]) == ("Q2", 1.0, 0.5, 0.25)
    assert (q3["quarter"], q3["ct_auc"], q3["static_auc"]) == ("Q3", 0.0, 1.0)


def test_weekly_drift_is_the_window_between_readings_against_the_serving_versions_reference():
    """Each week: counters' growth since the previous reading, for the version that scored most, vs its reference."""
    reference = {"features": {"distance_mi": {"0": 0.5, "1": 0.5}}, "prediction": {"fractions": {"0": 0.5, "1": 0.5}}}

    def reading(version: str, d0: float, d1: float) -> Counts:
        counts = Counts(version)
        counts.features["distance_mi"] = {"0": d0, "1": d1}
        counts.predictions = {"0": d0, "1": d1}
        return counts

    weekly = [
        {"at": "2013-04-01T04:00:00+00:00", "counts": {"1": reading("1", 0, 0)}},
        {"at": "2013-04-08T04:00:00+00:00", "counts": {"1": reading("1", 500, 500)}},
        {"at": "2013-04-15T04:00:00+00:00", "counts": {"1": reading("1", 510, 500), "2": reading("2", 900, 10)}},
    ]
    drifts = weekly_drift(weekly, {"1": reference, "2": reference})
    assert drifts["version"].tolist() == ["1", "2"]
    assert drifts["distance_mi"].iat[0] == 0.0  # the same shares as the reference
    assert drifts["distance_mi"].iat[1] > 1.0  # v2's window is almost all in one bucket
