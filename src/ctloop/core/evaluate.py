"""Evaluation: overall and per-slice scores, ROC points, and an HTML report."""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the gate reads EvalResult documents and needs neither
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

LABEL = "delayed"
TIME_OF_DAY = "time_of_day"
SLICE_COLUMNS = ("carrier", "origin", TIME_OF_DAY)
"""Slices every evaluation scores and the gate judges: airline, departure airport, and the part of
the day the flight is scheduled to leave (delays build up through the day: an evening slice can
collapse while the day's average looks fine)."""
DAY_PARTS = (("night", 0), ("morning", 5), ("midday", 10), ("afternoon", 14), ("evening", 18), ("night", 22))
"""Parts of the day by the scheduled local departure hour: each from its hour to the next one's."""

NAN = float("nan")


@dataclass(frozen=True)
class Scores:
    """Scores of one model on one set of rows (NaN where undefined, e.g. one class)."""

    rows: int
    positive_rate: float
    auc: float
    log_loss: float
    brier: float

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for metrics logging."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EvalResult:
    """Overall scores plus scores per slice (``carrier=AA``, ``origin=JFK``)."""

    overall: Scores
    slices: dict[str, Scores] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"overall": self.overall.as_dict(), "slices": {k: v.as_dict() for k, v in self.slices.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict`."""
        return cls(_scores(data["overall"]), {k: _scores(v) for k, v in data["slices"].items()})


def _scores(values: dict[str, Any]) -> Scores:
    """Scores from JSON, where every number came back a float: ``rows`` is a count again."""
    return Scores(**{**values, "rows": int(values["rows"])})


def score(y: np.ndarray, p: np.ndarray) -> Scores:
    """AUC, log-loss and Brier; NaN when the rows hold one class or predictions are not finite.

    The same numbers as scikit-learn's ``roc_auc_score``, ``log_loss`` (on probabilities clipped
    to [1e-7, 1 - 1e-7]) and ``brier_score_loss`` (tested against them), in numpy alone: an
    evaluation scores every slice and every feature's permutation, dozens of calls, and
    scikit-learn's input checks cost more than the sums.
    """
    import numpy as np

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    rows = len(y)
    if rows == 0:
        return Scores(0, NAN, NAN, NAN, NAN)
    positives = int(y.sum())
    rate = positives / rows
    if not np.all(np.isfinite(p)):
        return Scores(rows, rate, NAN, NAN, NAN)
    auc = _auc(y, p, positives) if 0 < positives < rows else NAN
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    ll = float(-np.mean(np.where(y == 1, np.log(clipped), np.log1p(-clipped))))
    return Scores(rows, rate, auc, ll, float(np.mean((p - y) ** 2)))


def _auc(y: np.ndarray, p: np.ndarray, positives: int) -> float:
    """ROC AUC as the Mann-Whitney statistic: the positives' mean rank, ties at their average rank."""
    import numpy as np

    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, per distinct value
    negatives = len(y) - positives
    rank_sum = float(average_rank[inverse][y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def time_of_day(sched_dep_local: pd.Series) -> pd.Series:
    """The part of the day (:data:`DAY_PARTS`) of each scheduled local departure (ISO text)."""
    import numpy as np
    import pandas as pd

    from ctloop.core.clock import local_hours

    hour = local_hours(sched_dep_local)
    starts = np.array([start for _, start in DAY_PARTS])
    names = np.array([name for name, _ in DAY_PARTS])
    return pd.Series(names[np.searchsorted(starts, hour, side="right") - 1], index=sched_dep_local.index)


def evaluate(frame: pd.DataFrame, p: np.ndarray, slice_columns: tuple[str, ...] = SLICE_COLUMNS) -> EvalResult:
    """Scores overall and for each value of each slice column (``time_of_day`` from ``sched_dep_local``)."""
    if TIME_OF_DAY in slice_columns and TIME_OF_DAY not in frame:
        frame = frame.assign(**{TIME_OF_DAY: time_of_day(frame["sched_dep_local"])})
    y = frame[LABEL].to_numpy()
    slices: dict[str, Scores] = {}
    for column in slice_columns:
        for value, idx in frame.groupby(column, observed=True).indices.items():
            slices[f"{column}={value}"] = score(y[idx], p[idx])
    return EvalResult(score(y, p), dict(sorted(slices.items())))


def slice_metrics(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Each slice's rows, AUC and Brier as flat metric names (MLflow's rules: no ``=``).

    ``{prefix}slice.carrier.AA.auc`` for the slice ``carrier=AA`` of an :meth:`EvalResult.to_dict`.
    """
    out: dict[str, float] = {}
    for name, scores in result.get("slices", {}).items():
        column, _, value = name.partition("=")
        for metric in ("rows", "auc", "brier"):
            out[f"{prefix}slice.{column}.{value}.{metric}"] = float(scores[metric])
    return out


def roc_points(y: np.ndarray, p: np.ndarray, max_points: int = 200) -> tuple[list[float], list[float], list[float]]:
    """A thinned ROC curve (false-positive rate, true-positive rate, threshold) for KFP's UI."""
    import numpy as np
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    thresholds = np.clip(thr[keep], 0.0, 1.0)  # roc_curve's first threshold is +inf
    return fpr[keep].tolist(), tpr[keep].tolist(), thresholds.tolist()


def confusion(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> list[list[int]]:
    """Confusion matrix rows ``[[tn, fp], [fn, tp]]`` at ``threshold``."""
    pred = (p >= threshold).astype(int)
    return [
        [int(((y == 0) & (pred == 0)).sum()), int(((y == 0) & (pred == 1)).sum())],
        [int(((y == 1) & (pred == 0)).sum()), int(((y == 1) & (pred == 1)).sum())],
    ]


def slice_kinds(slices: dict[str, Any]) -> dict[str, list[str]]:
    """Slice names by column, in :data:`SLICE_COLUMNS` order; parts of the day in the day's order."""
    order = {name: i for i, name in enumerate(dict.fromkeys(name for name, _ in DAY_PARTS[1:]))}  # morning first
    kinds: dict[str, list[str]] = {}
    for name in slices:
        kinds.setdefault(name.partition("=")[0], []).append(name)
    for kind, names in kinds.items():
        if kind == TIME_OF_DAY:
            names.sort(key=lambda n: order.get(n.partition("=")[2], len(order)))
    rank = {column: i for i, column in enumerate(SLICE_COLUMNS)}
    return dict(sorted(kinds.items(), key=lambda kv: rank.get(kv[0], len(rank))))


IMPORTANCE_ROWS = 10_000
"""Permutation importance is measured on at most this many rows of the evaluation window (seeded)."""


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    matrix: np.ndarray,
    y: np.ndarray,
    names: list[str],
    seed: int,
    max_rows: int = IMPORTANCE_ROWS,
) -> dict[str, float]:
    """Each feature's AUC drop on these rows when its column alone is shuffled (0: the model ignores it).

    Permutation rather than dropping and refitting: one model, one prediction per feature, so it
    runs in every evaluation. A feature at or below 0 adds nothing the model uses on this window.
    Above ``max_rows`` rows, a seeded sample of that many is shuffled and scored (as
    scikit-learn's ``max_samples``): one prediction per feature of a month of flights costs more
    than the rest of the evaluation, and the sample's AUC drops differ from the whole month's by
    about 0.003.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        rows = np.sort(rng.choice(len(y), size=max_rows, replace=False))
        matrix, y = matrix[rows], y[rows]
    base = score(y, predict(matrix)).auc
    out = {}
    for j, name in enumerate(names):
        shuffled = matrix.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        out[name] = round(base - score(y, predict(shuffled)).auc, 5)
    return out


def _fmt(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def report_html(document: dict[str, Any]) -> str:
    """A self-contained evaluation report: overall comparison and slices."""
    models = [(name, document[name]) for name in ("candidate", "champion", "baseline") if document.get(name)]
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in models)
    rows = []
    for metric in ("rows", "positive_rate", "auc", "log_loss", "brier"):
        cells = "".join(
            f"<td>{int(m['overall'][metric]) if metric == 'rows' else _fmt(m['overall'][metric])}</td>"
            for _, m in models
        )
        rows.append(f"<tr><th>{metric}</th>{cells}</tr>")
    champion_slices = (document.get("champion") or {}).get("slices", {})
    slice_tables = []
    for kind, names in slice_kinds(document["candidate"]["slices"]).items():
        slice_rows = []
        for name in names:
            s = document["candidate"]["slices"][name]
            champ = champion_slices.get(name, {}).get("auc", NAN)
            slice_rows.append(
                f"<tr><td>{html.escape(name.partition('=')[2])}</td><td>{int(s['rows']):,}</td>"
                f"<td>{_fmt(s['auc'])}</td><td>{_fmt(champ)}</td><td>{_fmt(s['brier'])}</td></tr>"
            )
        slice_tables.append(
            f"<h3>{html.escape(kind.replace('_', ' '))}</h3><table><tr><th>{html.escape(kind)}</th><th>rows</th>"
            f"<th>AUC</th><th>champion AUC</th><th>Brier</th></tr>{''.join(slice_rows)}</table>"
        )
    importance = document.get("feature_importance") or {}
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])
    importance_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:+.4f}</td></tr>" for k, v in ranked)
    importance_table = (
        "<h2>Feature importance</h2><p>AUC drop when the feature alone is shuffled; 0 or less: the model "
        f"gains nothing from it on this window.</p><table><tr><th>feature</th><th>AUC drop</th></tr>{importance_rows}"
        "</table>"
        if ranked
        else ""
    )
    window = html.escape(str(document.get("evaluation_window", "")))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ctloop evaluation</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>Evaluation</h1><p>window {window}</p>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Slices</h2>{''.join(slice_tables)}"
        f"{importance_table}"
        "</body></html>"
    )
