"""Each feature's normal drift, recorded at training from the fit split alone, and drift judged above it."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ctloop.config import MonitorSettings, TrainParams
from ctloop.contract import buckets
from ctloop.core import drift_normal
from ctloop.core import train as core
from ctloop.core.monitor import psi
from tests.conftest import END, EVAL_DAYS
from tests.drift_scenarios import reference_of

WEEK_S = 7 * 86400.0


def synthetic(days: int = 42, per_day: int = 200) -> pd.DataFrame:
    """A stable feature and one that climbs every week (as temperature does in spring)."""
    rng = np.random.default_rng(7)
    day = np.repeat(np.arange(days), per_day)
    when = [f"{(date(2013, 3, 1) + timedelta(days=int(d))).isoformat()}T12:00:00" for d in day]
    return pd.DataFrame(
        {
            "sched_dep_local": pd.array(when, dtype="string"),
            "stable": rng.normal(0, 1, len(day)),
            "climbing": rng.normal(0, 1, len(day)) + day / 7.0,
            "delayed": (rng.random(len(day)) < 0.2).astype("int8"),
        }
    )


def test_whole_windows_only_and_the_trailing_part_is_reference_only():
    """Forty days hold five whole weeks; the last five days belong to no window."""
    frame = synthetic(days=40)
    index, whole = drift_normal.window_index(frame["sched_dep_local"], WEEK_S)
    assert whole == 5
    day = np.repeat(np.arange(40), 200)
    np.testing.assert_array_equal(index, np.where(day < 35, day // 7, -1))


def test_leave_one_out_psi_is_the_monitors_psi_of_a_window_against_the_rest():
    """Each window's PSI equals ``ctloop.core.monitor.psi`` of its counts against the shares of every other row."""
    frame = synthetic()
    cuts = core.reference_quantiles(frame, ["climbing"])["climbing"]
    index, whole = drift_normal.window_index(frame["sched_dep_local"], WEEK_S)
    values = frame["climbing"].to_numpy()
    values[::50] = np.nan  # the missing bucket takes part
    got = drift_normal.leave_one_out_psi(index, drift_normal.bucket_index(cuts, values), whole, len(cuts) + 2)
    for w in range(whole):
        inside, rest = values[index == w], values[index != w]
        counts = {k: v * len(inside) for k, v in core.bucket_fractions(cuts, inside).items()}
        assert got[w] == pytest.approx(psi(counts, core.bucket_fractions(cuts, rest)), rel=1e-9)


def test_a_feature_that_moves_every_week_has_a_high_normal_and_a_stable_one_a_low_one():
    """Synthetic: the climbing feature's normal is large, the stable one's near zero."""
    frame = synthetic()
    names = ["stable", "climbing"]
    cuts = core.reference_quantiles(frame, names)
    normal = drift_normal.normal_psi(frame, names, cuts, np.full(len(frame), 0.2), WEEK_S)
    assert normal["windows"] == 6 and normal["quantile"] == drift_normal.NORMAL_QUANTILE
    assert normal["features"]["stable"] < 0.02
    assert normal["features"]["climbing"] > 1.0
    assert normal["prediction"] == pytest.approx(0.0, abs=1e-9)


def test_too_few_windows_record_no_normal():
    """Under three whole windows the normal would be noise: none is recorded (raw PSI is judged)."""
    frame = synthetic(days=20)
    cuts = core.reference_quantiles(frame, ["stable"])
    normal = drift_normal.normal_psi(frame, ["stable"], cuts, np.full(len(frame), 0.2), WEEK_S)
    assert normal["features"] == {} and "prediction" not in normal


def test_real_flights_weather_rates_and_month_move_weekly_the_traffic_mix_does_not(training_set):
    """Real February flights: weather and trailing rates have large normals; distance, hour and planes small ones."""
    reference = reference_of(training_set, END, EVAL_DAYS)
    normal = reference.profile[buckets.NORMAL]["features"]
    assert set(normal) == set(training_set.feature_names)
    for moving in ("temp", "dewp", "pressure", "carrier_flights_7d", "carrier_delay_rate_28d"):
        assert normal[moving] > 0.5, (moving, normal[moving])
    for stable in ("distance_mi", "sched_hour", "plane_seats", "plane_year"):
        assert normal[stable] < 0.05, (stable, normal[stable])


def test_the_normal_is_stored_with_the_model_and_uses_only_the_fit_days(training_set):
    """``train`` records the normal in ``reference_fractions``; rewriting the evaluation days changes nothing in it."""
    params = TrainParams(seed=5, eval_days=EVAL_DAYS, max_iter=20)
    end = date.fromisoformat(END)
    bundle, _ = core.train(training_set, end, params)
    normal = bundle.metadata["reference_fractions"][buckets.NORMAL]
    assert normal["window_s"] == MonitorSettings().window_s and normal["windows"] == 4
    assert normal["features"]["temp"] > 0.5 and normal["prediction"] >= 0
    frame = training_set.frame.copy()
    later = frame["sched_dep_local"].str.slice(0, 10) >= core.eval_start(end, EVAL_DAYS).isoformat()
    frame.loc[later, "temp"] = frame.loc[later, "temp"] + 40  # the future, made very different
    changed, _ = core.train(core.TrainingSet(frame, training_set.feature_names), end, params)
    assert changed.metadata["reference_fractions"][buckets.NORMAL] == normal


def test_the_normal_follows_the_monitors_window(training_set):
    """A three-day monitoring window gets a normal over three-day windows (nine whole ones in the 29 fit days)."""
    params = TrainParams(eval_days=EVAL_DAYS, max_iter=5)
    bundle, _ = core.train(training_set, date.fromisoformat(END), params, 3 * 86400.0)
    normal = bundle.metadata["reference_fractions"][buckets.NORMAL]
    assert normal["window_s"] == 3 * 86400.0 and normal["windows"] == 9
