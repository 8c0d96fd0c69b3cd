"""MLflow unreachable during register: a real tracking server stopped, or killed mid-register, then restarted.

``MlflowServer`` runs ``mlflow server`` on loopback over a SQLite store and an artifacts folder
that outlive it (a restart on the same port finds the same runs and versions), in a session of
its own so that ``kill()`` takes the uvicorn worker with it, as a crashed pod would.

The outage lands at the same place every time, with no timing involved:

- ``pipeline_with_outage_at``: a kfp.local run whose server is SIGKILLed when ``register``
  starts (kfp.local reports the start before it launches the task process, and the callback
  that kills runs synchronously on that report): everything before ran against a live server;
- ``register_through_outage``: the register step called in-process; the server is SIGKILLed
  from the registry's own log record of a step of ``Registry.register`` (a logging handler runs
  in the registering thread, between two MLflow calls: see :data:`KILL_POINTS`), then restarted
  on the same store; the same register (same pipeline run and data hash) is run again, and a
  third time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ctloop.adapters.services import ServiceError, free_port, port_open, wait_until
from ctloop.config import Settings

KILL_POINTS = {
    "run_started": "run %s started",
    "run_logged": "run %s logged; registering its model",
    "version_created": "registered %s version %s",
}
"""Where in ``Registry.register`` the server dies, by the log record (its format string) it dies on:
right after the MLflow run was created (nothing logged to it yet); after the run was logged and
closed, before the model version; after the model version was created, before its answer is used."""

REGISTRY_LOGGER = "ctloop.adapters.registry"
GIT_SHA = "0" * 40


@dataclass
class MlflowServer:
    """``mlflow server`` on 127.0.0.1 over ``workdir`` (SQLite store and artifacts): start, kill, restart."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)
    """Seconds each start took until ``/health`` answered."""

    @property
    def uri(self) -> str:
        """The tracking URI clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process we started is alive."""
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """True when ``/health`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=1.0) as answer:  # noqa: S310 - http://127.0.0.1 built here
                return int(answer.status) == 200
        except OSError:
            return False

    def start(self, timeout_s: float = 90.0) -> float:
        """Start the server (on the same port and store as before, if it ran); seconds until ``/health``."""
        if self.running:
            raise ServiceError(f"MLflow server on port {self.port} already runs")
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken")
        self.workdir.mkdir(parents=True, exist_ok=True)
        artifacts = self.workdir / "artifacts"
        artifacts.mkdir(exist_ok=True)
        args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}"]
        args += ["--artifacts-destination", str(artifacts)]
        args += ["--workers", "1"]  # one uvicorn worker starts sooner than the default four; a test needs no more
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        began = time.monotonic()
        with (self.workdir / "server.log").open("ab") as sink:
            self.process = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True
            )
        try:
            wait_until(lambda: self.healthy() or not self.running, "mlflow server", timeout_s, interval_s=0.2)
        except ServiceError:
            self.kill()
            raise
        if not self.running:
            tail = (self.workdir / "server.log").read_text(errors="replace")[-500:]
            raise ServiceError(f"mlflow server exited on start: {tail}")
        took = time.monotonic() - began
        self.starts.append(took)
        return took

    def kill(self) -> None:
        """SIGKILL the server's whole session (the CLI and its uvicorn worker), as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):  # all gone already
            os.killpg(self.process.pid, signal.SIGKILL)  # the session we started: its id is the CLI's pid
        self.process.wait()
        wait_until(lambda: not port_open(self.port), f"port {self.port} closed", 10.0)


class KillOnLog(logging.Handler):
    """Kills ``server`` when ``Registry.register`` emits the record with format string ``message``."""

    def __init__(self, server: MlflowServer, message: str) -> None:
        """Watch for ``message`` (the record's unformatted ``msg``)."""
        super().__init__(logging.INFO)
        self.server, self.message = server, message
        self.fired_at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Kill the server on the first matching record (in the thread that logs it)."""
        if self.fired_at is None and record.msg == self.message:
            self.server.kill()
            self.fired_at = time.monotonic()


@contextmanager
def kill_on_log(server: MlflowServer, message: str) -> Iterator[KillOnLog]:
    """A :class:`KillOnLog` on the registry's logger (at INFO) for the duration of the block."""
    logger = logging.getLogger(REGISTRY_LOGGER)
    handler = KillOnLog(server, message)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass(frozen=True)
class PipelineOutage:
    """A kfp.local run whose MLflow server died when a task started."""

    error: Any  # pipelines.local.PipelineStepError, or None when the run did not fail
    run_s: float
    failed_s_after_kill: float
    job_dir: Path | None


