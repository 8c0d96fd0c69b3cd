"""The model against its baseline, month by month (``make bench BENCH_ARGS="--only model"``).

For every month of 2013 from February, a candidate is trained as a retrain would train it: on
the ``[monitor] train_window_days`` days ending on the month's last day (from Jan 1 while the
year is younger), with that month (the last ``[train] eval_days`` days) held out. On the
held-out days it is scored beside the logistic-regression baseline the evaluate step fits on the
same fit days (scheduled hour and carrier). The goal: the candidate beats the baseline in AUC
and in Brier score on every month.

The same year's flights also give the reference loop the replay is measured against: retrain
every week and always promote ("naive weekly"). Every 7 days from ``[replay] start``, at local
midnight, a candidate is trained exactly as a retrain trains it (the window ending the
day before, only flights that had landed by that midnight), then it scores the week's flights.
Beside it, the static champion (trained once on ``[replay] first_start..first_end``) scores the
same flights. Both train offline, without serving; AUC and Brier are per quarter.

The year's training set is built once, point in time, by the pipelines' own steps (the feature
pipeline's days appended to the offline store, the training pipeline's ingest, Feast's historical
retrieval); each window is a slice of it, which gives the same rows and features as a pipeline run
on that window.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.app import feature_steps, pipeline_steps
from ctloop.config import Settings
from ctloop.core import data, tune
from ctloop.core import evaluate as ev
from ctloop.core import train as core
from ctloop.core.clock import departs_within, local_midnight
from ctloop.core.features import as_float_matrix

YEAR_START, YEAR_END = date(2013, 1, 1), date(2013, 12, 31)
SHORT_WINDOW_DAYS = 120
"""The naive loop again with this retrain window, for the evidence behind ``train_window_days``."""


def month_ends() -> list[date]:
    """The last day of every month from February to December 2013."""
    firsts = [date(2013, month, 1) for month in range(3, 13)] + [date(2014, 1, 1)]
    return [first - timedelta(days=1) for first in firsts]


def year_training_set(settings: Settings, work: Path) -> core.TrainingSet:
    """Every 2013 flight with its point-in-time features, label and ``outcome_known_at`` (its landing)."""
    start, end = YEAR_START.isoformat(), YEAR_END.isoformat()
    snapshot = data.ingest(data.Window.parse(start, end), settings.features.history_days, work / "snapshot")
    feature_steps.run_in_process(settings, feature_steps.window_days(start, end), work / "features", online=False)
    ts = pipeline_steps.training_set(settings, Path(snapshot.path), start, end)
    flights, _, _ = data.read_snapshot(Path(snapshot.path))
    known = flights.loc[:, ["flight_id", "outcome_known_at"]]
    frame = ts.frame.merge(known, on="flight_id", how="left", validate="one_to_one")
    return core.TrainingSet(frame, ts.feature_names, ts.layout)


def _fit(ts: core.TrainingSet, start: date, end: date, settings: Settings, known_by: pd.Timestamp | None) -> Any:
    """A candidate as a retrain fits it: tuned, then fitted on the window's fit days (the last ``eval_days`` out)."""
    mask = departs_within(ts.frame["sched_dep_local"], start, end)
    if known_by is not None:
        mask &= ts.frame["outcome_known_at"] <= known_by
    window = core.TrainingSet(ts.frame.loc[mask].reset_index(drop=True), ts.feature_names, ts.layout)
    params = tune.search(window, end, settings.train, settings.tune).params
    fit, _ = core.split(window, end, params.eval_days)
    return core.fit_model(fit, ts.feature_names, params)


def _quarter(day: str) -> str:
    return f"Q{(int(day[5:7]) - 1) // 3 + 1}"


def _compare(part: pd.DataFrame) -> dict[str, Any]:
    """Flights, AUC and Brier of the naive loop and the static champion on the same flights."""
    y = part["y"].to_numpy()
    naive, fixed = ev.score(y, part["naive"].to_numpy()), ev.score(y, part["static"].to_numpy())
    return {
        "flights": len(part),
        "naive_auc": round(naive.auc, 4),
        "static_auc": round(fixed.auc, 4),
        "naive_brier": round(naive.brier, 4),
        "static_brier": round(fixed.brier, 4),
    }


