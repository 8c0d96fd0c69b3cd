"""The promotion gate: which candidates are blessed or rejected, and the reasons it gives."""

from __future__ import annotations

import math

import pytest

from ctloop.config import GateSettings
from ctloop.core.evaluate import EvalResult, Scores
from ctloop.core.gate import BLESSED, ONNX_TOLERANCE, REJECTED, decide, skill

GATE = GateSettings(
    min_auc=0.65,
    min_log_loss_skill=0.02,
    min_brier_skill=0.02,
    max_auc_drop=0.005,
    max_brier_increase=0.002,
    min_slice_rows=300,
    min_slice_auc=0.55,
    max_slice_auc_drop=0.08,
)
RATE = 0.2  # no-skill log-loss 0.5004, no-skill Brier 0.16


def model(auc=0.72, log_loss=0.44, brier=0.145, slices=None, rate=RATE):
    return EvalResult(Scores(5000, rate, auc, log_loss, brier), slices or {})


def part(auc, rows=1000, rate=0.25):
    return Scores(rows, rate, auc, 0.5, 0.17)


def test_better_candidate_is_blessed_without_reasons():
    """A candidate better than the champion on every metric is blessed with an empty reason list."""
    champion = model(auc=0.70, brier=0.150)
    decision = decide(model(auc=0.72, brier=0.145), champion, GATE, onnx_max_abs_diff=1e-7)
    assert decision.blessed and decision.verdict == BLESSED
    assert decision.reasons == []
    assert any("vs champion" in p and "auc" in p for p in decision.passed)
    assert "no champion to compare with" not in decision.passed


def test_worse_than_champion_beyond_tolerance_is_rejected():
    """An AUC drop larger than max_auc_drop is rejected with a reason naming the champion."""
    champion = model(auc=0.72)
    decision = decide(model(auc=0.72 - GATE.max_auc_drop - 0.002), champion, GATE)
    assert not decision.blessed and decision.verdict == REJECTED
    assert len(decision.reasons) == 1
    assert "champion" in decision.reasons[0] and "auc" in decision.reasons[0]


def test_drop_within_tolerance_is_blessed():
    """A drop smaller than max_auc_drop is not a regression."""
    assert decide(model(auc=0.72 - GATE.max_auc_drop / 2), model(auc=0.72), GATE).blessed


def test_brier_worse_than_champion_is_rejected():
    """A Brier increase beyond max_brier_increase is rejected, naming the champion."""
    decision = decide(model(brier=0.145 + GATE.max_brier_increase + 0.001), model(brier=0.145), GATE)
    assert not decision.blessed
    assert any(r.startswith("brier") and "champion" in r for r in decision.reasons)


@pytest.mark.parametrize("metric", ["auc", "log_loss", "brier"])
def test_nan_metric_is_rejected(metric):
    """A NaN headline metric rejects outright, even with a weaker champion."""
    decision = decide(model(**{metric: math.nan}), model(auc=0.60), GATE)
    assert not decision.blessed
    assert decision.reasons == [f"{metric} is NaN"]
    assert "NaN" in decision.reasons[0]


def test_collapsed_slice_is_rejected_by_name():
    """A slice with enough rows and AUC below min_slice_auc is rejected, naming the slice."""
    slices = {"carrier=AA": part(0.70), "origin=LGA": part(0.51, rows=800)}
    decision = decide(model(slices=slices), None, GATE)
    assert not decision.blessed
    assert len(decision.reasons) == 1
    assert "origin=LGA" in decision.reasons[0] and "collapsed" in decision.reasons[0]
    assert "carrier=AA" not in decision.reasons[0]


@pytest.mark.parametrize("collapsed", ["carrier=EV", "origin=LGA", "time_of_day=evening"])
def test_a_collapsed_carrier_origin_or_part_of_the_day_is_rejected_by_name(collapsed):
    """Every kind of slice is judged: the one that collapses is named, the others pass."""
    names = ["carrier=AA", "carrier=EV", "origin=JFK", "origin=LGA", "time_of_day=morning", "time_of_day=evening"]
    slices = {name: part(0.51 if name == collapsed else 0.70) for name in names}
    decision = decide(model(slices=slices), None, GATE)
    assert not decision.blessed
    assert decision.reasons == [f"slice {collapsed} collapsed: auc 0.5100 < {GATE.min_slice_auc} on 1000 rows"]
    fine = decide(model(slices={**slices, collapsed: part(0.70)}), None, GATE)
    assert fine.blessed and "no slice collapsed (6 slices: 2 carrier, 2 origin, 2 time_of_day)" in fine.passed


def test_slice_with_nan_auc_and_both_classes_is_rejected():
    """A judgeable slice whose AUC is NaN counts as collapsed."""
    decision = decide(model(slices={"carrier=EV": part(math.nan)}), None, GATE)
    assert not decision.blessed and "carrier=EV" in decision.reasons[0]


def test_small_slice_is_ignored():
    """A slice with fewer rows than min_slice_rows does not block, however bad its AUC."""
    slices = {"carrier=HA": part(0.10, rows=GATE.min_slice_rows - 1), "carrier=AA": part(0.70)}
    decision = decide(model(slices=slices), None, GATE)
    assert decision.blessed
    assert "no slice collapsed (2 slices: 2 carrier)" in decision.passed


