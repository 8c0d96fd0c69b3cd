"""Monitoring from metrics alone: drift (PSI), delayed-label performance, and the retraining policy.

Serving counts every feature value in the bucket its training reference cut (``ctloop.contract.buckets``)
and every predicted probability in fixed buckets; feedback counts outcomes per predicted bucket
(a histogram per outcome) and sums squared errors. A monitoring pass takes those counters over a
window (the difference of two readings, or Prometheus's ``increase``), and:

- **drift**: the population stability index per feature and on the prediction,
  ``PSI = Σ (p - q) · ln(p / q)`` over the buckets (``missing`` included), ``p`` the window's
  shares, ``q`` the reference shares recorded at training (``reference_fractions``). PSI, not a
  library's test: it needs only bucket counts (what metrics can carry), is the convention in
  credit and ML monitoring (< 0.1 stable, 0.1-0.25 moderate, > 0.25 large), and does not become
  "significant" merely because traffic is large, as a chi-square or KS p-value does. A feature
  is judged by its PSI *above its normal*: the PSI a window as long had within the model's fit
  data (``ctloop.core.drift_normal``), so weather and trailing rates, which move every week, fire
  when they move more than they did in training;
- **performance**: AUC from the two outcome histograms (ties within a bucket count one half),
  Brier from the squared-error sum, calibration as mean predicted minus observed delay rate;
- **policy** (``[monitor]``): drift above threshold, performance below floor, a champion trained
  on data older than a schedule; a cooldown, and one run per incident.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ctloop.config import MonitorSettings
from ctloop.contract import buckets

PSI_FLOOR = 1e-4
"""Shares are floored before the logarithm: an empty bucket on one side must not be infinite."""


@dataclass(frozen=True)
class Sample:
    """One series of a metrics reading."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class Counts:
    """One model version's counters (a reading, or a window between two readings)."""

    version: str
    features: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    predictions: dict[str, float] = field(default_factory=dict)
    feedback_le: dict[str, dict[float, float]] = field(default_factory=lambda: defaultdict(dict))
    feedback_sum: dict[str, float] = field(default_factory=dict)
    squared_error: float = 0.0

    @classmethod
    def from_samples(cls, samples: Iterable[Sample], version: str) -> Counts:
        """The counters of ``version`` among ``samples`` (series of other versions are ignored)."""
        counts = cls(version)
        for s in samples:
            if s.labels.get("model_version") != version:
                continue
            if s.name == "ctloop_feature_bucket_total":
                counts.features[s.labels["feature"]][s.labels["bucket"]] = s.value
            elif s.name == "ctloop_prediction_bucket_total":
                counts.predictions[s.labels["bucket"]] = s.value
            elif s.name == "ctloop_feedback_probability_bucket":
                counts.feedback_le[s.labels["outcome"]][float(s.labels["le"])] = s.value
            elif s.name == "ctloop_feedback_probability_sum":
                counts.feedback_sum[s.labels["outcome"]] = s.value
            elif s.name == "ctloop_feedback_squared_error_total":
                counts.squared_error = s.value
        return counts

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        """What ``dataclasses.asdict`` of a ``Counts`` wrote (as JSON: histogram bounds come back as text)."""
        counts = cls(str(data["version"]))
        counts.features.update(data["features"])
        counts.predictions = dict(data["predictions"])
        for outcome, les in data["feedback_le"].items():
            counts.feedback_le[outcome] = {float(le): v for le, v in les.items()}
        counts.feedback_sum = dict(data["feedback_sum"])
        counts.squared_error = float(data["squared_error"])
        return counts

    def minus(self, earlier: Counts | None) -> Counts:
        """The window since ``earlier`` (counters only grow; a restart that reset them counts from zero)."""
        if earlier is None or earlier.version != self.version:
            return self

        def sub(now: float, before: float) -> float:
            return now - before if now >= before else now

        out = Counts(self.version)
        for name, counted in self.features.items():
            old = earlier.features.get(name, {})
            out.features[name] = {b: sub(v, old.get(b, 0.0)) for b, v in counted.items()}
        out.predictions = {b: sub(v, earlier.predictions.get(b, 0.0)) for b, v in self.predictions.items()}
        for outcome, les in self.feedback_le.items():
            old_le = earlier.feedback_le.get(outcome, {})
            out.feedback_le[outcome] = {le: sub(v, old_le.get(le, 0.0)) for le, v in les.items()}
        out.feedback_sum = {o: sub(v, earlier.feedback_sum.get(o, 0.0)) for o, v in self.feedback_sum.items()}
        out.squared_error = sub(self.squared_error, earlier.squared_error)
        return out

    def rows(self) -> float:
        """Flights scored in the window."""
        return sum(self.predictions.values())


