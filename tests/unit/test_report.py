"""The replay report's tables: weeks by local date, quarters, drift per week for the version that served it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.app.report import (
    _table,
    _week_label,
    drift_row_labels,
    fired_cells,
    offline_vs_online,
    plot_drift,
    quarter_table,
    reference_loop,
    staleness,
    three_loops,
    weekly_drift,
    weekly_metrics,
    with_reference,
)
from ctloop.config import MonitorSettings
from ctloop.contract import buckets
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


def test_weekly_drift_is_judged_above_each_features_normal():
    """With a normal in the reference, each week's value is PSI minus the normal; the raw PSI on request."""
    normal = {"window_s": 604800.0, "features": {"temp": 1.5}, "prediction": 0.1}
    reference = {
        "features": {"temp": {"0": 0.5, "1": 0.5}},
        "prediction": {"fractions": {"0": 0.5, "1": 0.5}},
        buckets.NORMAL: normal,
    }

    def reading(d0: float, d1: float) -> Counts:
        counts = Counts("1")
        counts.features["temp"] = {"0": d0, "1": d1}
        counts.predictions = {"0": d0, "1": d1}
        return counts

    weekly = [
        {"at": "2013-04-01T04:00:00+00:00", "counts": {"1": reading(0, 0)}},
        {"at": "2013-04-08T04:00:00+00:00", "counts": {"1": reading(900, 100)}},
    ]
    raw = weekly_drift(weekly, {"1": reference}, above_normal=False)
    above = weekly_drift(weekly, {"1": reference})
    assert raw["temp"].iat[0] > 0.5
    assert above["temp"].iat[0] == pytest.approx(raw["temp"].iat[0] - 1.5)
    assert above["prediction"].iat[0] == pytest.approx(raw["prediction"].iat[0] - 0.1)


def test_the_heat_map_marks_what_the_policy_acts_on_and_each_cell_that_fired(tmp_path):
    """``●`` on watched rows, none on ignored ones; a cell fires above its own threshold (the prediction its own)."""
    policy = MonitorSettings(drift_ignore=("sched_month",))
    rows = ["temp", "sched_month", "prediction"]
    assert drift_row_labels(rows, policy) == ["temp ●", "sched_month", "prediction ●"]
    matrix = np.array([[0.1, 0.3], [5.0, 5.0], [0.22, 0.18]])
    assert fired_cells(matrix, rows, policy) == [(0, 1), (2, 0)]
    drifts = pd.DataFrame(
        {"week_start": ["2013-04-01", "2013-04-08"], "version": ["1", "2"], **dict(zip(rows, matrix, strict=True))}
    )
    plot_drift(tmp_path / "drift.png", drifts, policy)
    assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_and_week_labels_read_as_people_write_them():
    """No ``69.8000``: seconds with one decimal, counts with separators, dates as month and day."""
    page = _table([{"wall_s": 69.8, "flights": 249435, "auc": 0.68451, "sample": 0.2, "missing": None}])
    assert "<td>69.8</td>" in page and "<td>249,435</td>" in page and "<td>0.6845</td>" in page
    assert "<td>0.2</td>" in page and "<td>—</td>" in page and "0000" not in page
    assert _week_label("2013-04-07", "3") == "Apr 7\nv3"


NAIVE = {
    "period": "2013-04-01..2013-12-31",
    "retrains": 40,
    "quarters": [{"quarter": "Q2", "naive_auc": 0.7, "naive_brier": 0.17}],
    "weeks": [{"start": "2013-04-01", "naive_auc": 0.71, "naive_brier": 0.16}],
}


def test_the_naive_weekly_loop_is_read_for_its_own_period_only(tmp_path):
    """The reference loop comes from bench/results/model.json when its period is the replay's; else none."""
    import json

    assert reference_loop(tmp_path, NAIVE["period"]) is None  # no benchmark in this checkout
    path = tmp_path / "bench" / "results" / "model.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"naive_weekly": NAIVE}))
    assert reference_loop(tmp_path, NAIVE["period"]) == NAIVE
    assert reference_loop(tmp_path, "2013-04-01..2013-04-28") is None  # a quick replay: another period


