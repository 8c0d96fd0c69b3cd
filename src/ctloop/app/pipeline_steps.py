"""The training pipeline's steps as plain functions over paths and settings (it only reads features).

Each KFP component in ``src/ctloop/components/`` adapts its artifacts to one function here; the benchmark
calls the same functions directly to measure what orchestration costs.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import math
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctloop.config import GateSettings, Settings
from ctloop.contract import buckets, layout

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.core import evaluate as ev
    from ctloop.core import gate as gating
    from ctloop.core import train as core
    from ctloop.core import tune as tune_

# Each step imports what it needs inside: a KFP task is its own process, and the gate step
# should not pay for pandas, scikit-learn, pandera or Feast imports it never uses.

log = logging.getLogger(__name__)


class SnapshotIntegrityError(ValueError):
    """A snapshot's content no longer matches the hash recorded at ingest."""


TASK_GC_THRESHOLD = (50_000, 20, 20)
"""Collector thresholds for a task process (CPython's default is ``(700, 10, 10)``)."""


def task_process() -> None:
    """Tune the garbage collector for a pipeline task: one short-lived process per step.

    A task imports large libraries (MLflow, Feast, scikit-learn: millions of long-lived
    objects), does one step and exits. With the default thresholds the collector re-scans those
    objects over and over while they are imported (~20 % of an import-heavy task's CPU), and the
    interpreter's collections at exit scan them once more (~0.3-0.6 s). Here young collections
    run less often, and everything alive at exit is frozen first, so the final collections skip
    it; the memory goes back to the system with the process, as it does for every object still
    alive at exit (whose finalizers Python never promises to run). Each component calls this
    first; the benchmark's direct baseline runs with the same thresholds.

    At exit the task prints its peak resident memory, which the local runner reports per task
    (``ctloop.adapters.kfp_local``) and a cluster's task log shows.
    """
    if gc.get_threshold() != TASK_GC_THRESHOLD:
        gc.set_threshold(*TASK_GC_THRESHOLD)
        atexit.register(gc.freeze)
        atexit.register(report_peak_memory)


def report_peak_memory() -> None:
    """Print this process's peak resident memory on the line the local runner reads."""
    import resource

    from ctloop.adapters.kfp_local import PEAK_MEMORY_MARK

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"{PEAK_MEMORY_MARK} {kib / 1024:.0f}", flush=True)  # the task log is the channel


def validate(snapshot: Path, expected_sha256: str, start: str, end: str) -> dict[str, int]:
    """Check the snapshot's integrity and schema; return row counts."""
    from ctloop.core import data, schema

    actual = data.snapshot_sha256(snapshot)
    if actual != expected_sha256:
        raise SnapshotIntegrityError(f"snapshot {snapshot} changed since ingest: sha256 {actual} != {expected_sha256}")
    flights, weather, planes = data.read_snapshot(snapshot)
    return schema.validate_snapshot(flights, weather, planes, data.Window.parse(start, end))


def training_rows(snapshot: Path, start: str, end: str, as_of: str = "") -> pd.DataFrame:
    """The window's flights, with labels (only those known by ``as_of``, if given)."""
    import pandas as pd

    from ctloop.core import data

    flights, _, _ = data.read_snapshot(snapshot)
    known_by = pd.Timestamp(as_of).tz_localize("UTC") if as_of else None
    return data.training_rows(flights, data.Window.parse(start, end), known_by)


def departure_days(rows: pd.DataFrame, start: str, end: str) -> tuple[str, str]:
    """The first and last New York departure day of ``rows`` (the window's, when there are none)."""
    if rows.empty:
        return start, end
    departures = rows["sched_dep_local"]  # ISO text orders as its instants do
    return str(departures.min())[:10], str(departures.max())[:10]


