"""Monitoring from metrics: PSI, AUC/Brier/calibration from feedback histograms, the retraining policy."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ctloop.contract import buckets
from ctloop.core.monitor import Counts, Drift, Performance, Policy, Sample, State, decide, performance, psi, window_for
from tests.conftest import END, EVAL_DAYS
from tests.drift_scenarios import SCENARIOS, reference_of

NOW = datetime(2013, 7, 1)


def test_psi_is_zero_for_the_reference_and_large_for_a_shift():
    """Counts shaped like the reference give PSI ~0; moving most mass to one end gives PSI > 0.25."""
    reference = {"0": 0.25, "1": 0.25, "2": 0.25, "3": 0.25, buckets.MISSING: 0.0}
    assert psi({"0": 250, "1": 250, "2": 250, "3": 250}, reference) == pytest.approx(0.0, abs=1e-9)
    assert psi({"0": 40, "1": 60, "2": 150, "3": 750}, reference) > 0.25
    assert 0 < psi({"0": 230, "1": 260, "2": 250, "3": 260}, reference) < 0.01


def test_empty_buckets_do_not_make_psi_infinite():
    """A bucket empty on one side is floored, not log(0)."""
    assert np.isfinite(psi({"0": 100}, {"0": 0.5, "1": 0.5}))


def feedback_counts(p: np.ndarray, y: np.ndarray, version: str = "3") -> Counts:
    """Counters as serving's feedback histograms would hold them for these predictions and outcomes."""
    counts = Counts(version)
    edges = [*buckets.PREDICTION_CUTS, 1.0]
    for outcome, mask in (("delayed", y == 1), ("on_time", y == 0)):
        counts.feedback_le[outcome] = {float(le): float((p[mask] <= le).sum()) for le in edges}
        counts.feedback_sum[outcome] = float(p[mask].sum())
    counts.squared_error = float(((p - y) ** 2).sum())
    return counts


def test_auc_brier_and_calibration_from_histograms():
    """AUC equals scikit-learn's on the bucketed scores; Brier and calibration are exact."""
    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 4000)
    y = (rng.random(4000) < p).astype(int)
    got = performance(feedback_counts(p, y))
    assert got is not None and got.labelled == 4000 and got.delayed == int(y.sum())
    bucket_of = np.searchsorted(np.asarray(buckets.PREDICTION_CUTS), p, side="left")  # le-buckets
    assert got.auc == pytest.approx(roc_auc_score(y, bucket_of), abs=1e-12)
    assert got.brier == pytest.approx(float(((p - y) ** 2).mean()))
    assert got.calibration_gap == pytest.approx(float(p.mean() - y.mean()))


def test_no_performance_without_both_outcomes():
    """Only delayed flights (or none): no AUC to compute."""
    assert performance(feedback_counts(np.array([0.3, 0.6]), np.array([1, 1]))) is None


def test_counts_from_samples_and_windows_between_readings():
    """Samples of one version become counters; a window is the difference; a reset counts from zero."""
    first = [
        Sample("ctloop_feature_bucket_total", {"model_version": "3", "feature": "temp", "bucket": "0"}, 10),
        Sample("ctloop_prediction_bucket_total", {"model_version": "3", "bucket": "4"}, 10),
        Sample("ctloop_prediction_bucket_total", {"model_version": "2", "bucket": "4"}, 99),
    ]
    later = [
        Sample("ctloop_feature_bucket_total", {"model_version": "3", "feature": "temp", "bucket": "0"}, 25),
        Sample("ctloop_prediction_bucket_total", {"model_version": "3", "bucket": "4"}, 4),
    ]
    a, b = Counts.from_samples(first, "3"), Counts.from_samples(later, "3")
    window = b.minus(a)
    assert window.features["temp"]["0"] == 15  # grew by 15
    assert window.predictions["4"] == 4  # went down: the process restarted, counted from zero
    assert a.rows() == 10
    back = Counts.from_dict(json.loads(json.dumps(asdict(window))))
    assert asdict(back) == asdict(window)  # a reading survives the JSON file between passes


