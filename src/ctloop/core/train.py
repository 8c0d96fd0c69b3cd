"""Training: a time split of the point-in-time training set, the model, its baseline, ONNX.

The model is scikit-learn's ``HistGradientBoostingClassifier`` on numeric features only
(categories arrive already encoded as trailing delay rates: skl2onnx converts native
categorical splits wrongly, up to 0.96 in probability). It crosses to the serving env as ONNX.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctloop.config import MonitorSettings, TrainParams
from ctloop.contract import buckets
from ctloop.contract.layout import METADATA_FILE, ONNX_FILE
from ctloop.core import clock
from ctloop.core.drift_normal import normal_psi
from ctloop.core.evaluate import LABEL
from ctloop.core.features import as_float_matrix

if TYPE_CHECKING:  # scikit-learn costs ~2.7 s to import: only the steps that fit or load pay it
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

MODEL_FILE = "model.skops"
REFERENCE_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TRUSTED_SKOPS_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
"""Reviewed: the only non-default type an HGB model holds; our own pipeline wrote the file."""


SPLIT_COLUMNS = ("sched_dep_local", LABEL)
"""What a time split, a fit and a score need besides the features."""


class TrainingError(RuntimeError):
    """The training set cannot produce a model (empty split, one class only, ...)."""


@dataclass(frozen=True)
class TrainingSet:
    """Feature rows plus the label and the columns slices and splits need."""

    frame: pd.DataFrame
    feature_names: list[str]
    layout: dict[str, Any] = field(default_factory=dict)
    """Where each feature comes from (``featurestore.service_layout``); serving reads it."""

    def save(self, folder: Path) -> None:
        """Write ``training_set.parquet``, ``feature_names.json`` and ``feature_layout.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(folder / "training_set.parquet", index=False)
        (folder / "feature_names.json").write_text(json.dumps(self.feature_names))
        (folder / "feature_layout.json").write_text(json.dumps(self.layout, indent=2))

    @classmethod
    def load(cls, folder: Path, columns: Sequence[str] | None = None) -> TrainingSet:
        """Read what :meth:`save` wrote: every column, or the features plus ``columns``.

        A step that only splits, fits or scores skips the flight keys (``flight_id``,
        ``route``): one Python string per row each, the costliest columns to read.
        """
        names = json.loads((folder / "feature_names.json").read_text())
        layout_file = folder / "feature_layout.json"
        layout = json.loads(layout_file.read_text()) if layout_file.exists() else {}
        path = folder / "training_set.parquet"
        wanted = None
        if columns is not None:
            import pyarrow.parquet as pq

            keep = {*names, *columns}
            wanted = [name for name in pq.read_schema(path).names if name in keep]  # the file's order
        return cls(pd.read_parquet(path, columns=wanted), list(names), layout)


def build_training_set(
    flights: pd.DataFrame, features: pd.DataFrame, feature_names: list[str], layout: dict[str, Any] | None = None
) -> TrainingSet:
    """Attach label and slice columns to the retrieved features (joined on ``flight_id``).

    Features retrieved for ``flights`` come back in their order (``historical_features``): then
    the columns are put side by side, a join without its hashing; in any other order, joined.
    """
    keep = ["flight_id", "sched_dep_local", "carrier", "origin", "route", LABEL]
    rows = flights.loc[:, keep].reset_index(drop=True)
    ids = rows["flight_id"].to_numpy()
    if (
        len(features) == len(rows)
        and np.array_equal(features["flight_id"].to_numpy(), ids)
        and rows["flight_id"].is_unique
    ):
        frame = pd.concat([rows, features.drop(columns="flight_id").reset_index(drop=True)], axis=1)
    else:
        frame = rows.merge(features, on="flight_id", how="inner", validate="one_to_one")
    if len(frame) != len(flights):
        raise TrainingError(f"features found for {len(frame)} of {len(flights)} flights")
    return TrainingSet(frame, feature_names, layout or {})


def eval_start(end: date, eval_days: int) -> date:
    """First day of the evaluation window: the last ``eval_days`` days of the window."""
    return end - timedelta(days=eval_days - 1)