def features_for(settings: Settings, rows: pd.DataFrame) -> core.TrainingSet:
    """Point-in-time features for ``rows`` from the offline store (``get_historical_features``), reading only.

    The day partitions are appended by the feature pipeline (:mod:`ctloop.app.feature_steps`);
    the training set step checks first that those the rows read are there and records which
    (:func:`ctloop.app.feature_steps.read_lineage`).
    """
    from ctloop.adapters import featurestore as fs
    from ctloop.core import features
    from ctloop.core import train as core

    store = fs.open_store(settings)
    service = settings.features.feature_service
    retrieved = fs.historical_features(store, service, features.entity_frame(rows))
    names = fs.feature_names(store, service)
    return core.build_training_set(rows, retrieved, names, fs.service_layout(store, service))


def training_set(settings: Settings, snapshot: Path, start: str, end: str, as_of: str = "") -> core.TrainingSet:
    """Point-in-time features for the window's flights, with labels (only those known by ``as_of``, if given)."""
    return features_for(settings, training_rows(snapshot, start, end, as_of))


def tune(settings: Settings, training_set_dir: Path, end: str) -> tune_.Tuning:
    """The tuning step's search on the training set's fit split (``ctloop.core.tune``)."""
    from ctloop.core import train as core
    from ctloop.core import tune as tuning

    ts = core.TrainingSet.load(training_set_dir, core.SPLIT_COLUMNS)
    return tuning.search(ts, date.fromisoformat(end), settings.train, settings.tune)


@dataclass
class Evaluation:
    """What the evaluate step produces."""

    document: dict[str, Any]
    roc: tuple[list[float], list[float], list[float]]
    confusion: list[list[int]]
    html: str

    def flat_metrics(self) -> dict[str, float]:
        """Scalars for KFP's Metrics artifact: overall scores, and the candidate's per slice (NaN left out)."""
        from ctloop.core.evaluate import slice_metrics

        out: dict[str, float] = {}
        for who in ("candidate", "champion", "baseline"):
            block = self.document.get(who)
            if block:
                out.update({f"{who}_{k}": v for k, v in block["overall"].items()})
        out.update(slice_metrics(self.document["candidate"], "candidate_"))
        out["onnx_max_abs_diff"] = self.document["onnx_max_abs_diff"]
        # KFP keeps metrics as protobuf numbers, which hold no NaN: a slice of one class (a small
        # carrier with no late flight in the window) has no AUC, and the document keeps it as NaN
        return {k: v for k, v in out.items() if not math.isnan(v)}


def evaluate(settings: Settings, training_set_dir: Path, model_dir: Path, end: str) -> Evaluation:
    """Score candidate, champion (same window, same features) and baseline."""
    import numpy as np

    from ctloop.core import evaluate as ev
    from ctloop.core import features
    from ctloop.core import train as core

    params = settings.train
    ts = core.TrainingSet.load(training_set_dir, (*core.SPLIT_COLUMNS, *ev.SLICE_COLUMNS))  # baseline: hour, carrier
    fit, held = core.split(ts, date.fromisoformat(end), params.eval_days)
    # the candidate is scored as it will be served: its ONNX export (parity was checked in train)
    meta = json.loads((model_dir / layout.METADATA_FILE).read_text())
    names = list(meta["feature_names"])
    predict = core.onnx_predictor(model_dir / layout.ONNX_FILE)
    matrix = features.as_float_matrix(held, names)
    p = predict(matrix)
    onnx_diff = float(meta["onnx_max_abs_diff"])
    candidate = ev.evaluate(held, p)
    importance = ev.permutation_importance(predict, matrix, held[ev.LABEL].to_numpy(), names, params.seed)
    baseline = core.fit_baseline(fit, params.seed)
    p_base = np.asarray(baseline.predict_proba(core.baseline_features(held))[:, 1], dtype=np.float64)
    document: dict[str, Any] = {
        "evaluation_window": f"{core.eval_start(date.fromisoformat(end), params.eval_days)}..{end}",
        "candidate": candidate.to_dict(),
        "baseline": ev.evaluate(held, p_base, ()).to_dict(),
        "onnx_max_abs_diff": onnx_diff,
        "champion": None,
        "champion_version": None,
        "feature_importance": importance,
    }
    champion = champion_scores(settings, held, names)
    if champion is not None:
        document["champion_version"], document["champion"] = champion[0], champion[1].to_dict()
    y = held[ev.LABEL].to_numpy()
    return Evaluation(document, ev.roc_points(y, p), ev.confusion(y, p), ev.report_html(document))


