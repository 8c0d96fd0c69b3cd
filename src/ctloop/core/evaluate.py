"""Evaluation: overall and per-slice scores, ROC points, and an HTML report."""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the gate reads EvalResult documents and needs neither
    import numpy as np
    import pandas as pd

LABEL = "delayed"
SLICE_COLUMNS = ("carrier", "origin")

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
    """AUC, log-loss and Brier; NaN when the rows hold one class or predictions are not finite."""
    import numpy as np
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    rows = len(y)
    if rows == 0:
        return Scores(0, NAN, NAN, NAN, NAN)
    rate = float(y.mean())
    if not np.all(np.isfinite(p)):
        return Scores(rows, rate, NAN, NAN, NAN)
    both = 0 < y.sum() < rows
    auc = float(roc_auc_score(y, p)) if both else NAN
    ll = float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
    return Scores(rows, rate, auc, ll, float(brier_score_loss(y, p)))


def evaluate(frame: pd.DataFrame, p: np.ndarray, slice_columns: tuple[str, ...] = SLICE_COLUMNS) -> EvalResult:
    """Scores overall and for each value of each slice column."""
    y = frame[LABEL].to_numpy()
    slices: dict[str, Scores] = {}
    for column in slice_columns:
        for value, idx in frame.groupby(column, observed=True).indices.items():
            slices[f"{column}={value}"] = score(y[idx], p[idx])
    return EvalResult(score(y, p), dict(sorted(slices.items())))


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
    slice_rows = []
    champion_slices = (document.get("champion") or {}).get("slices", {})
    for name, s in document["candidate"]["slices"].items():
        champ = champion_slices.get(name, {}).get("auc", NAN)
        slice_rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{int(s['rows'])}</td>"
            f"<td>{_fmt(s['auc'])}</td><td>{_fmt(champ)}</td><td>{_fmt(s['brier'])}</td></tr>"
        )
    window = html.escape(str(document.get("evaluation_window", "")))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ctloop evaluation</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>Evaluation</h1><p>window {window}</p>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
        "<h2>Slices</h2><table><tr><th>slice</th><th>rows</th><th>AUC</th>"
        f"<th>champion AUC</th><th>Brier</th></tr>{''.join(slice_rows)}</table>"
        "</body></html>"
    )
