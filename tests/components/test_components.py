"""Each component's Python function on real artifacts: the thin wrappers adapt, the core decides."""

from __future__ import annotations

import atexit
import gc
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Metrics, Model

from ctloop.app import pipeline_steps
from ctloop.components.evaluate import evaluate
from ctloop.components.gate import gate
from ctloop.components.ingest import ingest
from ctloop.components.train import train
from ctloop.components.training_set import training_set
from ctloop.components.tune import tune
from ctloop.components.validate import validate
from ctloop.config import Settings
from ctloop.core.schema import DataValidationError
from tests.conftest import END, START

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def stays_a_test_process() -> Iterator[None]:
    """A component tunes its process as a task's (``task_process``); the test process takes that back.

    Else the test session ran on with a task's collector and printed, at its exit, its own peak
    memory on the line the local runner reads as a task's.
    """
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    atexit.unregister(gc.freeze)
    atexit.unregister(pipeline_steps.report_peak_memory)


def _artifact(kind, tmp_path, name):
    return kind(name=name, uri=str(tmp_path / name))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ingest")
    snapshot, stats = _artifact(Dataset, folder, "snapshot"), _artifact(Metrics, folder, "stats")
    settings_json = Settings().to_json()  # the defaults: the package's CSVs, 28 days of history
    sha = ingest.python_func(settings_json=settings_json, start=START, end=END, snapshot=snapshot, stats=stats)
    return sha, snapshot, stats


def test_ingest_returns_the_hash_and_counts_cancelled(ingested):
    """The step's output is the snapshot hash; rows and cancelled flights are in its metadata."""
    sha, snapshot, stats = ingested
    assert len(sha) == 64 and snapshot.metadata["sha256"] == sha
    assert stats.metadata["rows"] > 20_000 and stats.metadata["cancelled"] > 0
    assert stats.metadata["history_rows"] > 0


def test_validate_passes_a_good_snapshot_and_refuses_a_changed_one(ingested, tmp_path):
    """Validation logs row counts, and refuses a snapshot whose content no longer matches its hash."""
    sha, snapshot, _ = ingested
    report = _artifact(Metrics, tmp_path, "report")
    validate.python_func(snapshot=snapshot, snapshot_sha256=sha, start=START, end=END, report=report)
    assert report.metadata["window_rows"] == ingested[2].metadata["rows"]
    with pytest.raises(pipeline_steps.SnapshotIntegrityError, match="changed since ingest"):
        validate.python_func(snapshot=snapshot, snapshot_sha256="0" * 64, start=START, end=END, report=report)


def test_validate_an_empty_window_names_the_rule(ingested, tmp_path):
    """A window with no flights fails validation with the column and the rule."""
    sha, snapshot, _ = ingested
    with pytest.raises(DataValidationError, match=r"sched_dep_local.*rows in window 2014-01-01"):
        validate.python_func(
            snapshot=snapshot,
            snapshot_sha256=sha,
            start="2014-01-01",
            end="2014-01-31",
            report=_artifact(Metrics, tmp_path, "report"),
        )


def test_training_train_evaluate_gate_chain(materialized, snapshot, tmp_path):
    """training_set → train → evaluate → gate through the component functions with real Feast."""
    dataset, stats = _artifact(Dataset, tmp_path, "dataset"), _artifact(Metrics, tmp_path, "stats")
    training_set.python_func(
        snapshot=Dataset(uri=snapshot.path),
        snapshot_sha256=snapshot.sha256,
        start=START,
        end=END,
        settings_json=materialized.to_json(),
        dataset=dataset,
        stats=stats,
    )
    assert stats.metadata["features"] == 21
    trials = _artifact(Metrics, tmp_path, "trials")
    search = tune.python_func(training_set=dataset, end=END, settings_json=materialized.to_json(), trials=trials)
    chosen = json.loads(search)["chosen"]
    assert {f"chosen.{k}": v for k, v in chosen.items()}.items() <= trials.metadata.items()
    model, fit = _artifact(Model, tmp_path, "model"), _artifact(Metrics, tmp_path, "fit")
    train.python_func(
        training_set=dataset, end=END, settings_json=materialized.to_json(), tuning=search, model=model, metrics=fit
    )
    assert model.metadata["features"] == 21 and fit.metadata["fit_rows"] > 10_000
    assert model.metadata["learning_rate"] == chosen["learning_rate"]
    metrics, roc = _artifact(Metrics, tmp_path, "metrics"), _artifact(ClassificationMetrics, tmp_path, "roc")
    report, evaluation = _artifact(HTML, tmp_path, "report.html"), _artifact(Artifact, tmp_path, "evaluation")
    evaluate.python_func(
        training_set=dataset,
        model=model,
        end=END,
        settings_json=materialized.to_json(),
        metrics=metrics,
        roc=roc,
        report=report,
        evaluation=evaluation,
    )
    assert metrics.metadata["candidate_auc"] > metrics.metadata["baseline_auc"]
    assert metrics.metadata["onnx_max_abs_diff"] < 1e-5
    assert roc.metadata["confidenceMetrics"] and "confusionMatrix" in roc.metadata
    page = (tmp_path / "report.html").read_text()
    assert all(f"<h3>{kind}</h3>" in page for kind in ("carrier", "origin", "time of day"))  # a table per slice kind
    decision = _artifact(Metrics, tmp_path, "decision")
    relaxed = materialized.replace(gate=replace(materialized.gate, min_auc=0.5)).to_json()
    assert gate.python_func(evaluation=evaluation, settings_json=relaxed, decision=decision) == "blessed"
    strict = materialized.replace(gate=replace(materialized.gate, min_slice_auc=0.99)).to_json()
    assert gate.python_func(evaluation=evaluation, settings_json=strict, decision=decision) == "rejected"
    assert any("collapsed" in r for r in decision.metadata["reasons"])
    doc = json.loads((tmp_path / "evaluation").read_text())
    importance = doc["feature_importance"]  # D2: every feature's AUC drop when shuffled, in every evaluation
    meta = json.loads((Path(model.path) / "metadata.json").read_text())
    assert list(importance) == meta["feature_names"] and max(importance.values()) > 0.01
    assert "<h2>Feature importance</h2>" in page
    doc["candidate"]["overall"]["auc"] = float("nan")
    (tmp_path / "evaluation").write_text(json.dumps(doc))
    assert gate.python_func(evaluation=evaluation, settings_json=relaxed, decision=decision) == "rejected"
    assert decision.metadata["reasons"] == ["auc is NaN"]
