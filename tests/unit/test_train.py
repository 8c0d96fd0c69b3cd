"""Training core on synthetic data: time split, determinism, ONNX parity with NaN, model folder."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from ctloop.config import TrainParams
from ctloop.contract import layout
from ctloop.core import train as core
from ctloop.core.evaluate import score
from ctloop.core.features import as_float_matrix

NAMES = ["carrier_rate", "wind_speed", "sched_hour"]
PARAMS = TrainParams(seed=5, eval_days=8, max_iter=30, max_leaf_nodes=15, min_samples_leaf=20)
FIRST_DAY = date(2013, 1, 1)
END = date(2013, 2, 9)  # 40 days: fit on Jan 1 .. Feb 1, evaluate on Feb 2 .. Feb 9


@pytest.fixture(scope="module")
def ts():
    """Four thousand flights over 40 days; every feature carries signal, wind_speed has gaps."""
    rng = np.random.default_rng(2013)
    n = 4000
    day = rng.integers(0, 40, n)
    hour = rng.integers(5, 23, n)
    minute = rng.choice([0, 15, 30, 45], n)
    local = [
        f"{(FIRST_DAY + timedelta(days=int(d))).isoformat()}T{h:02d}:{m:02d}:00"
        for d, h, m in zip(day, hour, minute, strict=True)
    ]
    carrier_rate = rng.uniform(0.05, 0.5, n)
    wind = rng.gamma(2.0, 5.0, n)
    wind[rng.random(n) < 0.15] = np.nan  # gaps, as Feast returns for a missing weather hour
    logit = -2.5 + 5.0 * carrier_rate + 0.08 * np.nan_to_num(wind, nan=10.0) + 0.05 * (hour - 12)
    frame = pd.DataFrame(
        {
            "flight_id": [f"f{i}" for i in range(n)],
            "sched_dep_local": pd.array(local, dtype="string"),
            "carrier": pd.array(rng.choice(["AA", "B6", "UA", "DL"], n), dtype="string"),
            "origin": pd.array(rng.choice(["EWR", "JFK", "LGA"], n), dtype="string"),
            "carrier_rate": carrier_rate,
            "wind_speed": wind,
            "sched_hour": hour + minute / 60.0,
            "delayed": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8"),
        }
    )
    return core.TrainingSet(frame, NAMES)


@pytest.fixture(scope="module")
def parts(ts):
    return core.split(ts, END, PARAMS.eval_days)


@pytest.fixture(scope="module")
def fitted(parts):
    fit, _ = parts
    return core.fit_model(fit, NAMES, PARAMS)


def test_split_is_by_time(ts, parts):
    """No evaluation row is earlier than any fit row; together they are every row."""
    fit, held = parts
    assert fit["sched_dep_local"].max() < held["sched_dep_local"].min()
    assert held["sched_dep_local"].min()[:10] == "2013-02-02" == core.eval_start(END, PARAMS.eval_days).isoformat()
    assert fit["sched_dep_local"].max()[:10] == "2013-02-01"
    assert len(fit) + len(held) == len(ts.frame)
    assert set(fit["flight_id"]).isdisjoint(held["flight_id"])


def test_eval_start_is_the_first_of_the_last_days():
    """The evaluation window is the last eval_days days of the window, end included."""
    assert core.eval_start(date(2013, 3, 31), 31) == date(2013, 3, 1)
    assert core.eval_start(date(2013, 3, 31), 1) == date(2013, 3, 31)


def test_split_refuses_an_empty_evaluation_split(ts):
    """A window whose evaluation days hold no rows raises TrainingError."""
    with pytest.raises(core.TrainingError, match="evaluation split is empty"):
        core.split(ts, date(2013, 6, 30), 5)


def test_split_refuses_an_empty_fit_split(ts):
    """Evaluation days covering the whole window leave nothing to fit: TrainingError."""
    with pytest.raises(core.TrainingError, match="fit split is empty"):
        core.split(ts, END, 60)


def test_split_refuses_a_single_class_evaluation_split(ts):
    """An evaluation split with one class raises TrainingError even when the fit split has both."""
    held_days = ts.frame["sched_dep_local"].str.slice(0, 10) >= core.eval_start(END, PARAMS.eval_days).isoformat()
    frame = ts.frame.copy()
    frame.loc[held_days, "delayed"] = np.int8(0)
    with pytest.raises(core.TrainingError, match="evaluation split has a single class"):
        core.split(core.TrainingSet(frame, NAMES), END, PARAMS.eval_days)


def test_fit_model_is_deterministic_for_a_fixed_seed(parts, fitted):
    """Two fits with the same data and seed predict identically; the seed reaches the model."""
    fit, held = parts
    again = core.fit_model(fit, NAMES, PARAMS)
    np.testing.assert_array_equal(core.predict(fitted, held, NAMES), core.predict(again, held, NAMES))
    assert fitted.random_state == PARAMS.seed
    assert fitted.early_stopping is False
    assert fitted.max_iter == PARAMS.max_iter


def test_model_learns_the_signal(parts, fitted):
    """The synthetic signal is learned: held-out AUC clearly above chance and above the baseline."""
    fit, held = parts
    y = held["delayed"].to_numpy()
    model_auc = score(y, core.predict(fitted, held, NAMES)).auc
    base = core.fit_baseline(fit, PARAMS.seed)
    base_auc = score(y, base.predict_proba(core.baseline_features(held))[:, 1]).auc
    assert model_auc > 0.65
    assert model_auc > base_auc


def test_onnx_matches_sklearn_including_nan_rows(ts, fitted):
    """ONNX probabilities equal scikit-learn's within 1e-5, on rows with NaN features and all-NaN rows."""
    frame = ts.frame
    all_nan = frame.iloc[:5].assign(carrier_rate=np.nan, wind_speed=np.nan, sched_hour=np.nan)
    rows = pd.concat([frame, all_nan], ignore_index=True)
    matrix = as_float_matrix(rows, NAMES)
    assert np.isnan(matrix[:, 1]).sum() > 100 and np.isnan(matrix).all(axis=1).sum() == 5
    onnx = core.to_onnx(fitted, len(NAMES))
    p_onnx = core.onnx_predict(onnx, matrix)
    p_sklearn = core.predict(fitted, rows, NAMES)
    assert p_onnx.shape == p_sklearn.shape == (len(rows),)
    assert np.max(np.abs(p_onnx - p_sklearn)) < 1e-5
    assert np.ptp(p_sklearn) > 0.3  # a constant model would agree trivially


