"""Evaluation: scores, slices, serialization, ROC points and the HTML report."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from ctloop.config import GateSettings
from ctloop.core import evaluate as ev
from ctloop.core.gate import decide


@pytest.fixture(scope="module")
def scored():
    """A frame with carriers and origins, a label with signal, and probabilities."""
    rng = np.random.default_rng(11)
    n = 3000
    p = rng.random(n)
    y = (rng.random(n) < p).astype("int8")
    hours = rng.choice([6, 11, 15, 19, 23], n)
    frame = pd.DataFrame(
        {
            "carrier": pd.array(rng.choice(["AA", "B6", "UA"], n), dtype="string"),
            "origin": pd.array(rng.choice(["EWR", "JFK"], n), dtype="string"),
            "sched_dep_local": pd.array([f"2013-05-01T{h:02d}:30:00" for h in hours], dtype="string"),
            "delayed": y,
        },
        index=np.arange(n) * 3 + 100,  # a non-default index: slices must use positions
    )
    return frame, p


def test_score_matches_sklearn():
    """AUC, log-loss and Brier are scikit-learn's values, with the positive rate and row count."""
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    p = np.array([0.1, 0.8, 0.6, 0.4, 0.3, 0.2, 0.7, 0.9])
    s = ev.score(y, p)
    assert (s.rows, s.positive_rate) == (8, 0.5)
    assert s.auc == pytest.approx(roc_auc_score(y, p))
    assert s.log_loss == pytest.approx(log_loss(y, p))
    assert s.brier == pytest.approx(brier_score_loss(y, p))


@pytest.mark.parametrize("seed", range(5))
def test_score_equals_sklearn_with_ties_small_slices_and_extreme_probabilities(seed):
    """Rounded probabilities (many ties), a few rows, 0 and 1 exactly: sklearn's numbers to 1e-12."""
    rng = np.random.default_rng(seed)
    for rows in (2, 7, 50, 3000):
        y = rng.integers(0, 2, rows)
        y[:2] = [0, 1]
        p = np.round(rng.beta(2, 5, rows), 2)
        p[rng.integers(0, rows)] = 0.0
        p[rng.integers(0, rows)] = 1.0
        s = ev.score(y, p)
        assert s.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert s.log_loss == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]), abs=1e-12)
        assert s.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_auc(label):
    """Rows holding one class have a NaN AUC but finite log-loss and Brier."""
    s = ev.score(np.full(10, label), np.linspace(0.05, 0.95, 10))
    assert math.isnan(s.auc)
    assert s.positive_rate == float(label)
    assert math.isfinite(s.log_loss) and math.isfinite(s.brier)


def test_non_finite_predictions_give_nan_scores():
    """A NaN probability makes every score NaN rather than a misleading number."""
    s = ev.score(np.array([0, 1, 0]), np.array([0.2, np.nan, 0.1]))
    assert s.rows == 3 and all(math.isnan(v) for v in (s.auc, s.log_loss, s.brier))


def test_empty_rows_give_nan_scores():
    """No rows: zero count and NaN everywhere."""
    s = ev.score(np.array([], dtype=int), np.array([]))
    assert s.rows == 0 and math.isnan(s.positive_rate) and math.isnan(s.auc)


def test_evaluate_produces_slices_per_value(scored):
    """Slices are named column=value, sorted, and each scores exactly that value's rows."""
    frame, p = scored
    result = ev.evaluate(frame, p)
    assert list(result.slices) == [
        *("carrier=AA", "carrier=B6", "carrier=UA", "origin=EWR", "origin=JFK"),
        *("time_of_day=afternoon", "time_of_day=evening", "time_of_day=midday", "time_of_day=morning"),
        "time_of_day=night",
    ]
    mask = (frame["carrier"] == "B6").to_numpy()
    assert result.slices["carrier=B6"] == ev.score(frame["delayed"].to_numpy()[mask], p[mask])
    evening = frame["sched_dep_local"].str.slice(11, 13).eq("19").to_numpy()
    assert result.slices["time_of_day=evening"] == ev.score(frame["delayed"].to_numpy()[evening], p[evening])
    for kind in ("origin", "time_of_day"):
        assert sum(s.rows for k, s in result.slices.items() if k.startswith(f"{kind}=")) == len(frame)
    assert result.overall == ev.score(frame["delayed"].to_numpy(), p)


