"""Training core: time split, determinism, ONNX parity (NaN included), model folder round trip."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ctloop.config import TrainParams
from ctloop.core import train as core
from ctloop.core.features import as_float_matrix

NAMES = ["x1", "x2", "x3"]
PARAMS = TrainParams(eval_days=10, max_iter=40, seed=3)
END = date(2013, 2, 9)


@pytest.fixture(scope="module")
def ts():
    rng = np.random.default_rng(0)
    n = 4000
    days = [(date(2013, 1, 1) + timedelta(days=int(d))).isoformat() for d in rng.integers(0, 40, n)]
    x = rng.normal(size=(n, 3))
    x[rng.random(n) < 0.1, 1] = np.nan  # missing values, as Feast returns for unknown keys
    logit = 1.5 * x[:, 0] - np.nan_to_num(x[:, 1]) - 1.0
    frame = pd.DataFrame(x, columns=NAMES).assign(
        flight_id=[f"f{i}" for i in range(n)],
        sched_dep_local=[f"{d}T08:30:00" for d in days],
        carrier=rng.choice(["AA", "B6"], n),
        origin=rng.choice(["JFK", "EWR"], n),
        delayed=(rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8"),
    )
    return core.TrainingSet(frame, NAMES)


def test_split_is_by_time(ts):
    """Every evaluation row is later than every fit row; the evaluation window is the last days."""
    fit, held = core.split(ts, END, PARAMS.eval_days)
    assert fit["sched_dep_local"].max() < held["sched_dep_local"].min()
    assert held["sched_dep_local"].min()[:10] >= core.eval_start(END, PARAMS.eval_days).isoformat()


def test_split_refuses_an_empty_evaluation_window(ts):
    with pytest.raises(core.TrainingError, match="evaluation split is empty"):
        core.split(ts, date(2014, 1, 1), 5)


def test_split_refuses_a_single_class(ts):
    one_class = core.TrainingSet(ts.frame.assign(delayed=np.int8(0)), NAMES)
    with pytest.raises(core.TrainingError, match="single class"):
        core.split(one_class, END, PARAMS.eval_days)


def test_training_is_deterministic(ts):
    """The same data and seed give the same probabilities."""
    a, _ = core.train(ts, END, PARAMS)
    b, _ = core.train(ts, END, PARAMS)
    x = as_float_matrix(ts.frame, NAMES)
    np.testing.assert_array_equal(a.model.predict_proba(x), b.model.predict_proba(x))


def test_onnx_matches_sklearn_with_missing_values(ts):
    """ONNX and scikit-learn agree within 1e-5 on every row, NaN features included."""
    bundle, _ = core.train(ts, END, PARAMS)
    x = as_float_matrix(ts.frame, NAMES)
    assert np.isnan(x).any()
    diff = np.abs(core.onnx_predict(bundle.onnx, x) - core.predict(bundle.model, ts.frame, NAMES))
    assert diff.max() < 1e-5


def test_model_folder_round_trip(ts, tmp_path):
    """A saved model folder loads back with the same predictions and its serving metadata."""
    bundle, metrics = core.train(ts, END, PARAMS)
    bundle.save(tmp_path / "m")
    loaded = core.ModelBundle.load(tmp_path / "m")
    np.testing.assert_array_equal(
        core.predict(loaded.model, ts.frame, NAMES), core.predict(bundle.model, ts.frame, NAMES)
    )
    assert loaded.feature_names == NAMES
    assert set(loaded.metadata["reference_quantiles"]) == set(NAMES)
    assert all(len(q) > 3 for q in loaded.metadata["reference_quantiles"].values())
    assert metrics["fit_rows"] == loaded.metadata["fit_rows"]


def test_model_beats_the_baseline_when_features_carry_signal(ts):
    """The hour+carrier baseline cannot see x1/x2; the model can."""
    from ctloop.core.evaluate import score

    fit, held = core.split(ts, END, PARAMS.eval_days)
    bundle, _ = core.train(ts, END, PARAMS)
    base = core.fit_baseline(fit, PARAMS.seed)
    y = held["delayed"].to_numpy()
    model_auc = score(y, core.predict(bundle.model, held, NAMES)).auc
    base_auc = score(y, base.predict_proba(core.baseline_features(held))[:, 1]).auc
    assert model_auc > base_auc + 0.1


def test_a_feature_missing_on_every_row_is_a_clear_error(ts):
    """An all-missing feature names itself instead of scikit-learn's binning error."""
    broken = ts.frame.assign(x2=np.nan)
    with pytest.raises(core.TrainingError, match="missing on every training row: x2"):
        core.fit_model(broken, NAMES, PARAMS)
