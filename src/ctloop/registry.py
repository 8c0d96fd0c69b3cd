"""MLflow adapter: the only module that imports ``mlflow``.

Model versions hold the ONNX model (what serving runs) and, in the same run, the scikit-learn
model; tags carry lineage (git SHA, pipeline version, data snapshot hash, feature service).
Promotion and rollback are alias moves: ``challenger`` for a blessed candidate, ``champion`` for
the served model. Registration is idempotent on (pipeline run, data snapshot hash).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctloop.config import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
LINEAGE_TAGS = ("git_sha", "pipeline_version", "pipeline_run", "data_sha256", "feature_service", "window")
_PINNED = ("scikit-learn", "skops", "numpy", "scipy", "onnx", "onnxruntime")


class RegistryError(RuntimeError):
    """The registry is unreachable or holds nothing for the request."""


@dataclass(frozen=True)
class ModelVersion:
    """A registered version with its aliases and tags."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0


def _quiet_mlflow() -> None:
    # no outside contact: telemetry off; artifacts via the local store
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def pinned_requirements() -> list[str]:
    """``name==version`` of what loading the model needs, from this (locked) environment."""
    return [f"{name}=={metadata.version(name)}" for name in _PINNED]


class Registry:
    """MLflow tracking and model registry for one environment."""

    def __init__(self, settings: Settings) -> None:
        """Point MLflow at this environment's tracking and registry URI."""
        _quiet_mlflow()
        import mlflow

        self.settings = settings
        self.name = settings.registry.model_name
        self.uri = settings.tracking_uri
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        self._mlflow = mlflow
        self.client: MlflowClient = mlflow.tracking.MlflowClient(self.uri, self.uri)

    def experiment_id(self) -> str:
        """Create the experiment on first use, with artifacts under the data directory."""
        name = self.settings.registry.experiment
        try:
            found = self.client.get_experiment_by_name(name)
        except Exception as exc:
            raise RegistryError(f"MLflow at {self.uri} is unreachable: {exc}") from exc
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:"):
            self.settings.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.settings.artifact_root.as_uri()
        return str(self.client.create_experiment(name, artifact_location=location))

    @contextmanager
    def run(self, run_name: str, tags: dict[str, str]) -> Iterator[str]:
        """An MLflow run in the experiment; yields its id."""
        with self._mlflow.start_run(experiment_id=self.experiment_id(), run_name=run_name, tags=tags) as active:
            yield str(active.info.run_id)

    def log_evaluation(self, params: dict[str, Any], metrics: dict[str, float], artifacts: dict[str, str]) -> None:
        """Params, metrics and text artifacts on the active run."""
        self._mlflow.log_params(params)
        self._mlflow.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)})  # NaN is not loggable
        for name, text in artifacts.items():
            self._mlflow.log_text(text, name)

    def find_version(self, tags: dict[str, str]) -> ModelVersion | None:
        """A version whose tags contain all of ``tags`` (idempotent registration)."""
        query = " and ".join(f"tag.{k} = '{v}'" for k, v in sorted(tags.items()))
        found = self.client.search_model_versions(f"name = '{self.name}' and {query}")
        return self._convert(found[0]) if found else None

    def register(
        self,
        model_dir: Path,
        run_name: str,
        tags: dict[str, str],
        params: dict[str, Any],
        metrics: dict[str, float],
        artifacts: dict[str, str],
    ) -> ModelVersion:
        """Log the run (params, metrics, sklearn + ONNX models) and register the ONNX model.

        A second call with the same ``pipeline_run`` and ``data_sha256`` returns the existing
        version instead of registering another.
        """
        import onnx

        key = {k: tags[k] for k in ("pipeline_run", "data_sha256") if tags.get(k)}
        if key:
            existing = self.find_version(key)
            if existing is not None:
                log.info("version %s already registered for %s", existing.version, key)
                return existing
        from ctloop.train import METADATA_FILE, ONNX_FILE, TRUSTED_SKOPS_TYPES, ModelBundle

        bundle = ModelBundle.load(model_dir)
        requirements = pinned_requirements()
        with self.run(run_name, tags) as run_id:
            self.log_evaluation(params, metrics, artifacts)
            self._mlflow.log_dict(bundle.metadata, "metadata.json")
            self._mlflow.sklearn.log_model(
                bundle.model,
                name="sklearn-model",
                pip_requirements=requirements,
                serialization_format="skops",
                skops_trusted_types=TRUSTED_SKOPS_TYPES,
            )
            info = self._mlflow.onnx.log_model(
                onnx.load_from_string(bundle.onnx),
                name="model",
                pip_requirements=requirements,
                onnx_execution_providers=["CPUExecutionProvider"],
            )
            self._mlflow.log_artifact(str(model_dir / ONNX_FILE), "serving")
            self._mlflow.log_artifact(str(model_dir / METADATA_FILE), "serving")
        self._ensure_model()
        created = self.client.create_model_version(self.name, info.model_uri, run_id=run_id, tags=tags)
        log.info("registered %s version %s", self.name, created.version)
        return self.get(str(created.version))

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            self.client.create_registered_model(
                self.name, description="Will this New York flight arrive 15+ minutes late?"
            )

    def get(self, version: str) -> ModelVersion:
        """One version by number."""
        from mlflow.exceptions import MlflowException

        try:
            return self._convert(self.client.get_model_version(self.name, version))
        except MlflowException as exc:
            raise RegistryError(f"{self.name} has no version {version}") from exc

    def by_alias(self, alias: str) -> ModelVersion | None:
        """The version an alias points to, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self._convert(self.client.get_model_version_by_alias(self.name, alias))
        except MlflowException:
            return None

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (promotion and rollback are this)."""
        self.get(version)
        self.client.set_registered_model_alias(self.name, alias, version)

    def promote(self, version: str) -> ModelVersion | None:
        """Make ``version`` the champion; return the previous champion (kept as a version)."""
        previous = self.by_alias(CHAMPION)
        self.set_alias(CHAMPION, version)
        self.client.set_model_version_tag(self.name, version, "promoted_from", previous.version if previous else "")
        return previous

    def versions(self) -> list[ModelVersion]:
        """All versions with their aliases, newest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{self.name}'")
            aliases = self.client.get_registered_model(self.name).aliases or {}
        except MlflowException:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in sorted(aliases.items()):
            by_version.setdefault(str(version), []).append(alias)
        out = [dataclasses.replace(self._convert(v), aliases=tuple(by_version.get(str(v.version), ()))) for v in found]
        return sorted(out, key=lambda v: int(v.version), reverse=True)

    def download_serving(self, version: str, dest: Path | None = None) -> Path:
        """Download a version's serving folder (``model.onnx`` + ``metadata.json``)."""
        mv = self.get(version)
        target = dest or Path(tempfile.mkdtemp(prefix=f"ctloop-v{version}-"))
        path = self._mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path="serving", dst_path=str(target), tracking_uri=self.uri
        )
        return Path(path)

    def model_tags(self, prefix: str) -> dict[str, str]:
        """The registered model's tags under ``prefix`` (prefix removed): small state kept with the model."""
        tags = self.client.get_registered_model(self.name).tags or {}
        return {k.removeprefix(prefix): str(v) for k, v in tags.items() if k.startswith(prefix)}

    def set_model_tags(self, prefix: str, values: dict[str, str]) -> None:
        """Set tags ``<prefix><key>`` on the registered model."""
        for key, value in values.items():
            self.client.set_registered_model_tag(self.name, f"{prefix}{key}", value)

    def serving_uri(self, mv: ModelVersion) -> str:
        """Where a version's serving folder lives, as object storage Seldon's initializer can read.

        With MLflow's proxied artifacts (``mlflow-artifacts:/...``) the path is mapped onto the
        server's ``--artifacts-destination`` (``[registry] artifacts_destination``).
        """
        run_uri = str(self.client.get_run(mv.run_id).info.artifact_uri).rstrip("/")
        return serving_uri_for(run_uri, self.settings.registry.artifacts_destination)

    def _convert(self, mv: Any) -> ModelVersion:
        return ModelVersion(
            name=str(mv.name),
            version=str(mv.version),
            run_id=str(mv.run_id),
            aliases=tuple(getattr(mv, "aliases", ()) or ()),
            tags=dict(mv.tags or {}),
            created_ms=int(mv.creation_timestamp or 0),
        )


def serving_uri_for(run_artifact_uri: str, artifacts_destination: str) -> str:
    """``<run artifacts>/serving``, with ``mlflow-artifacts:/`` mapped onto ``artifacts_destination``."""
    uri = f"{run_artifact_uri.rstrip('/')}/serving"
    prefix = "mlflow-artifacts:"
    if uri.startswith(prefix):
        if not artifacts_destination:
            raise RegistryError(
                f"{uri} is served by the MLflow server: set [registry] artifacts_destination "
                "(the server's --artifacts-destination)"
            )
        uri = f"{artifacts_destination.rstrip('/')}/{uri.removeprefix(prefix).lstrip('/')}"
    return uri