def test_drift_of_a_real_shift_fires_and_of_the_same_distribution_does_not(training_set):
    """Real flights: an unseen sample of the reference period does not drift; the same flights 15°F warmer do.

    (Later weeks drift for real — carrier rates and temperature move within weeks — so the
    unshifted window is a random half of the same period, not the next weeks.)
    """
    from ctloop.core import train as core
    from ctloop.core.monitor import drift

    frame = training_set.frame.sample(frac=1.0, random_state=3)
    fit, held = frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2 :]
    names = training_set.feature_names
    cuts = core.reference_quantiles(fit, names)
    reference = core.reference_profile(fit, names, cuts, np.full(len(fit), 0.2))

    def counts_of(frame) -> Counts:
        counts = Counts("1")
        for name in names:
            fractions = core.bucket_fractions(cuts[name], core.model_view(frame[name]).to_numpy())
            counts.features[name] = {k: v * len(frame) for k, v in fractions.items()}
        counts.predictions = {k: v * len(frame) for k, v in reference["prediction"]["fractions"].items()}
        return counts

    policy = Policy(min_rows=500, drift_ignore=())  # every feature judged: the weather is what shifts here
    same = decide(NOW, "1", None, drift(counts_of(held), reference), None, policy, State())
    warmer = held.assign(temp=held["temp"] + 15, dewp=held["dewp"] + 15)
    shifted = decide(NOW, "1", None, drift(counts_of(warmer), reference), None, policy, State())
    assert "drift" not in same.triggers and not same.retrain, same.reasons
    assert shifted.triggers == ["drift"] and shifted.retrain
    assert {"temp", "dewp"} <= set(shifted.numbers["worst_feature_psi"])


def quiet_drift(rows: int = 5000) -> Drift:
    return Drift(rows, {"distance_mi": 0.01, "sched_hour": 0.02}, 0.01)


def loud_drift(rows: int = 5000) -> Drift:
    return Drift(rows, {"distance_mi": 0.6, "sched_hour": 0.4, "plane_seats": 0.05}, 0.05)


@pytest.mark.parametrize(
    ("drift_", "perf", "data_end", "triggers"),
    [
        (quiet_drift(), Performance(800, 200, 0.70, 0.16, 0.0), NOW - timedelta(days=10), []),
        (loud_drift(), None, None, ["drift"]),
        (loud_drift(rows=100), None, None, []),
        (Drift(5000, {}, 0.5), None, None, ["prediction_drift"]),
        (None, Performance(800, 200, 0.55, 0.16, 0.0), None, ["performance"]),
        (None, Performance(100, 20, 0.40, 0.30, 0.0), None, []),
        (None, Performance(800, 200, 0.70, 0.30, 0.1), None, ["performance"]),
        (None, None, NOW - timedelta(days=40), ["schedule"]),
    ],
)
def test_thresholds(drift_, perf, data_end, triggers):
    """Each trigger fires above its threshold, and only with enough rows or outcomes."""
    got = decide(NOW, "3", data_end, drift_, perf, Policy(), State())
    assert got.triggers == triggers and got.retrain == bool(triggers), got.reasons


def test_drift_is_judged_above_each_features_normal():
    """Temperature 0.1 above its weekly normal fires nothing, 0.5 above fires; distance (normal 0) on raw PSI."""
    normal = {"temp": 2.0, "distance_mi": 0.0}
    usual = Drift(5000, {"temp": 2.1, "distance_mi": 0.01}, 0.05, normal)
    assert decide(NOW, "3", None, usual, None, Policy(), State()).triggers == []
    hot = decide(NOW, "3", None, Drift(5000, {"temp": 2.5, "distance_mi": 0.01}, 0.05, normal), None, Policy(), State())
    assert hot.triggers == ["drift"] and "temp (PSI 2.50, normal 2.00)" in hot.reasons[0]
    assert hot.numbers["worst_feature_psi"]["temp"] == 2.5 and hot.numbers["worst_feature_normal_psi"]["temp"] == 2.0
    far = decide(NOW, "3", None, Drift(5000, {"temp": 2.1, "distance_mi": 0.3}, 0.05, normal), None, Policy(), State())
    assert far.triggers == ["drift"] and "distance_mi" in far.reasons[0] and "temp" not in far.reasons[0]


def test_prediction_drift_is_judged_above_its_normal():
    """Prediction PSI 0.5 with a normal of 0.4 is usual; with no normal it fires."""
    assert decide(NOW, "3", None, Drift(5000, {}, 0.5, {}, 0.4), None, Policy(), State()).triggers == []
    assert decide(NOW, "3", None, Drift(5000, {}, 0.5), None, Policy(), State()).triggers == ["prediction_drift"]