def test_train_records_parity_and_metadata(ts):
    """train() fits on the fit split and records the ONNX parity and fit window in the metadata."""
    bundle, metrics = core.train(ts, END, PARAMS)
    meta = bundle.metadata
    assert meta["onnx_max_abs_diff"] < 1e-5
    assert (meta["fit_start"], meta["fit_end"]) == ("2013-01-01", "2013-02-01")
    assert meta["fit_rows"] == metrics["fit_rows"] < len(ts.frame)
    assert meta["params"]["seed"] == PARAMS.seed


def test_model_bundle_round_trip(ts, tmp_path):
    """A saved bundle loads with the same predictions, ONNX bytes and metadata."""
    bundle, _ = core.train(ts, END, PARAMS)
    bundle.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {core.MODEL_FILE, layout.ONNX_FILE, layout.METADATA_FILE}
    loaded = core.ModelBundle.load(tmp_path / "model")
    np.testing.assert_array_equal(
        core.predict(loaded.model, ts.frame, NAMES), core.predict(bundle.model, ts.frame, NAMES)
    )
    assert loaded.onnx == bundle.onnx
    assert loaded.metadata == bundle.metadata
    assert loaded.feature_names == NAMES
    quantiles = loaded.metadata["reference_quantiles"]
    assert sorted(quantiles) == sorted(NAMES)
    for name in NAMES:
        cuts = quantiles[name]
        assert len(cuts) == len(core.REFERENCE_QUANTILES)
        assert cuts == sorted(cuts) and len(set(cuts)) == len(cuts)


def test_reference_quantiles_ignore_missing_values():
    """Cut points use present values only, repeated cuts collapse, an all-missing feature has none."""
    frame = pd.DataFrame({"x": [np.nan, *range(1, 11), np.nan], "flat": [3.0] * 12, "gone": [np.nan] * 12})
    got = core.reference_quantiles(frame, ["x", "flat", "gone"])
    np.testing.assert_allclose(got["x"], np.quantile(np.arange(1, 11), core.REFERENCE_QUANTILES))
    assert got["flat"] == [3.0]
    assert got["gone"] == []


def test_training_set_save_load_round_trip(ts, tmp_path):
    """The training set hand-off keeps its rows and feature names."""
    ts.save(tmp_path / "ts")
    back = core.TrainingSet.load(tmp_path / "ts")
    assert back.feature_names == NAMES
    pd.testing.assert_frame_equal(back.frame, ts.frame)


def test_training_set_load_can_skip_the_flight_keys(ts, tmp_path):
    """Loading the features plus named columns gives those columns as saved, in the file's order."""
    ts.save(tmp_path / "ts")
    back = core.TrainingSet.load(tmp_path / "ts", (*core.SPLIT_COLUMNS, "carrier"))
    expected = [c for c in ts.frame.columns if c in {*NAMES, *core.SPLIT_COLUMNS, "carrier"}]
    assert "flight_id" not in back.frame.columns and "route" not in back.frame.columns
    pd.testing.assert_frame_equal(back.frame, ts.frame.loc[:, expected])


def test_build_training_set_refuses_missing_features(ts):
    """Flights without retrieved features are an error, not silently dropped."""
    flights = ts.frame.loc[:, ["flight_id", "sched_dep_local", "carrier", "origin", "delayed"]].assign(route="JFK-BOS")
    feats = ts.frame.loc[:, ["flight_id", *NAMES]]
    assert len(core.build_training_set(flights, feats, NAMES).frame) == len(flights)
    with pytest.raises(core.TrainingError, match=f"features found for {len(flights) - 1} of {len(flights)}"):
        core.build_training_set(flights, feats.iloc[1:], NAMES)


def test_build_training_set_gives_each_flight_its_own_features_in_any_order(ts):
    """Features in the flights' order are put beside them; in another order they are joined: the same frame."""
    flights = ts.frame.loc[:, ["flight_id", "sched_dep_local", "carrier", "origin", "delayed"]].assign(route="JFK-BOS")
    feats = ts.frame.loc[:, ["flight_id", *NAMES]]
    in_order = core.build_training_set(flights, feats, NAMES).frame
    shuffled = core.build_training_set(flights, feats.sample(frac=1.0, random_state=3), NAMES).frame
    pd.testing.assert_frame_equal(in_order, shuffled)
    pd.testing.assert_frame_equal(in_order.loc[:, NAMES], feats.loc[:, NAMES].reset_index(drop=True))
