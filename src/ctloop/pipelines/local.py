"""Run ctloop's pipelines on this machine through kfp.local (``ctloop.adapters.kfp_local``).

``flight-features`` appends days to the offline store and materializes them; ``flight-delay-training``
reads them and trains. :class:`LocalRetrainer` is what the monitor and the replay are given to
retrain here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ctloop.adapters.kfp_local import Callback, LocalRun, PipelineStepError, run_pipeline
from ctloop.app.feature_steps import MissingPartitionsError, days_to_append
from ctloop.app.monitor_pass import Retrain
from ctloop.config import Settings
from ctloop.pipelines import TASK_ENV

log = logging.getLogger(__name__)

__all__ = [
    "FEATURE_TASKS",
    "TASKS",
    "LocalFeatures",
    "LocalRetrainer",
    "LocalRun",
    "PipelineStepError",
    "features_for_window",
    "run",
    "run_features",
]

TASKS = ("ingest", "validate", "training-set", "tune", "train", "evaluate", "gate", "register")
"""The training pipeline's tasks, in order."""
FEATURE_TASKS = ("ingest-days", "validate-days", "compute-features", "append-offline", "materialize-online")
"""The feature pipeline's tasks, in order."""
PRELOAD = (
    "kfp.dsl.executor_main",
    "ctloop.app.pipeline_steps",
    "ctloop.app.feature_steps",
    "ctloop.core.data",
    "ctloop.adapters.offline_store",
    "ctloop.core.schema",
    "hypothesis",
    "pandera.backends.pandas.register",
    "pandera.backends.pandas.builtin_checks",
    "pandera.backends.pandas.builtin_hypotheses",
    "hypothesis.extra.pandas",
    "ctloop.core.daily",
    "ctloop.adapters.featurestore",
    "ctloop.adapters.feast_asof",
    "ctloop.adapters.feast_registry",
    "feast.repo_operations",
    "feast.infra.passthrough_provider",
    "feast.infra.registry.file",
    "feast.infra.online_stores.redis",
    "feast.infra.compute_engines.local.compute",
    "feast.infra.offline_stores.duckdb",
    "ibis.backends.duckdb",
    "ibis.formats.pyarrow",
    "sqlglot.dialects.duckdb",
    "importlib_metadata",
    "ctloop.core.train",
    "ctloop.core.tune",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.compose",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "skl2onnx",
    "onnxruntime",
    "skops.io",
    "ctloop.adapters.registry",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.onnx",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.utils.requirements_utils:_init_modules_to_packages_map",
)
"""What the tasks of both pipelines import, in the order the tasks first need it: a warm task
process (``[pipeline] warm_tasks``) starts with these already imported. ``module:function``
fills a cache the tasks would each fill: MLflow's map of installed packages, which it scans the
environment for at every model it logs (0.7 s of the register task)."""


@dataclass(frozen=True)
class LocalRetrainer:
    """Retrains on this machine: the pipeline through kfp.local, its outcome known when it returns.

    What the monitor and the replay are given where the command starts
    (:class:`ctloop.app.monitor_pass.Retrainer`).
    """

    git_sha: str = "monitor"
    runner: str = ""

    def __call__(self, settings: Settings, start: str, end: str, as_of: str) -> Retrain:
        """Run it: ``promoted`` (with the version, and the floors waived), ``not blessed`` or ``failed`` (with why).

        The feature pipeline runs first for the window's days the offline store lacks (the new
        data since its last run), so the training pipeline finds every partition it reads; with
        ``[pipeline] partition_wait_s`` above 0 a feature run scheduled beside this one appends
        them (the replay's background runs), and the training set step waits for them.
        """
        try:
            if not settings.pipeline.partition_wait_s:
                features_for_window(settings, start, end, git_sha=self.git_sha, runner=self.runner)
            run_ = run(settings, start, end, git_sha=self.git_sha, as_of=as_of, runner=self.runner)
        except (PipelineStepError, MissingPartitionsError) as exc:
            log.warning("retrain failed: %s", exc)
            detail = f"step {exc.task}: {exc.detail}" if isinstance(exc, PipelineStepError) else str(exc)
            return Retrain("failed", reasons=(detail,))
        decision = run_.artifact_metadata("gate", "decision")
        if run_.output("gate") != "blessed":
            return Retrain("not blessed", reasons=tuple(str(r) for r in decision.get("reasons", [])))
        return Retrain("promoted", run_.output("register"), tuple(str(w) for w in decision.get("waived", [])))


@dataclass(frozen=True)
class LocalFeatures:
    """Runs the feature pipeline on this machine (:class:`ctloop.app.replay.FeatureRunner`); raises on failure."""

    git_sha: str = "replay"
    runner: str = ""

    def __call__(self, settings: Settings, days: str) -> None:
        """Append and materialize ``days``."""
        run_features(settings, days, git_sha=self.git_sha, runner=self.runner)


def run(
    settings: Settings,
    start: str,
    end: str,
    *,
    promote: bool = True,
    git_sha: str = "unknown",
    callback: Callback | None = None,
    as_of: str = "",
    runner: str = "",
) -> LocalRun:
    """Run ``flight-delay-training`` for a window; raise :class:`PipelineStepError` on a failed step.

    ``runner``: ``subprocess`` or ``container`` (empty: ``[pipeline] local_runner``). Reads the
    offline store's day partitions of the window (the feature pipeline appends them); needs the
    registry, as a cluster would provide it.
    """
    from ctloop.pipelines.training import build

    def pipeline(image: str) -> Any:
        return build(settings, git_sha=git_sha, pipeline_version=f"local-{git_sha[:12]}", image=image)

    def arguments(task_settings: Settings) -> dict[str, object]:
        return {
            "settings_json": task_settings.to_json(),
            "start": start,
            "end": end,
            "promote": promote,
            "as_of": as_of,
        }

    return run_pipeline(
        settings,
        pipeline,
        arguments,
        log_name=f"train-{start}-{end}",
        env=TASK_ENV,
        runner=runner,
        git_sha=git_sha,
        callback=callback,
        preload=PRELOAD,
    )


def run_features(
    settings: Settings,
    days: str,
    *,
    git_sha: str = "unknown",
    callback: Callback | None = None,
    runner: str = "",
) -> LocalRun:
    """Run ``flight-features`` for ``days`` (``A``, ``A,B`` or ``A..B``); raise :class:`PipelineStepError` on failure.

    Needs the online store (Redis) reachable for its last step, as a cluster would provide it.
    """
    from ctloop.pipelines.features import build

    def pipeline(image: str) -> Any:
        return build(settings, image=image, scheduled_at="")  # kfp.local has no schedule time

    def arguments(task_settings: Settings) -> dict[str, object]:
        return {"settings_json": task_settings.to_json(), "days": days}

    safe = days.replace(",", "_").replace("..", "_")[:64]
    return run_pipeline(
        settings,
        pipeline,
        arguments,
        log_name=f"features-{safe}",
        env=TASK_ENV,
        runner=runner,
        git_sha=git_sha,
        callback=callback,
        preload=PRELOAD,
    )


def features_for_window(
    settings: Settings,
    start: str,
    end: str,
    *,
    git_sha: str = "unknown",
    callback: Callback | None = None,
    runner: str = "",
) -> LocalRun | None:
    """Run ``flight-features`` for the days a training window needs and the store lacks; None if none."""
    days = days_to_append(settings, start, end)
    if not days:
        return None
    return run_features(settings, days, git_sha=git_sha, callback=callback, runner=runner)