def split(ts: TrainingSet, end: date, eval_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time split: fit on days before the evaluation window, evaluate on it."""
    held_out = clock.departs_from(ts.frame["sched_dep_local"], eval_start(end, eval_days))
    fit, held = ts.frame.loc[~held_out], ts.frame.loc[held_out]
    for name, part in (("fit", fit), ("evaluation", held)):
        if part.empty:
            raise TrainingError(f"the {name} split is empty (window too short for eval_days={eval_days})")
        if part[LABEL].nunique() < 2:
            raise TrainingError(f"the {name} split has a single class")
    return fit.reset_index(drop=True), held.reset_index(drop=True)


def fit_model(frame: pd.DataFrame, feature_names: list[str], params: TrainParams) -> HistGradientBoostingClassifier:
    """Fit the delay classifier with a fixed seed (no early stopping: deterministic)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    empty = [name for name in feature_names if frame[name].isna().all()]
    if empty:  # scikit-learn 1.9 fails on these with "window shape cannot be larger than input array"
        raise TrainingError(f"feature(s) missing on every training row: {', '.join(empty)}")
    model = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        l2_regularization=params.l2_regularization,
        min_samples_leaf=params.min_samples_leaf,
        early_stopping=False,
        random_state=params.seed,
    )
    model.fit(as_float_matrix(frame, feature_names), frame[LABEL].to_numpy())
    return model


_HOUR_TEXT = np.array([f"{hour:02d}" for hour in range(24)], dtype=object)


def baseline_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Baseline inputs: scheduled hour (as a category) and carrier."""
    hour = _HOUR_TEXT[clock.local_hours(frame["sched_dep_local"])]  # "05": as the text reads
    return pd.DataFrame({"hour": hour, "carrier": frame["carrier"].astype(str)}, index=frame.index)


def fit_baseline(frame: pd.DataFrame, seed: int) -> Pipeline:
    """Logistic regression on one-hot hour + carrier: the floor the model must clear."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["hour", "carrier"])])
    model = Pipeline([("encode", encode), ("logreg", LogisticRegression(max_iter=500, random_state=seed))])
    model.fit(baseline_features(frame), frame[LABEL].to_numpy())
    return model


def predict(model: HistGradientBoostingClassifier, frame: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """Positive-class probabilities."""
    return np.asarray(model.predict_proba(as_float_matrix(frame, feature_names))[:, 1], dtype=np.float64)


def to_onnx(model: HistGradientBoostingClassifier, n_features: int) -> bytes:
    """Export with probabilities as a plain tensor (no ZipMap)."""
    from skl2onnx import to_onnx as convert

    sample = np.zeros((1, n_features), dtype=np.float32)
    with warnings.catch_warnings():
        # skl2onnx 1.20 writes leaf flags as Python bools into an int field; protobuf 6.33 warns
        # (and would refuse from 7.34, which the lock keeps out). The values are right: 0 or 1.
        warnings.filterwarnings("ignore", message=r"Field onnx\.AttributeProto\.ints: Expected an int, got a boolean")
        onx = convert(model, sample, options={id(model): {"zipmap": False}})
    return bytes(onx.SerializeToString())


def onnx_predictor(onnx_model: bytes | Path) -> Callable[[np.ndarray], np.ndarray]:
    """One ONNX session (what serving runs), as a function of a feature matrix to positive-class probabilities."""
    import onnxruntime as ort

    source = str(onnx_model) if isinstance(onnx_model, Path) else onnx_model
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict_(matrix: np.ndarray) -> np.ndarray:
        outputs = session.run(None, {name: matrix.astype(np.float32)})
        probabilities = next(o for o in outputs if getattr(o, "ndim", 0) == 2)
        return np.asarray(probabilities[:, 1], dtype=np.float64)

    return predict_


def onnx_predict(onnx_model: bytes | Path, matrix: np.ndarray) -> np.ndarray:
    """Positive-class probabilities from an ONNX model (what serving runs)."""
    return onnx_predictor(onnx_model)(matrix)


def model_view(column: pd.Series) -> pd.Series:
    """A feature as the model sees it: rounded to float32 (serving buckets the same float32 values)."""
    return column.astype("float64").astype("float32").astype("float64")


def reference_quantiles(frame: pd.DataFrame, feature_names: list[str]) -> dict[str, list[float]]:
    """Training-reference cut points per feature (drift buckets in serving)."""
    out: dict[str, list[float]] = {}
    for name in feature_names:
        values = model_view(frame[name]).dropna()
        cuts = np.unique(np.quantile(values, REFERENCE_QUANTILES)) if len(values) else np.array([])
        out[name] = [float(c) for c in cuts]
    return out


def reference_profile(
    frame: pd.DataFrame,
    feature_names: list[str],
    cuts: dict[str, list[float]],
    probabilities: np.ndarray,
    drift_window_s: float | None = None,
) -> dict[str, Any]:
    """Share of reference rows per drift bucket, per feature and for predictions (``ctloop.contract.buckets``).

    With ``drift_window_s``, also each feature's normal PSI over windows that long within
    ``frame`` (``ctloop.core.drift_normal``), under ``buckets.NORMAL``.
    """
    features = {name: bucket_fractions(cuts[name], model_view(frame[name]).to_numpy()) for name in feature_names}
    prediction = bucket_fractions(list(buckets.PREDICTION_CUTS), probabilities)
    profile = {"features": features, "prediction": {"cuts": list(buckets.PREDICTION_CUTS), "fractions": prediction}}
    if drift_window_s is not None:
        profile[buckets.NORMAL] = normal_psi(frame, feature_names, cuts, probabilities, drift_window_s, model_view)
    return profile


def bucket_fractions(cuts: list[float], values: np.ndarray) -> dict[str, float]:
    """:func:`ctloop.contract.buckets.fractions`, vectorized for a year of rows (the same rule, tested for parity)."""
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(np.asarray(cuts), values[~missing], side="right"), minlength=len(cuts) + 1)
    total = max(len(values), 1)
    shares = {str(i): float(n) / total for i, n in enumerate(counts)}
    shares[buckets.MISSING] = float(missing.sum()) / total
    return shares