def shares(counts: Mapping[str, float], labels: Iterable[str]) -> dict[str, float]:
    """Each bucket's share of the total (all ``labels`` present)."""
    total = sum(counts.values())
    return {label: (counts.get(label, 0.0) / total if total else 0.0) for label in labels}


def psi(observed: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """Population stability index of observed counts against reference shares (same bucket labels)."""
    labels = sorted(set(reference) | set(observed))
    p = shares(observed, labels)
    total = 0.0
    for label in labels:
        a = max(p[label], PSI_FLOOR)
        b = max(float(reference.get(label, 0.0)), PSI_FLOOR)
        total += (a - b) * math.log(a / b)
    return total


@dataclass(frozen=True)
class Performance:
    """Delayed-label performance over a window."""

    labelled: int
    delayed: int
    auc: float
    brier: float
    calibration_gap: float
    """Mean predicted probability minus the observed delay rate (positive: the model over-predicts)."""


def _per_bucket(cumulative: Mapping[float, float]) -> list[float]:
    previous = 0.0
    out = []
    for le in sorted(cumulative):
        out.append(cumulative[le] - previous)
        previous = cumulative[le]
    return out


def performance(counts: Counts) -> Performance | None:
    """AUC, Brier and calibration from the feedback counters; None without both outcomes."""
    delayed = _per_bucket(counts.feedback_le.get("delayed", {}))
    on_time = _per_bucket(counts.feedback_le.get("on_time", {}))
    positives, negatives = sum(delayed), sum(on_time)
    if not positives or not negatives or len(delayed) != len(on_time):
        return None
    above = 0.0  # positives in higher buckets than the current one
    wins = 0.0
    for pos, neg in zip(reversed(delayed), reversed(on_time), strict=True):
        wins += neg * (above + 0.5 * pos)
        above += pos
    labelled = positives + negatives
    mean_p = (counts.feedback_sum.get("delayed", 0.0) + counts.feedback_sum.get("on_time", 0.0)) / labelled
    return Performance(
        labelled=int(labelled),
        delayed=int(positives),
        auc=wins / (positives * negatives),
        brier=counts.squared_error / labelled,
        calibration_gap=mean_p - positives / labelled,
    )


@dataclass(frozen=True)
class Drift:
    """PSI per feature (with the rows behind it) and on the prediction, and their normals.

    A normal is the PSI a window of the same length had within the model's fit data
    (``ctloop.core.drift_normal``); a model trained without one has normals of zero, and its
    features are judged on raw PSI.
    """

    rows: int
    features: dict[str, float]
    prediction: float
    normal: dict[str, float] = field(default_factory=dict)
    prediction_normal: float = 0.0

    def above_normal(self) -> dict[str, float]:
        """Each feature's PSI minus its normal."""
        return {name: value - self.normal.get(name, 0.0) for name, value in self.features.items()}

    def worst(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` features furthest above their normal, with that excess."""
        return sorted(self.above_normal().items(), key=lambda kv: -kv[1])[:n]


def drift(counts: Counts, reference: Mapping[str, Any]) -> Drift:
    """PSI of the window against the model's ``reference_fractions`` (metadata written at training), and its normals."""
    features = {name: psi(counts.features.get(name, {}), ref) for name, ref in reference["features"].items() if ref}
    prediction = psi(counts.predictions, reference["prediction"]["fractions"])
    normal = reference.get(buckets.NORMAL) or {}
    normals = {name: float(v) for name, v in (normal.get("features") or {}).items() if name in features}
    return Drift(int(counts.rows()), features, prediction, normals, float(normal.get("prediction", 0.0)))


Policy = MonitorSettings
"""When to retrain: the ``[monitor]`` settings."""


@dataclass
class State:
    """What the monitor remembers between passes."""

    last_run_at: str = ""
    last_incident: str = ""
    last_outcome: str = ""


@dataclass(frozen=True)
class Decision:
    """One pass's verdict, with every number behind it."""

    at: str
    model_version: str
    retrain: bool
    triggers: list[str]
    reasons: list[str]
    numbers: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """For the decision log."""
        return asdict(self)


def _drift_triggers(d: Drift, policy: Policy, found: Found) -> None:
    worst = d.worst(5)
    found.numbers.update(
        rows=d.rows,
        prediction_psi=round(d.prediction, 4),
        prediction_normal_psi=round(d.prediction_normal, 4),
        worst_feature_psi={k: round(d.features[k], 4) for k, _ in worst},
        worst_feature_normal_psi={k: round(d.normal.get(k, 0.0), 4) for k, _ in worst},
    )
    if d.rows < policy.min_rows:
        found.reasons.append(f"only {d.rows} flights scored (< {policy.min_rows}): drift not judged")
        return
    ignored = set(policy.drift_ignore)
    limit = policy.max_feature_psi_above_normal
    above = d.above_normal()
    drifted = sorted((f for f, v in above.items() if v > limit and f not in ignored), key=lambda f: -above[f])
    found.numbers["drifted_features"] = drifted
    if len(drifted) >= policy.min_drifted_features:
        named = ", ".join(f"{f} (PSI {d.features[f]:.2f}, normal {d.normal.get(f, 0.0):.2f})" for f in drifted[:6])
        found.add("drift", f"{len(drifted)} features with PSI above their normal by > {limit}: {named}")
    if d.prediction - d.prediction_normal > policy.max_prediction_psi_above_normal:
        found.add(
            "prediction_drift",
            f"prediction PSI {d.prediction:.3f} above its normal {d.prediction_normal:.3f} "
            f"by > {policy.max_prediction_psi_above_normal}",
        )


def _performance_triggers(perf: Performance, policy: Policy, found: Found) -> None:
    found.numbers.update(
        labelled=perf.labelled,
        auc=round(perf.auc, 4),
        brier=round(perf.brier, 4),
        calibration_gap=round(perf.calibration_gap, 4),
    )
    if perf.labelled < policy.min_labelled:
        found.reasons.append(f"only {perf.labelled} outcomes (< {policy.min_labelled}): performance not judged")
    elif perf.auc < policy.min_auc:
        found.add("performance", f"AUC {perf.auc:.3f} < {policy.min_auc} on {perf.labelled} outcomes")
    elif perf.brier > policy.max_brier:
        found.add("performance", f"Brier {perf.brier:.3f} > {policy.max_brier} on {perf.labelled} outcomes")


@dataclass
class Found:
    """Triggers, reasons and numbers gathered by one pass."""

    triggers: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def add(self, trigger: str, reason: str) -> None:
        """A trigger fired, for this reason."""
        self.triggers.append(trigger)
        self.reasons.append(reason)


def _held_back(now: datetime, incident: str, policy: Policy, state: State, data_end: datetime | None) -> str:
    """Why a fired trigger does not start a run (empty: it does)."""
    if data_end is not None and (now - data_end).days < policy.min_new_data_days:
        days, least = (now - data_end).days, policy.min_new_data_days
        return f"only {days} days of data newer than the champion's (< {least}): nothing new to learn"
    if not state.last_run_at:
        return ""
    since = (now - datetime.fromisoformat(state.last_run_at)).total_seconds()
    if since < policy.cooldown_s:
        return f"cooldown: last run {since / 86400:.1f} days ago (< {policy.cooldown_s / 86400:.1f})"
    repeated = incident == state.last_incident and "schedule" not in incident
    if repeated and state.last_outcome in {"not blessed", "failed"}:
        return f"same incident ({incident}) already retrained, {state.last_outcome}: waiting for the schedule"
    return ""


def _served_since_promotion(now: datetime, state: State) -> float | None:
    """Seconds since the monitor's last run promoted the model now serving (None: no such promotion)."""
    if state.last_outcome != "promoted" or not state.last_run_at:
        return None
    return (now - datetime.fromisoformat(state.last_run_at)).total_seconds()


def decide(
    now: datetime,
    version: str,
    model_data_end: datetime | None,
    window_drift: Drift | None,
    window_performance: Performance | None,
    policy: Policy,
    state: State,
) -> Decision:
    """Apply the policy: which triggers fire, and whether the cooldown or de-duplication holds them back."""
    found = Found()
    served_s = _served_since_promotion(now, state)
    if window_drift is not None and served_s is not None and served_s < policy.window_s:
        found.reasons.append(
            f"v{version} was promoted {served_s / 86400:.1f} days ago, less than the {policy.window} window: "
            "drift not judged (a part of a window is one or two weekdays, far from any reference)"
        )
    elif window_drift is not None:
        _drift_triggers(window_drift, policy, found)
    if window_performance is not None:
        _performance_triggers(window_performance, policy, found)
    if model_data_end is not None:
        age = (now - model_data_end).total_seconds() / 86400
        found.numbers["model_age_days"] = round(age, 1)
        if age > policy.max_model_age_days:
            found.add("schedule", f"champion trained on data up to {model_data_end:%Y-%m-%d}, {age:.0f} days old")
    triggers = sorted(set(found.triggers))
    incident = "+".join(triggers)
    held = _held_back(now, incident, policy, state, model_data_end) if triggers else "no trigger"
    if held:
        found.reasons.append(held)
    return Decision(now.isoformat(), version, bool(triggers) and not held, triggers, found.reasons, found.numbers)


def window_for(now: datetime, days: int) -> tuple[str, str]:
    """The training window a retrain uses: the ``days`` days before ``now`` (only data that existed then)."""
    end = (now - timedelta(days=1)).date()
    start = end - timedelta(days=days - 1)
    return start.isoformat(), end.isoformat()