def pipeline_with_outage_at(
    settings: Settings, server: MlflowServer, start: str, end: str, task: str = "register"
) -> PipelineOutage:
    """Run the training pipeline and SIGKILL the MLflow server when ``task`` starts."""
    from ctloop.pipelines import local

    killed_at: list[float] = []

    def on_event(name: str, event: str) -> None:
        if name == task and event == "started" and not killed_at:
            server.kill()
            killed_at.append(time.monotonic())

    local.features_for_window(settings, start, end, git_sha=GIT_SHA)  # the partitions training reads
    root = settings.data_dir / "kfp"
    before = {p.name for p in root.iterdir()} if root.is_dir() else set()
    began = time.monotonic()
    error = None
    try:
        local.run(settings, start, end, git_sha=GIT_SHA, callback=on_event)
    except local.PipelineStepError as exc:
        error = exc
    done = time.monotonic()
    created = sorted(p for p in root.iterdir() if p.name not in before) if root.is_dir() else []
    return PipelineOutage(
        error, done - began, done - killed_at[0] if killed_at else float("nan"), created[-1] if created else None
    )


def register_inputs(job_dir: Path, start: str, end: str) -> tuple[Path, dict[str, Any], dict[str, str]]:
    """What the register task of a kfp.local run (``git_sha`` zeros, window ``start..end``) was given.

    The trained model folder, the evaluation document and the lineage tags, as
    ``src/ctloop/components/register.py`` builds them: a rerun of the step with these is the same register.
    """
    from ctloop.pipelines.local import LocalRun

    run = LocalRun(job_dir, job_dir / "none.log", 0.0)
    model_dir = job_dir / "train" / "model"
    document = run.evaluation()
    if document is None or not model_dir.is_dir():
        raise FileNotFoundError(f"{job_dir} has no trained model or evaluation")
    lineage = {
        "git_sha": GIT_SHA,
        "pipeline_version": f"local-{GIT_SHA[:12]}",
        "pipeline_run": run.job_name,
        "data_sha256": str(run.artifact_metadata("ingest", "snapshot")["sha256"]),
        "window": f"{start}..{end}",
        **json.loads(run.output("training-set") or "{}"),  # the feature partitions read and their hash
    }
    return model_dir, document, lineage


@dataclass(frozen=True)
class Outage:
    """One register through an outage at ``point``: the error, then the rerun and a third call after the restart."""

    point: str
    error: str
    error_s_after_kill: float
    restart_s: float
    rerun_version: str
    third_version: str
    versions: list[str]
    runs: int
    """MLflow runs left in the experiment for this register (the failed attempt's included)."""


def settings_for_point(settings: Settings, point: str) -> Settings:
    """A model and experiment of the point's own in the same server (each point starts from nothing)."""
    suffix = point.replace("_", "-")
    return settings.replace(
        registry=replace(
            settings.registry,
            model_name=f"{settings.registry.model_name}-{suffix}",
            experiment=f"{settings.registry.experiment}-{suffix}",
        )
    )


def register_through_outage(
    settings: Settings,
    server: MlflowServer,
    point: str,
    model_dir: Path,
    document: dict[str, Any],
    lineage: dict[str, str],
) -> Outage:
    """Register with the server killed at ``point``; restart it; the same register twice more."""
    from ctloop.adapters.registry import Registry, RegistryError
    from ctloop.app import pipeline_steps

    if not server.running:
        server.start()
    settings = settings_for_point(settings, point)
    error = ""
    with kill_on_log(server, KILL_POINTS[point]) as hook:
        try:
            pipeline_steps.register(settings, model_dir, document, lineage, promote=False)
        except RegistryError as exc:
            error = str(exc)
        failed_at = time.monotonic()
    if hook.fired_at is None:
        raise AssertionError(f"the registry never logged {KILL_POINTS[point]!r}: the server was not killed")
    restart_s = server.start()
    rerun = pipeline_steps.register(settings, model_dir, document, lineage, promote=False)
    third = pipeline_steps.register(settings, model_dir, document, lineage, promote=False)
    registry = Registry(settings)
    experiment = registry.experiment_id()
    from mlflow import MlflowClient  # the harness reads what the registry adapter wrote

    runs = MlflowClient(registry.uri).search_runs(
        [experiment], filter_string=f"tags.pipeline_run = '{lineage['pipeline_run']}'"
    )
    return Outage(
        point=point,
        error=error,
        error_s_after_kill=failed_at - hook.fired_at,
        restart_s=restart_s,
        rerun_version=rerun,
        third_version=third,
        versions=[v.version for v in registry.versions()],
        runs=len(runs),
    )