@pytest.mark.parametrize(
    ("local", "part"),
    [
        ("2013-05-01T00:00:00", "night"),
        ("2013-05-01T04:59:00", "night"),
        ("2013-05-01T05:00:00", "morning"),
        ("2013-05-01T09:59:00", "morning"),
        ("2013-05-01T10:00:00", "midday"),
        ("2013-05-01T14:00:00", "afternoon"),
        ("2013-05-01T18:00:00", "evening"),
        ("2013-05-01T21:59:00", "evening"),
        ("2013-05-01T22:00:00", "night"),
    ],
)
def test_time_of_day_by_scheduled_local_hour(local, part):
    """The part of the day starts at its first hour and ends before the next part's."""
    assert ev.time_of_day(pd.Series([local], dtype="string")).tolist() == [part]


def test_slice_metrics_are_flat_names_mlflow_accepts(scored):
    """Every slice's rows, AUC and Brier under ``slice.<column>.<value>.<metric>`` (no ``=``)."""
    frame, p = scored
    result = ev.evaluate(frame, p).to_dict()
    metrics = ev.slice_metrics(result, "eval_")
    assert metrics["eval_slice.time_of_day.evening.auc"] == result["slices"]["time_of_day=evening"]["auc"]
    assert metrics["eval_slice.carrier.AA.rows"] == result["slices"]["carrier=AA"]["rows"]
    assert len(metrics) == 3 * len(result["slices"])
    assert all(re.fullmatch(r"[\w./ :-]+", name) for name in metrics)


def test_evaluate_without_slice_columns_has_overall_only(scored):
    """The baseline is evaluated with no slices."""
    frame, p = scored
    assert ev.evaluate(frame, p, ()).slices == {}


def test_eval_result_round_trip(scored):
    """to_dict survives JSON and from_dict gives back the same scores."""
    frame, p = scored
    result = ev.evaluate(frame, p)
    back = ev.EvalResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back == result
    assert list(back.slices) == list(result.slices)


def test_eval_result_round_trip_keeps_nan():
    """NaN scores (a one-class slice) survive the round trip as NaN."""
    result = ev.EvalResult(ev.Scores(4, 0.5, 0.7, 0.6, 0.2), {"carrier=HA": ev.Scores(2, 0.0, math.nan, 0.1, 0.01)})
    back = ev.EvalResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert math.isnan(back.slices["carrier=HA"].auc)
    assert back.overall == result.overall


def test_round_trip_keeps_rows_an_int():
    """The row count stays an int through to_dict/from_dict, so gate reasons read 'on 1000 rows'."""
    result = ev.EvalResult(ev.Scores(5000, 0.2, 0.72, 0.44, 0.145), {"carrier=EV": ev.Scores(1000, 0.3, 0.5, 0.6, 0.2)})
    back = ev.EvalResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert isinstance(back.overall.rows, int)
    reasons = decide(back, None, GateSettings()).reasons
    assert reasons == ["slice carrier=EV collapsed: auc 0.5000 < 0.55 on 1000 rows"]


def test_roc_points_are_aligned_and_thresholds_bounded(scored):
    """FPR, TPR and thresholds have equal lengths, at most max_points, thresholds in [0, 1]."""
    frame, p = scored
    fpr, tpr, thr = ev.roc_points(frame["delayed"].to_numpy(), p, max_points=50)
    assert len(fpr) == len(tpr) == len(thr)
    assert 2 <= len(fpr) <= 50
    assert all(0.0 <= t <= 1.0 for t in thr)
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert fpr == sorted(fpr) and tpr == sorted(tpr)
    assert thr == sorted(thr, reverse=True)