def test_ignored_features_are_reported_but_fire_nothing():
    """A feature in ``drift_ignore`` keeps its numbers and fires no trigger."""
    weekly = Drift(5000, {"temp": 3.0, "distance_mi": 0.01}, 0.05)
    got = decide(NOW, "3", None, weekly, None, Policy(drift_ignore=("temp",)), State())
    assert got.triggers == [] and got.numbers["worst_feature_psi"]["temp"] == 3.0
    assert decide(NOW, "3", None, weekly, None, Policy(), State()).triggers == ["drift"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_replayed_week_fires_only_on_the_features_shifted(training_set, scenario):
    """Real flights: a week of the fit days unchanged fires nothing; each injected shift fires naming its features.

    Weather 25 °F warmer (temp, dewp), distances and departure hours (distance_mi, sched_hour), one
    carrier's traffic four times over (carrier_flights_28d), a feature missing on every row (pressure).
    """
    from ctloop.core.monitor import drift

    reference = reference_of(training_set, END, EVAL_DAYS)
    week = scenario.change(reference.week())
    window = drift(reference.counts(week), reference.profile)
    got = decide(NOW, "1", None, window, None, Policy(), State())
    above = window.above_normal()
    drifted = {f for f, v in above.items() if v > Policy().max_feature_psi_above_normal}
    assert drifted == scenario.fires, {f: round(v, 2) for f, v in above.items() if v > 0}
    if scenario.fires:
        assert got.triggers == ["drift"] and got.retrain
        assert all(name in got.reasons[0] for name in scenario.fires), got.reasons
    else:
        assert got.triggers == [] and not got.retrain, got.reasons


def test_cooldown_holds_back_a_second_run():
    """A trigger within the cooldown of the last run starts nothing and says why."""
    state = State(last_run_at=(NOW - timedelta(days=2)).isoformat(), last_incident="schedule", last_outcome="failed")
    got = decide(NOW, "3", None, loud_drift(), None, Policy(cooldown_s=7 * 86400), state)
    assert got.triggers == ["drift"] and not got.retrain
    assert any("cooldown" in r for r in got.reasons)


@pytest.mark.parametrize(
    ("days_ago", "outcome", "judged"),
    [(2, "promoted", False), (6.9, "promoted", False), (7.1, "promoted", True), (2, "not blessed", True)],
)
def test_drift_waits_for_a_whole_window_of_the_promoted_version(days_ago, outcome, judged):
    """Days after a promotion the window holds one or two weekdays of the new version: drift is not judged then.

    A run that promoted nothing left the same version serving, whose window is whole.
    """
    state = State(last_run_at=(NOW - timedelta(days=days_ago)).isoformat(), last_incident="x", last_outcome=outcome)
    got = decide(NOW, "3", None, loud_drift(), None, Policy(window="7d", cooldown_s=0.0), state)
    assert (got.triggers == ["drift"]) is judged, got.reasons
    assert any("drift not judged" in r and "v3 was promoted" in r for r in got.reasons) is not judged


@pytest.mark.parametrize(("outcome", "retrain"), [("not blessed", False), ("failed", False), ("promoted", True)])
def test_one_incident_one_run_after_a_failed_or_unblessed_retrain(outcome, retrain):
    """The same incident after the cooldown: not again if its run failed or was not blessed."""
    state = State(last_run_at=(NOW - timedelta(days=10)).isoformat(), last_incident="drift", last_outcome=outcome)
    got = decide(NOW, "3", None, loud_drift(), None, Policy(cooldown_s=7 * 86400), state)
    assert got.retrain is retrain, got.reasons


def test_a_trigger_waits_for_data_newer_than_the_champions():
    """Drift days after the champion's data ends starts no run: the new window would hold nothing new."""
    fresh = decide(NOW, "3", NOW - timedelta(days=3), loud_drift(), None, Policy(min_new_data_days=14), State())
    assert fresh.triggers == ["drift"] and not fresh.retrain
    assert any("3 days of data newer" in r for r in fresh.reasons)
    later = decide(NOW, "3", NOW - timedelta(days=14), loud_drift(), None, Policy(min_new_data_days=14), State())
    assert later.retrain


def test_retrain_window_ends_before_now():
    """The window is the days before now: nothing from the simulated future."""
    assert window_for(NOW, 90) == ("2013-04-02", "2013-06-30")
