"""Inclusion (ML Test Score M7): every carrier, origin airport and part of the day is scored, reported and gated.

Real flights of the test window: a model trained on its fit days and evaluated by the pipeline's
evaluate step on its evaluation days. Each slice kind appears in the evaluation document, the
HTML report, KFP's metrics and the registered run's MLflow metrics; a candidate whose evening
flights (or one carrier's, or one airport's) are scored no better than chance is refused by the
gate, naming that slice. The registered run also carries the model's normal drift per feature
(lineage of what the monitor judges above).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from ctloop.adapters.registry import Registry
from ctloop.app import pipeline_steps
from ctloop.config import TrainParams
from ctloop.contract import buckets
from ctloop.core import evaluate as ev
from ctloop.core import features
from ctloop.core import gate as gating
from ctloop.core import train as core
from tests.conftest import END, EVAL_DAYS


@pytest.fixture(scope="module")
def evaluated(materialized, training_set, tmp_path_factory):
    """The pipeline's evaluate step on a model trained on the test window, with an MLflow registry of its own."""
    folder = tmp_path_factory.mktemp("slices")
    settings = materialized.replace(
        registry=replace(materialized.registry, tracking_uri=f"sqlite:///{folder / 'mlflow.db'}"),
        train=TrainParams(eval_days=EVAL_DAYS, max_iter=60),
    )
    bundle, _ = core.train(training_set, date.fromisoformat(END), settings.train)
    bundle.save(folder / "model")
    training_set.save(folder / "training_set")
    evaluation = pipeline_steps.evaluate(settings, folder / "training_set", folder / "model", END)
    return settings, folder, evaluation


def test_every_carrier_origin_and_part_of_the_day_is_scored_and_reported(evaluated):
    """The document, the HTML report and KFP's metrics carry each slice kind."""
    _, _, evaluation = evaluated
    kinds = ev.slice_kinds(evaluation.document["candidate"]["slices"])
    assert list(kinds) == ["carrier", "origin", "time_of_day"]
    assert len(kinds["carrier"]) >= 10 and kinds["origin"] == ["origin=EWR", "origin=JFK", "origin=LGA"]
    parts = ["morning", "midday", "afternoon", "evening", "night"]
    assert kinds["time_of_day"] == [f"time_of_day={part}" for part in parts]
    for kind in ("<h3>carrier</h3>", "<h3>origin</h3>", "<h3>time of day</h3>", "<td>evening</td>"):
        assert kind in evaluation.html
    metrics = evaluation.flat_metrics()
    evening = evaluation.document["candidate"]["slices"]["time_of_day=evening"]
    assert metrics["candidate_slice.time_of_day.evening.auc"] == evening["auc"] > 0.55
    assert metrics["candidate_slice.carrier.UA.rows"] > 0 and metrics["candidate_slice.origin.JFK.brier"] > 0


def test_the_gate_judges_every_kind_of_slice(evaluated):
    """The real candidate's gate decision says how many slices of each kind it judged."""
    _, _, evaluation = evaluated
    decision = pipeline_steps.gate(evaluation.document, replace(gating.GateSettings(), min_auc=0.5))
    judged = [p for p in decision.passed if p.startswith("no slice collapsed")]
    assert judged and all(f" {kind}" in judged[0] for kind in ("carrier", "origin", "time_of_day")), decision


@pytest.mark.parametrize("collapsed", ["time_of_day=evening", "carrier=UA", "origin=LGA"])
def test_a_slice_scored_no_better_than_chance_is_refused_by_name(evaluated, training_set, collapsed):
    """The candidate's probabilities shuffled within one slice: the gate refuses it and names that slice."""
    settings, folder, _ = evaluated
    _, held = core.split(training_set, date.fromisoformat(END), EVAL_DAYS)
    names = training_set.feature_names
    p = core.onnx_predict(folder / "model" / "model.onnx", features.as_float_matrix(held, names))
    gate = replace(settings.gate, min_auc=0.5)
    as_trained = gating.decide(ev.evaluate(held, p), None, gate, 0.0)
    assert not any(r.startswith(f"slice {collapsed} ") for r in as_trained.reasons), as_trained.reasons
    column, _, value = collapsed.partition("=")
    kind = ev.time_of_day(held["sched_dep_local"]) if column == ev.TIME_OF_DAY else held[column]
    inside = np.flatnonzero((kind == value).to_numpy())
    p[inside] = np.random.default_rng(3).permutation(p[inside])
    decision = gating.decide(ev.evaluate(held, p), None, gate, 0.0)
    assert not decision.blessed
    assert any(r.startswith(f"slice {collapsed} collapsed") for r in decision.reasons), decision.reasons