def test_slice_at_exactly_min_rows_is_judged():
    """min_slice_rows is inclusive: a slice of exactly that many rows is checked."""
    decision = decide(model(slices={"carrier=HA": part(0.10, rows=GATE.min_slice_rows)}), None, GATE)
    assert not decision.blessed and "carrier=HA" in decision.reasons[0]


def test_slice_drop_against_champion_is_rejected():
    """A slice far below the champion's same slice is rejected, even above the absolute floor."""
    champion = model(slices={"origin=JFK": part(0.80)})
    decision = decide(model(slices={"origin=JFK": part(0.80 - GATE.max_slice_auc_drop - 0.02)}), champion, GATE)
    assert not decision.blessed
    assert any("origin=JFK" in r and "champion" in r for r in decision.reasons)


@pytest.mark.parametrize("diff", [2e-5, 1e-3, math.nan])
def test_onnx_difference_above_tolerance_is_rejected(diff):
    """An ONNX export further than 1e-5 from scikit-learn (or unmeasured: NaN) is rejected."""
    decision = decide(model(), None, GATE, onnx_max_abs_diff=diff)
    assert not decision.blessed
    assert [r for r in decision.reasons if "onnx" in r]


@pytest.mark.parametrize("diff", [0.0, 3e-7, ONNX_TOLERANCE])
def test_onnx_difference_within_tolerance_passes(diff):
    """Differences up to 1e-5 inclusive pass the parity check."""
    decision = decide(model(), None, GATE, onnx_max_abs_diff=diff)
    assert decision.blessed
    assert any(p.startswith("onnx parity") for p in decision.passed)


@pytest.mark.parametrize(
    ("overrides", "reason_start"),
    [
        ({"auc": 0.60}, "auc"),
        ({"log_loss": 0.499}, "log_loss"),  # skill 0.003 < 0.02
        ({"brier": 0.158}, "brier"),  # skill 0.0125 < 0.02
    ],
    ids=["auc floor", "log-loss skill floor", "brier skill floor"],
)
def test_below_floor_is_rejected(overrides, reason_start):
    """Each absolute floor rejects on its own, with a reason naming the metric and the floor."""
    decision = decide(model(**overrides), None, GATE)
    assert not decision.blessed
    assert len(decision.reasons) == 1
    assert decision.reasons[0].startswith(reason_start) and "floor" in decision.reasons[0]


def test_no_champion_is_said_in_passed():
    """Without a champion the comparison is skipped and recorded as passed."""
    decision = decide(model(), None, GATE)
    assert decision.blessed
    assert "no champion to compare with" in decision.passed
    assert not any("vs champion" in p for p in decision.passed)


def test_skill_scores_against_the_base_rate():
    """Skill is 0 for the no-skill forecast, 1 for a perfect one, NaN for a one-class window."""
    r = 0.2
    no_skill_ll = -(r * math.log(r) + (1 - r) * math.log(1 - r))
    assert skill(no_skill_ll, r * (1 - r), r) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert skill(0.0, 0.0, r) == (1.0, 1.0)
    assert all(math.isnan(v) for v in skill(0.3, 0.1, 0.0))


def test_decision_to_dict_carries_verdict_and_reasons():
    """The Metrics artifact form holds the verdict, reasons and passed checks."""
    decision = decide(model(auc=0.60), None, GATE)
    d = decision.to_dict()
    assert d["verdict"] == "rejected" and d["blessed"] is False
    assert d["reasons"] == decision.reasons and d["passed"] == decision.passed


def test_floors_yield_to_a_candidate_at_least_as_good_as_the_champion():
    """A calm month: skill below the floor, yet better than the champion on the same rows: blessed, said so."""
    champion = model(auc=0.64, log_loss=0.499, brier=0.1585)
    candidate = model(auc=0.645, log_loss=0.498, brier=0.1580)  # auc and both skills under their floors
    decision = decide(candidate, champion, GATE)
    assert decision.blessed, decision.reasons
    waived = [p for p in decision.passed if "waived" in p]
    assert len(waived) == 3 and {p.split()[0] for p in waived} == {"auc", "log_loss", "brier"}
    assert decision.waived == waived and decision.to_dict()["waived"] == waived


@pytest.mark.parametrize(
    ("champion", "why"),
    [
        ({"auc": 0.646, "brier": 0.1590}, "champion's auc higher"),
        ({"auc": 0.640, "brier": 0.1575}, "champion's brier lower"),
        (None, "no champion"),
    ],
    ids=["auc behind", "brier behind", "no champion"],
)
def test_floors_hold_unless_the_candidate_is_as_good_in_both(champion, why):
    """Behind the champion in either metric, or with no champion at all, every floor holds."""
    candidate = model(auc=0.645, log_loss=0.498, brier=0.1580)
    decision = decide(candidate, model(**champion) if champion else None, GATE)
    assert not decision.blessed, why
    assert sum("floor" in r for r in decision.reasons) == 3


def test_floors_hold_when_the_setting_is_off():
    """``floors_yield_to_champion = false``: the floors judge alone, as before."""
    from dataclasses import replace

    champion = model(auc=0.64, log_loss=0.499, brier=0.1585)
    candidate = model(auc=0.645, log_loss=0.498, brier=0.1580)
    decision = decide(candidate, champion, replace(GATE, floors_yield_to_champion=False))
    assert not decision.blessed and sum("floor" in r for r in decision.reasons) == 3