def champion_scores(
    settings: Settings, held: pd.DataFrame, feature_names: list[str]
) -> tuple[str, ev.EvalResult] | None:
    """The current champion's scores on the same rows, if it uses the same features."""
    from ctloop.adapters.registry import CHAMPION, Registry
    from ctloop.core import evaluate as ev
    from ctloop.core import features
    from ctloop.core import train as core

    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        return None
    with tempfile.TemporaryDirectory(prefix="ctloop-champion-") as tmp:
        folder = registry.download_serving(champion.version, Path(tmp))
        meta = json.loads((folder / layout.METADATA_FILE).read_text())
        if list(meta["feature_names"]) != feature_names:
            log.warning("champion v%s uses other features; not compared", champion.version)
            return None
        p = core.onnx_predict(folder / layout.ONNX_FILE, features.as_float_matrix(held, feature_names))
    return champion.version, ev.evaluate(held, p)


def gate(document: dict[str, Any], settings: GateSettings) -> gating.Decision:
    """The gate's decision on an evaluation document."""
    from ctloop.core import evaluate as ev
    from ctloop.core import gate as gating

    champion = ev.EvalResult.from_dict(document["champion"]) if document.get("champion") else None
    return gating.decide(
        ev.EvalResult.from_dict(document["candidate"]), champion, settings, float(document["onnx_max_abs_diff"])
    )


def register(
    settings: Settings, model_dir: Path, document: dict[str, Any], lineage: dict[str, str], promote: bool
) -> str:
    """Register the model as ``challenger``; promote it to ``champion`` when asked."""
    from ctloop.adapters.registry import CHALLENGER, Registry
    from ctloop.core import evaluate as ev

    registry = Registry(settings)
    meta = json.loads((model_dir / layout.METADATA_FILE).read_text())  # the registry loads the model itself
    tags = {**lineage, "feature_service": settings.features.feature_service}
    metrics = {f"eval_{k}": v for k, v in document["candidate"]["overall"].items()}
    metrics.update({f"baseline_{k}": v for k, v in document["baseline"]["overall"].items()})
    metrics.update(ev.slice_metrics(document["candidate"], "eval_"))  # carrier, origin, time of day
    metrics["onnx_max_abs_diff"] = document["onnx_max_abs_diff"]
    metrics.update({f"importance.{k}": v for k, v in (document.get("feature_importance") or {}).items()})
    params = {**meta["params"], "fit_rows": meta["fit_rows"]}
    tuned = meta.get("tuning")
    if tuned:  # the search that chose the parameters: where, and every trial's validation scores
        from ctloop.core.tune import Tuning, trial_metrics

        metrics.update(trial_metrics(Tuning.from_dict(tuned)))
        params["tune_validation"] = tuned["validation"] or f"not searched: {tuned['skipped']}"
    normal = meta.get("reference_fractions", {}).get(buckets.NORMAL, {})
    if normal.get("features"):  # each feature's normal drift, in lineage next to the model it judges
        metrics.update({f"drift_normal_psi.{name}": value for name, value in normal["features"].items()})
        metrics["drift_normal_psi.prediction"] = normal["prediction"]
        params.update(drift_normal_window_s=normal["window_s"], drift_normal_quantile=normal["quantile"])
    artifacts = {"evaluation.json": json.dumps(document, indent=2), "evaluation.html": ev.report_html(document)}
    version = registry.register(model_dir, f"train-{lineage.get('window', '')}", tags, params, metrics, artifacts)
    registry.set_alias(CHALLENGER, version.version)
    if promote:
        from ctloop.app.deploy import deploy

        registry.promote(version.version)
        deploy(settings)  # locally: switch serving's link (a running server swaps); a cluster: the SeldonDeployment
    return version.version