@pytest.fixture(scope="module")
def registered_run(evaluated):
    """The register step on the evaluated model (promote off): its MLflow run."""
    settings, folder, evaluation = evaluated
    lineage = {"pipeline_run": "slices-test", "git_sha": "0" * 40, "data_sha256": "1" * 64, "window": "test"}
    version = pipeline_steps.register(settings, folder / "model", evaluation.document, lineage, promote=False)
    registry = Registry(settings)
    return MlflowClient(registry.uri).get_run(registry.get(version).run_id)


def test_the_registered_run_carries_each_slices_metrics(evaluated, registered_run):
    """The register step logs every slice's rows, AUC and Brier to MLflow, next to the evaluation report."""
    _, _, evaluation = evaluated
    for kind in ("carrier.UA", "origin.LGA", "time_of_day.evening", "time_of_day.night"):
        assert f"eval_slice.{kind}.rows" in registered_run.data.metrics, kind
    evening = evaluation.document["candidate"]["slices"]["time_of_day=evening"]["auc"]
    assert registered_run.data.metrics["eval_slice.time_of_day.evening.auc"] == pytest.approx(evening)


def test_the_registered_models_metrics_are_linked_to_it_and_logged_once(evaluated, registered_run):
    """The ONNX model the version registers carries the evaluation's metrics; the run holds each once."""
    settings, _, _ = evaluated
    registry = Registry(settings)
    client = MlflowClient(registry.uri)
    found = next(v for v in client.search_model_versions(f"run_id = '{registered_run.info.run_id}'"))
    model_id = found.source.removeprefix("models:/")  # the version's source: the ONNX model logged by the run
    assert client.get_logged_model(model_id).name == "model"
    linked = {m.key: m.value for m in client.get_logged_model(model_id).metrics or []}
    assert linked == registered_run.data.metrics
    assert linked["eval_auc"] > 0.5 and "eval_slice.carrier.UA.rows" in linked
    assert [m.value for m in client.get_metric_history(registered_run.info.run_id, "eval_auc")] == [linked["eval_auc"]]


def test_the_registered_run_carries_each_features_normal_drift(evaluated, registered_run):
    """The normal week-to-week PSI the monitor judges above is in the version's lineage (metrics and params)."""
    _, folder, _ = evaluated
    normal = json.loads((folder / "model" / "metadata.json").read_text())["reference_fractions"][buckets.NORMAL]
    assert registered_run.data.metrics["drift_normal_psi.temp"] == pytest.approx(normal["features"]["temp"])
    assert registered_run.data.metrics["drift_normal_psi.prediction"] == pytest.approx(normal["prediction"])
    assert float(registered_run.data.params["drift_normal_window_s"]) == 7 * 86400


def test_a_slice_without_an_auc_stays_in_the_document_and_out_of_kfps_metrics(evaluated):
    """A slice of one class (no late flight) has a NaN AUC: kept in the document, left out of the metrics KFP stores."""
    import copy
    import math

    _, _, evaluation = evaluated
    document = copy.deepcopy(evaluation.document)
    document["candidate"]["slices"]["carrier=UA"]["auc"] = math.nan
    metrics = pipeline_steps.Evaluation(document, evaluation.roc, evaluation.confusion, evaluation.html).flat_metrics()
    assert "candidate_slice.carrier.UA.auc" not in metrics and metrics["candidate_slice.carrier.UA.rows"] > 0
    assert all(not math.isnan(v) for v in metrics.values())