def test_roc_points_small_input_keeps_every_point():
    """With fewer points than max_points the whole curve is kept (first threshold clipped to 1)."""
    fpr, tpr, thr = ev.roc_points(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.3, 0.6]))
    assert (fpr, tpr) == ([0.0, 0.0, 0.0, 1.0], [0.0, 0.5, 1.0, 1.0])
    assert thr[0] == 1.0 and thr[1:] == [0.9, 0.6, 0.1]


def test_confusion_counts_at_threshold():
    """Confusion rows are [[tn, fp], [fn, tp]] at the threshold (inclusive)."""
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.5, 0.49, 0.5, 0.9])
    assert ev.confusion(y, p) == [[1, 1], [1, 2]]


def test_report_html_escapes_slice_names():
    """Slice names, model names and the window are HTML-escaped in the report."""
    bad = "carrier=<script>alert(1)</script>"
    candidate = ev.EvalResult(ev.Scores(10, 0.3, 0.7, 0.5, 0.2), {bad: ev.Scores(5, 0.4, 0.6, 0.5, 0.2)})
    champion = ev.EvalResult(ev.Scores(10, 0.3, 0.65, 0.52, 0.21), {bad: ev.Scores(5, 0.4, 0.61, 0.5, 0.2)})
    document = {
        "candidate": candidate.to_dict(),
        "champion": champion.to_dict(),
        "evaluation_window": "2013-03-01..2013-03-31 & <b>",
    }
    page = ev.report_html(document)
    assert "<script>" not in page and "<b>" not in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "2013-03-01..2013-03-31 &amp; &lt;b&gt;" in page
    assert "0.6100" in page  # the champion's slice AUC is shown next to the candidate's
    assert "<th>candidate</th><th>champion</th>" in page


def test_report_html_has_a_table_per_slice_kind_and_the_day_in_order(scored):
    """Carrier, origin and time-of-day slices each get their table; parts of the day from morning to night."""
    frame, p = scored
    page = ev.report_html({"candidate": ev.evaluate(frame, p).to_dict(), "champion": None})
    assert page.index("<h3>carrier</h3>") < page.index("<h3>origin</h3>") < page.index("<h3>time of day</h3>")
    day = page[page.index("<h3>time of day</h3>") :]
    parts = ["morning", "midday", "afternoon", "evening", "night"]
    assert [day.index(f"<td>{part}</td>") for part in parts] == sorted(day.index(f"<td>{part}</td>") for part in parts)


def test_report_html_shows_dash_for_nan_and_omits_absent_models():
    """NaN scores print as a dash; a missing champion gets no column."""
    candidate = ev.EvalResult(
        ev.Scores(10, 0.0, math.nan, 0.1, 0.01), {"origin=JFK": ev.Scores(10, 0.0, math.nan, 0.1, 0.01)}
    )
    page = ev.report_html({"candidate": candidate.to_dict(), "champion": None})
    assert "—" in page
    assert "<th>champion</th>" not in page and "<th>candidate</th>" in page
    assert "<h3>origin</h3>" in page and "<td>JFK</td>" in page


def test_permutation_importance_is_the_auc_lost_when_one_feature_is_shuffled():
    """A feature the model reads loses AUC when shuffled; one it ignores loses exactly nothing."""
    import numpy as np

    from ctloop.core.evaluate import permutation_importance

    rng = np.random.default_rng(0)
    signal, noise = rng.normal(size=4000), rng.normal(size=4000)
    y = (signal + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    matrix = np.column_stack([signal, noise])

    def predict(m: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-3 * m[:, 0]))  # reads the signal only

    got = permutation_importance(predict, matrix, y, ["signal", "noise"], seed=1)
    assert got["signal"] > 0.3 and got["noise"] == 0.0
    assert permutation_importance(predict, matrix, y, ["signal", "noise"], seed=1) == got  # seeded
    sampled = permutation_importance(predict, matrix, y, ["signal", "noise"], seed=1, max_rows=1000)
    assert sampled != got and sampled["noise"] == 0.0  # on 1,000 of the rows: another estimate of the same
    assert abs(sampled["signal"] - got["signal"]) < 0.05
