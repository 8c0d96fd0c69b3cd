"""The promotion gate: each rule blesses or refuses for the stated reason."""

from __future__ import annotations

import math

import pytest

from ctloop.config import GateSettings
from ctloop.core.evaluate import EvalResult, Scores
from ctloop.core.gate import decide, skill

GATE = GateSettings()
RATE = 0.25  # no-skill Brier 0.1875, log-loss 0.5623


def result(auc=0.70, log_loss=0.50, brier=0.17, slices=None):
    return EvalResult(Scores(10_000, RATE, auc, log_loss, brier), slices or {})


def slice_(auc, rows=1000, rate=0.3):
    return Scores(rows, rate, auc, 0.5, 0.17)


def test_a_good_first_model_is_blessed():
    """With no champion, a model above every floor is blessed and says so."""
    decision = decide(result(), None, GATE, onnx_max_abs_diff=1e-7)
    assert decision.blessed and decision.reasons == []
    assert "no champion to compare with" in decision.passed


def test_better_than_champion_is_blessed():
    """A candidate at least as good as the champion passes the comparison."""
    decision = decide(result(auc=0.71, brier=0.168), result(auc=0.70), GATE)
    assert decision.blessed
    assert any("vs champion" in p for p in decision.passed)


def test_worse_than_champion_beyond_tolerance_is_refused():
    """An AUC drop larger than max_auc_drop is refused, naming the champion."""
    decision = decide(result(auc=0.69), result(auc=0.70), GATE)
    assert not decision.blessed
    assert any("worse than champion" in r and "auc" in r for r in decision.reasons)


def test_small_drop_within_tolerance_passes():
    """A drop within tolerance is not a regression."""
    assert decide(result(auc=0.698), result(auc=0.70), GATE).blessed


def test_brier_regression_is_refused():
    """Calibration counts: a Brier increase beyond tolerance is refused."""
    decision = decide(result(brier=0.175), result(brier=0.170), GATE)
    assert not decision.blessed and any("brier" in r and "champion" in r for r in decision.reasons)


@pytest.mark.parametrize("metric", ["auc", "log_loss", "brier"])
def test_nan_metric_is_refused(metric):
    """A NaN in any headline metric blocks promotion outright."""
    decision = decide(result(**{metric: math.nan}), None, GATE)
    assert not decision.blessed and decision.reasons == [f"{metric} is NaN"]


def test_auc_below_floor_is_refused():
    decision = decide(result(auc=0.60), None, GATE)
    assert not decision.blessed and any("floor" in r for r in decision.reasons)


def test_no_skill_over_the_base_rate_is_refused():
    """Log-loss and Brier no better than predicting the base rate are refused."""
    decision = decide(result(log_loss=0.562, brier=0.1874), None, GATE)
    assert not decision.blessed
    assert any(r.startswith("log_loss") for r in decision.reasons)
    assert any(r.startswith("brier") for r in decision.reasons)


def test_skill_is_relative_to_the_base_rate():
    """The same Brier is skilful in a stormy month and not in a calm one."""
    assert skill(0.60, 0.20, 0.32)[1] > 0.05  # Dec 2013: 32 % late
    assert skill(0.40, 0.20, 0.13)[1] < 0  # Sep 2013: 13 % late


def test_collapsed_slice_is_refused_and_named():
    """A slice far below the slice floor is refused by name."""
    decision = decide(result(slices={"carrier=AA": slice_(0.70), "carrier=EV": slice_(0.50)}), None, GATE)
    assert not decision.blessed
    assert decision.reasons == [f"slice carrier=EV collapsed: auc 0.5000 < {GATE.min_slice_auc} on 1000 rows"]


def test_slice_collapsing_against_champion_is_refused():
    """A slice that drops far below the champion's same slice is refused."""
    champion = result(slices={"origin=JFK": slice_(0.75)})
    decision = decide(result(slices={"origin=JFK": slice_(0.62)}), champion, GATE)
    assert not decision.blessed and any("origin=JFK" in r and "champion" in r for r in decision.reasons)


def test_small_or_single_class_slices_are_ignored():
    """Slices too small to judge (or with one class) do not block."""
    slices = {"carrier=HA": slice_(0.2, rows=GATE.min_slice_rows - 1), "carrier=OO": slice_(math.nan, rate=0.0)}
    assert decide(result(slices=slices), None, GATE).blessed


def test_onnx_mismatch_is_refused():
    """An ONNX export that differs from scikit-learn beyond 1e-5 is never promoted."""
    decision = decide(result(), None, GATE, onnx_max_abs_diff=2e-4)
    assert not decision.blessed and any("onnx" in r for r in decision.reasons)