@dataclass
class ModelBundle:
    """A trained model, its ONNX export and metadata, as written to a model folder."""

    model: HistGradientBoostingClassifier
    onnx: bytes
    metadata: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        """Write the sklearn model (skops), ONNX and ``metadata.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        import skops.io as sio  # ~1.2 s to import (it walks scikit-learn): only where a model is saved

        sio.dump(self.model, folder / MODEL_FILE)
        (folder / ONNX_FILE).write_bytes(self.onnx)
        (folder / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> ModelBundle:
        """Read a model folder back."""
        import skops.io as sio

        unexpected = sorted(set(sio.get_untrusted_types(file=folder / MODEL_FILE)) - set(TRUSTED_SKOPS_TYPES))
        if unexpected:
            raise TrainingError(f"refusing to load untrusted types from {folder}: {unexpected}")
        model = sio.load(folder / MODEL_FILE, trusted=TRUSTED_SKOPS_TYPES)
        metadata = json.loads((folder / METADATA_FILE).read_text())
        return cls(model, (folder / ONNX_FILE).read_bytes(), metadata)

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns in order."""
        return list(self.metadata["feature_names"])


def train(
    ts: TrainingSet,
    end: date,
    params: TrainParams,
    drift_window_s: float | None = None,
    tuning: dict[str, Any] | None = None,
) -> tuple[ModelBundle, dict[str, float]]:
    """Fit on the fit split and export; return the bundle and training metrics.

    The drift reference (bucket shares and each feature's normal PSI over windows of
    ``drift_window_s``, the monitor's window: by default ``[monitor] window``'s default) comes
    from the fit split alone. ``tuning``: the tuning step's search (``ctloop.core.tune``) that
    chose ``params``, kept in the metadata for lineage.
    """
    if drift_window_s is None:
        drift_window_s = MonitorSettings().window_s
    fit, held = split(ts, end, params.eval_days)
    model = fit_model(fit, ts.feature_names, params)
    onnx_bytes = to_onnx(model, len(ts.feature_names))
    onnx_model = onnx_predictor(onnx_bytes)
    held_matrix = as_float_matrix(held, ts.feature_names)
    parity = float(np.max(np.abs(onnx_model(held_matrix) - predict(model, held, ts.feature_names))))
    cuts = reference_quantiles(fit, ts.feature_names)
    metadata = {
        "feature_names": ts.feature_names,
        "feature_layout": ts.layout,
        "params": asdict(params),
        "fit_rows": len(fit),
        "fit_start": str(fit["sched_dep_local"].min())[:10],
        "fit_end": str(fit["sched_dep_local"].max())[:10],
        "positive_rate": float(fit[LABEL].mean()),
        "reference_quantiles": cuts,
        "reference_fractions": reference_profile(
            fit,
            ts.feature_names,
            cuts,
            onnx_model(as_float_matrix(fit, ts.feature_names)),
            drift_window_s,
        ),
        "onnx_max_abs_diff": parity,  # ONNX vs scikit-learn on the evaluation rows
        "tuning": tuning,
    }
    metrics = {"fit_rows": float(len(fit)), "fit_positive_rate": float(fit[LABEL].mean())}
    return ModelBundle(model, onnx_bytes, metadata), metrics
