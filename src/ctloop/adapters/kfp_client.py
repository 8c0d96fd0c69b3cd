"""Kubeflow Pipelines API adapter: the only module that talks to a KFP server (``kfp.Client``).

Pipeline versions are named by the git SHA of the code that compiled them: uploading a SHA that
is already there is a no-op that says so, so CD can re-run safely. Runs and recurring runs name
the version they start.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class KfpError(RuntimeError):
    """The KFP server refused, or what was asked for does not exist."""


@dataclass(frozen=True)
class Uploaded:
    """The outcome of an upload."""

    pipeline_id: str
    version_id: str
    version_name: str
    created: bool


def _by_name(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


class Kfp:
    """One KFP server (``host``: e.g. ``http://localhost:8080`` through ``kubectl port-forward``)."""

    def __init__(self, host: str, namespace: str = "kubeflow", client: Any = None) -> None:
        """Connect (``kfp.Client`` asks the server's ``/healthz`` right away)."""
        if client is None:
            import kfp

            try:
                with warnings.catch_warnings():  # "only works with KFP v2.0.0-beta.2 and later": we need 2.x
                    warnings.simplefilter("ignore", FutureWarning)
                    client = kfp.Client(host=host, namespace=namespace)
            except (TimeoutError, OSError) as exc:
                raise KfpError(f"KFP server at {host} unreachable: {exc}") from None
        self.client = client
        self.namespace = namespace

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        from kfp_server_api.exceptions import ApiException

        try:
            return func(*args, **kwargs)
        except ApiException as exc:
            raise KfpError(f"{what}: KFP answered {exc.status} {exc.reason}") from None
        except OSError as exc:  # urllib3 connection errors are OSErrors underneath
            raise KfpError(f"{what}: KFP server unreachable ({exc})") from None

    def find_version(self, pipeline_id: str, version_name: str) -> str | None:
        """The id of ``pipeline_id``'s version named ``version_name``, or None."""
        found = self._call(
            "listing pipeline versions",
            self.client.list_pipeline_versions,
            pipeline_id,
            page_size=1,
            filter=_by_name(version_name),
        )
        versions = found.pipeline_versions or []
        return str(versions[0].pipeline_version_id) if versions else None

    def upload(self, package: Path, pipeline_name: str, version_name: str, description: str = "") -> Uploaded:
        """Upload ``package`` as version ``version_name`` of ``pipeline_name`` (created if new); idempotent."""
        if not package.is_file():
            raise KfpError(f"{package} not found: compile it first (ctloop pipeline compile --output {package})")
        pipeline_id = self._call("looking up the pipeline", self.client.get_pipeline_id, pipeline_name)
        if pipeline_id is None:
            created = self._call(
                "creating the pipeline",
                self.client.upload_pipeline,
                str(package),
                pipeline_name=pipeline_name,
                description=description or None,
                namespace=None,
            )
            pipeline_id = str(created.pipeline_id)
        existing = self.find_version(pipeline_id, version_name)
        if existing is not None:
            return Uploaded(pipeline_id, existing, version_name, created=False)
        version = self._call(
            "uploading the pipeline version",
            self.client.upload_pipeline_version,
            str(package),
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
            description=description or None,
        )
        return Uploaded(pipeline_id, str(version.pipeline_version_id), version_name, created=True)

    def _experiment_id(self, name: str) -> str:
        from kfp_server_api.exceptions import ApiException

        try:
            experiment = self.client.get_experiment(experiment_name=name, namespace=self.namespace)
        except (ApiException, ValueError):
            experiment = self._call(
                "creating the experiment", self.client.create_experiment, name, namespace=self.namespace
            )
        return str(experiment.experiment_id)

    def _pipeline_id(self, pipeline_name: str) -> str:
        pipeline_id = self._call("looking up the pipeline", self.client.get_pipeline_id, pipeline_name)
        if pipeline_id is None:
            raise KfpError(f"no pipeline {pipeline_name!r} on the server: run `ctloop pipeline upload` first")
        return str(pipeline_id)

    def _version(self, pipeline_name: str, version_name: str) -> tuple[str, str]:
        pipeline_id = self._pipeline_id(pipeline_name)
        version_id = self.find_version(pipeline_id, version_name)
        if version_id is None:
            raise KfpError(f"pipeline {pipeline_name!r} has no version {version_name!r}: upload it first")
        return pipeline_id, version_id

    def _latest(self, pipeline_name: str) -> tuple[str, str]:
        pipeline_id = self._pipeline_id(pipeline_name)
        found = self._call(
            "listing pipeline versions",
            self.client.list_pipeline_versions,
            pipeline_id,
            page_size=1,
            sort_by="created_at desc",
        )
        versions = found.pipeline_versions or []
        if not versions:
            raise KfpError(f"pipeline {pipeline_name!r} has no version")
        return pipeline_id, str(versions[0].pipeline_version_id)

    def _start(self, ids: tuple[str, str], experiment: str, run_name: str, params: dict[str, Any]) -> str:
        pipeline_id, version_id = ids
        run = self._call(
            "starting the run",
            self.client.run_pipeline,
            self._experiment_id(experiment),
            run_name,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        return str(run.run_id)

    def run(self, pipeline_name: str, version_name: str, experiment: str, run_name: str, params: dict[str, Any]) -> str:
        """Start one run of a pipeline version; return the run id."""
        return self._start(self._version(pipeline_name, version_name), experiment, run_name, params)

    def run_latest(self, pipeline_name: str, experiment: str, run_name: str, params: dict[str, Any]) -> str:
        """Start a run of the newest uploaded version (the monitor's retrain); return the run id."""
        return self._start(self._latest(pipeline_name), experiment, run_name, params)

    def schedule(
        self,
        pipeline_name: str,
        version_name: str,
        experiment: str,
        schedule_name: str,
        cron: str,
        params: dict[str, Any],
    ) -> tuple[str, bool]:
        """Create or replace the recurring run ``schedule_name``; return its id and whether it changed.

        KFP has no update for recurring runs: one that already runs this version on this cron is
        kept as it is; otherwise it is deleted and created again.
        """
        pipeline_id, version_id = self._version(pipeline_name, version_name)
        experiment_id = self._experiment_id(experiment)
        found = self._call(
            "listing recurring runs",
            self.client.list_recurring_runs,
            experiment_id=experiment_id,
            filter=_by_name(schedule_name),
        )
        for existing in found.recurring_runs or []:
            spec = existing.pipeline_version_reference
            cron_now = (
                existing.trigger.cron_schedule.cron if existing.trigger and existing.trigger.cron_schedule else None
            )
            if spec is not None and spec.pipeline_version_id == version_id and cron_now == cron:
                return str(existing.recurring_run_id), False
            self._call("replacing the recurring run", self.client.delete_recurring_run, existing.recurring_run_id)
        created = self._call(
            "creating the recurring run",
            self.client.create_recurring_run,
            experiment_id,
            schedule_name,
            cron_expression=cron,
            max_concurrency=1,
            no_catchup=True,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        return str(created.recurring_run_id), True