def test_the_three_loops_stand_side_by_side_per_week_and_quarter():
    """Weeks gain the naive loop's AUC and Brier by start day; quarters show CT, static and naive together."""
    frame = results([("2013-04-01 08:00", 1, 0.9, 0.6, 1), ("2013-04-08 09:00", 0, 0.1, 0.4, 1)])
    weeks = with_reference(weekly_metrics(frame), NAIVE)
    assert weeks["naive_auc"].iat[0] == 0.71 and np.isnan(weeks["naive_auc"].iat[1])
    quarters = [
        {"quarter": "Q2", "flights": 9, "ct_auc": 0.72, "static_auc": 0.66, "ct_brier": 0.16, "static_brier": 0.18}
    ]
    (row,) = three_loops(quarters, NAIVE)
    assert (row["CT AUC"], row["static AUC"], row["naive weekly AUC"]) == (0.72, 0.66, 0.7)
    assert (row["CT Brier"], row["static Brier"], row["naive weekly Brier"]) == (0.16, 0.18, 0.17)
    assert three_loops(quarters, None)[0]["naive weekly AUC"] is None


def test_offline_and_served_auc_per_version_and_their_correlation():
    """Each version's served AUC is computed from the flights it answered; Pearson's r over the versions."""
    rows = []
    for version, served_right in ((1, 1), (2, 0), (3, 1)):
        for i in range(4):
            delayed = i % 2
            p = (0.8 if delayed else 0.2) if served_right else (0.2 if delayed else 0.8)
            rows.append((f"2013-04-0{version} 0{i}:00", delayed, p, 0.5, version))
    frame = results(rows)
    versions = {"1": {"offline_auc": 0.70}, "2": {"offline_auc": 0.60}, "3": {"offline_auc": 0.72}}
    got = offline_vs_online(frame, versions)
    assert [(r["version"], r["flights"], r["served_auc"]) for r in got["versions"]] == [
        (1, 4, 1.0),
        (2, 4, 0.0),
        (3, 4, 1.0),
    ]
    expected = np.corrcoef([0.70, 0.60, 0.72], [1.0, 0.0, 1.0])[0, 1]
    assert got["correlation"] == pytest.approx(expected, abs=1e-4) and got["correlation"] > 0.9
    two = offline_vs_online(frame, {k: versions[k] for k in ("1", "2")})
    assert np.isnan(two["correlation"])  # fewer than three versions: no correlation claimed


def test_staleness_ages_each_flight_by_the_model_that_scored_it():
    """Age = flight's local day - the model's last data day, in 28-day bins; the static champion ages all along."""
    frame = results(
        [
            ("2013-04-01 08:00", 1, 0.9, 0.6, 1),  # v1 data to 03-31: age 1; static: age 1
            ("2013-04-01 09:00", 0, 0.1, 0.4, 1),
            ("2013-05-10 08:00", 1, 0.8, 0.3, 2),  # v2 data to 05-01: age 9; static: age 40
            ("2013-05-10 09:00", 0, 0.3, 0.7, 2),
        ]
    )
    versions = {"1": {"data_end": "2013-03-31"}, "2": {"data_end": "2013-05-01"}}
    rows = staleness(frame, versions, "2013-03-31")
    ct = [r for r in rows if r["model"] == "continuous training"]
    static = [r for r in rows if r["model"] == "static champion"]
    assert [(r["age_days"], r["flights"], r["auc"]) for r in ct] == [("0-27", 4, 1.0)]
    assert [(r["age_days"], r["flights"], r["auc"]) for r in static] == [("0-27", 2, 1.0), ("28-55", 2, 0.0)]
