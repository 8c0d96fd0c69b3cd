"""Each feature's normal drift: how far a window of it moves within the training data itself.

Weather, trailing delay rates and the month change every week by nature, so one week of them
against a reference of many weeks always has a high population stability index (PSI): judged
against a fixed threshold they look drifted every week. Their *normal* PSI is measured here, at
training time, on the rows the reference is built from (the fit split, nothing later): the fit
days are cut into whole windows as long as the monitor's (``[monitor] window``), and each
window's bucket shares are compared with those of every other fit row (leave one out: a window
never judges itself), in the same drift buckets serving counts in. The normal is a high quantile
(:data:`NORMAL_QUANTILE`) of those PSIs. The monitor and the alerts then judge a window's PSI
*above* its normal (``ctloop.core.monitor``, ``ctloop.app.alert_rules``): a calm feature keeps a
normal near zero and fires as before, a feature that moves weekly fires when it moves more than
it did in training.

The result is stored with the model, inside its ``reference_fractions`` (key
``ctloop.contract.buckets.NORMAL``), so whatever reads the reference (serving's metrics, the
monitor, the report) reads the normal of the same version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ctloop.contract import buckets
from ctloop.core.monitor import PSI_FLOOR

NORMAL_QUANTILE = 0.9
"""The normal is this quantile of the windows' PSIs (one window in ten may exceed it in training)."""
MIN_WINDOWS = 3
"""Fewer whole windows in the fit split: no normal is recorded (the monitor judges raw PSI)."""


def window_index(times: pd.Series, window_s: float) -> tuple[np.ndarray, int]:
    """Each row's window (counted from midnight of the first day) and how many windows are whole.

    ``times``: local scheduled departures as ISO text (``sched_dep_local``). A window is whole when
    it ends by midnight after the last day; rows of the trailing partial window get ``-1``.
    """
    stamps = pd.to_datetime(times)
    first = stamps.min().normalize()
    end = stamps.max().normalize() + pd.Timedelta(days=1)
    seconds = ((stamps - first) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    index = np.floor(seconds / window_s).astype(np.int64)
    whole = int((end - first) / pd.Timedelta(seconds=window_s))
    index[index >= whole] = -1
    return index, whole


def bucket_index(cuts: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Each value's drift bucket as a column number: ``0 .. len(cuts)``, missing last (``len(cuts) + 1``)."""
    out = np.searchsorted(np.asarray(cuts, dtype=np.float64), values, side="right")
    out[np.isnan(values)] = len(cuts) + 1
    return out


def leave_one_out_psi(window: np.ndarray, buckets_of: np.ndarray, windows: int, n_buckets: int) -> np.ndarray:
    """PSI of each window's bucket shares against those of all other rows (window ``-1``: reference only)."""
    counts = np.zeros((windows + 1, n_buckets), dtype=np.float64)
    np.add.at(counts, (np.where(window < 0, windows, window), buckets_of), 1.0)
    total = counts.sum(axis=0)
    inside = counts[:windows]
    rest = total - inside
    p = np.maximum(inside / np.maximum(inside.sum(axis=1, keepdims=True), 1.0), PSI_FLOOR)
    q = np.maximum(rest / np.maximum(rest.sum(axis=1, keepdims=True), 1.0), PSI_FLOOR)
    psi: np.ndarray = ((p - q) * np.log(p / q)).sum(axis=1)
    return psi


def normal_psi(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    cuts: dict[str, list[float]],
    probabilities: np.ndarray,
    window_s: float,
    view: Any = None,
) -> dict[str, Any]:
    """The normal PSI per feature and of the prediction over the fit rows ``frame``.

    ``view``: how the model sees a column (``ctloop.core.train.model_view``: float32-rounded,
    as serving buckets it); identity when None. Returns ``{"window_s", "quantile", "windows",
    "features": {name: psi}, "prediction": psi}``, with empty ``features`` and no ``prediction``
    when the fit split holds fewer than :data:`MIN_WINDOWS` whole windows.
    """
    window, whole = window_index(frame["sched_dep_local"], window_s)
    out: dict[str, Any] = {"window_s": float(window_s), "quantile": NORMAL_QUANTILE, "windows": whole, "features": {}}
    if whole < MIN_WINDOWS:
        return out
    for name in feature_names:
        column = frame[name] if view is None else view(frame[name])
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        psis = leave_one_out_psi(window, bucket_index(cuts[name], values), whole, len(cuts[name]) + 2)
        out["features"][name] = round(float(np.quantile(psis, NORMAL_QUANTILE)), 6)
    cuts_p = buckets.PREDICTION_CUTS
    psis = leave_one_out_psi(window, bucket_index(cuts_p, np.asarray(probabilities)), whole, len(cuts_p) + 2)
    out["prediction"] = round(float(np.quantile(psis, NORMAL_QUANTILE)), 6)
    return out