def naive_weekly(ts: core.TrainingSet, settings: Settings) -> dict[str, Any]:
    """Retrain every week and always promote, against the static champion, on the replay's flights."""
    replay = settings.replay
    first, last = date.fromisoformat(replay.start), date.fromisoformat(replay.end)
    static = _fit(ts, date.fromisoformat(replay.first_start), date.fromisoformat(replay.first_end), settings, None)
    scored: list[pd.DataFrame] = []
    retrains = 0
    monday = first
    while monday <= last:
        end = monday - timedelta(days=1)
        start = max(YEAR_START, end - timedelta(days=settings.monitor.train_window_days - 1))
        model = _fit(ts, start, end, settings, local_midnight(monday))
        retrains += 1
        week_end = min(last, monday + timedelta(days=6))
        week = ts.frame.loc[departs_within(ts.frame["sched_dep_local"], monday, week_end)]
        scored.append(
            pd.DataFrame(
                {
                    "quarter": week["sched_dep_local"].map(_quarter),
                    "week": monday.isoformat(),
                    "y": week[ev.LABEL].to_numpy(),
                    "naive": core.predict(model, week, ts.feature_names),
                    "static": core.predict(static, week, ts.feature_names),
                }
            )
        )
        monday += timedelta(days=7)
    flights = pd.concat(scored, ignore_index=True)
    quarters = [{"quarter": q, **_compare(part)} for q, part in flights.groupby("quarter", sort=True)]
    weeks = [{"start": w, **_compare(part)} for w, part in flights.groupby("week", sort=True)]
    return {
        "period": f"{first}..{last}",
        "retrains": retrains,
        "overall": _compare(flights),
        "quarters": quarters,
        "weeks": weeks,
    }


def month(ts: core.TrainingSet, end: date, settings: Settings) -> dict[str, Any]:
    """Candidate and baseline on the month ending ``end``, trained on the retrain window before it."""
    start = max(YEAR_START, end - timedelta(days=settings.monitor.train_window_days - 1))
    window = core.TrainingSet(
        ts.frame.loc[departs_within(ts.frame["sched_dep_local"], start, end)].reset_index(drop=True),
        ts.feature_names,
        ts.layout,
    )
    tuned = tune.search(window, end, settings.train, settings.tune)
    params = tuned.params
    fit, held = core.split(window, end, params.eval_days)
    model = core.fit_model(fit, ts.feature_names, params)
    onnx = core.to_onnx(model, len(ts.feature_names))
    p = core.onnx_predict(onnx, as_float_matrix(held, ts.feature_names))  # as served
    base = core.fit_baseline(fit, params.seed)
    p_base = np.asarray(base.predict_proba(core.baseline_features(held))[:, 1], dtype=np.float64)
    y = held[ev.LABEL].to_numpy()
    candidate, baseline = ev.score(y, p), ev.score(y, p_base)
    return {
        "month": end.strftime("%Y-%m"),
        "train_window": f"{start}..{end}",
        "evaluation_window": f"{core.eval_start(end, params.eval_days)}..{end}",
        "rows": len(held),
        "candidate": {"auc": candidate.auc, "brier": candidate.brier, "log_loss": candidate.log_loss},
        "baseline": {"auc": baseline.auc, "brier": baseline.brier, "log_loss": baseline.log_loss},
        "beats_baseline": bool(candidate.auc > baseline.auc and candidate.brier < baseline.brier),
        "tuned": tuned.chosen,
    }


def run(settings: Settings, work: Path) -> dict[str, Any]:
    """Every month's figures; the year's training set is built once in ``work``."""
    settings = settings.replace(paths=replace(settings.paths, data_dir=str(work)))
    began = time.perf_counter()
    ts = year_training_set(settings, work)
    built = time.perf_counter() - began
    months = [month(ts, end, settings) for end in month_ends()]
    return {
        "months": months,
        "naive_weekly": naive_weekly(ts, settings),
        "naive_weekly_short_window": {
            "train_window_days": SHORT_WINDOW_DAYS,
            **naive_weekly(
                ts, settings.replace(monitor=replace(settings.monitor, train_window_days=SHORT_WINDOW_DAYS))
            ),
        },
        "months_beating_baseline": sum(m["beats_baseline"] for m in months),
        "training_set_s": round(built, 1),
        "params": asdict(settings.train),
        "train_window_days": settings.monitor.train_window_days,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """Each month's AUC and Brier beside the baseline's (ratio: candidate / baseline)."""
    out = []
    for m in result["months"]:
        c, b = m["candidate"], m["baseline"]
        out.append((f"{m['month']} AUC: candidate vs logistic baseline", c["auc"], b["auc"], c["auc"] / b["auc"]))
        out.append(
            (f"{m['month']} Brier: candidate vs logistic baseline", c["brier"], b["brier"], c["brier"] / b["brier"])
        )
    for q in result["naive_weekly"]["quarters"]:
        label = f"{q['quarter']} naive weekly loop vs static champion"
        out.append((f"{label}: AUC", q["naive_auc"], q["static_auc"], q["naive_auc"] / q["static_auc"]))
        out.append((f"{label}: Brier", q["naive_brier"], q["static_brier"], q["naive_brier"] / q["static_brier"]))
    return out
