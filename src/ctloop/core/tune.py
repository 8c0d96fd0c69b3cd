"""The tuning step: a small grid search over the model's hyper-parameters, chosen on validation days.

The training window splits three ways in time, and each part has one use:

    fit split (train's) = search fit days | validation days (``[tune] validation_days``)
    evaluation window   = the last ``[train] eval_days`` (the evaluate step's, never seen here)

Each combination of ``[tune]``'s values is fitted on a seeded sample of at most ``max_rows``
search fit rows and scored on every validation row; the lowest log-loss wins (then AUC, then the
grid's order). The train step fits the winner on the whole fit split, and the model's metadata
and its MLflow run record the chosen values and every trial's scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np

from ctloop.config import TrainParams, TuneSettings
from ctloop.core import clock
from ctloop.core.evaluate import LABEL, score
from ctloop.core.train import TrainingSet, eval_start, fit_model, predict, split

SEARCHED = ("learning_rate", "max_leaf_nodes")
"""The ``[train]`` parameters the search sets."""


@dataclass(frozen=True)
class Trial:
    """One combination and its validation scores."""

    params: dict[str, Any]
    log_loss: float
    auc: float
    brier: float

    @property
    def name(self) -> str:
        """``learning_rate_0.05.max_leaf_nodes_31``: a label MLflow and KFP take as a metric name."""
        return ".".join(f"{k}_{v}" for k, v in self.params.items())


@dataclass(frozen=True)
class Tuning:
    """What the search chose, on which days, and every trial."""

    params: TrainParams
    """``[train]``'s parameters with the chosen values set."""
    validation: str = ""
    """``first..last`` validation day; empty when nothing was searched."""
    fit_rows: int = 0
    trials: list[Trial] = field(default_factory=list)
    skipped: str = ""
    """Why nothing was searched (the search disabled, or too few days or classes)."""

    @property
    def chosen(self) -> dict[str, Any]:
        """The searched parameters' values as the model is trained."""
        return {name: getattr(self.params, name) for name in SEARCHED}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the step's output, the model's metadata and lineage."""
        return {
            "chosen": self.chosen,
            "params": asdict(self.params),
            "validation": self.validation,
            "fit_rows": self.fit_rows,
            "trials": [asdict(t) for t in self.trials],
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tuning:
        """Inverse of :meth:`to_dict`."""
        return cls(
            TrainParams(**data["params"]),
            data["validation"],
            int(data["fit_rows"]),
            [Trial(**t) for t in data["trials"]],
            data["skipped"],
        )


def grid(settings: TuneSettings) -> list[dict[str, Any]]:
    """Every combination of the searched values, in a fixed order."""
    return [
        {"learning_rate": lr, "max_leaf_nodes": n} for lr in settings.learning_rate for n in settings.max_leaf_nodes
    ]


def search(ts: TrainingSet, end: date, params: TrainParams, settings: TuneSettings) -> Tuning:
    """Choose the searched parameters on the validation days of ``ts``'s fit split (module docstring)."""
    if not settings.enabled:
        return Tuning(params, skipped="[tune] enabled = false")
    fit, _ = split(ts, end, params.eval_days)  # the evaluation window is left out here
    evaluation = eval_start(end, params.eval_days)
    first_validation = evaluation - timedelta(days=settings.validation_days)
    validating = clock.departs_from(fit["sched_dep_local"], first_validation)
    early, late = fit.loc[~validating], fit.loc[validating]
    for name, part in (("search fit", early), ("validation", late)):
        if part.empty or part[LABEL].nunique() < 2:
            return Tuning(params, skipped=f"the {name} days hold {len(part)} flight(s) of one class or none")
    if len(early) > settings.max_rows:
        early = early.sample(n=settings.max_rows, random_state=params.seed)
    y = late[LABEL].to_numpy()
    trials = []
    for point in grid(settings):
        model = fit_model(early, ts.feature_names, replace(params, **point))
        s = score(y, predict(model, late, ts.feature_names))
        trials.append(Trial(point, float(s.log_loss), float(s.auc), float(s.brier)))
    best = min(range(len(trials)), key=lambda i: (trials[i].log_loss, -trials[i].auc, i))
    return Tuning(
        replace(params, **trials[best].params),
        f"{first_validation.isoformat()}..{(evaluation - timedelta(days=1)).isoformat()}",
        len(early),
        trials,
    )


def trial_metrics(tuning: Tuning) -> dict[str, float]:
    """Each trial's validation scores as flat metric names (``tune.<trial>.log_loss``)."""
    out: dict[str, float] = {}
    for trial in tuning.trials:
        for metric in ("log_loss", "auc", "brier"):
            value = getattr(trial, metric)
            if not np.isnan(value):
                out[f"tune.{trial.name}.{metric}"] = value
    return out
