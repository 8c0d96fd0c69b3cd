"""MLflow adapter: the only module that imports ``mlflow``.

Model versions hold the ONNX model (what serving runs) and, in the same run, the scikit-learn
model; tags carry lineage (git SHA, pipeline version, data snapshot hash, feature service).
Promotion and rollback are alias moves: ``challenger`` for a blessed candidate, ``champion`` for
the served model. Registration is idempotent on (pipeline run, data snapshot hash).

A tracking server that cannot be reached is a :class:`RegistryError` naming its URI, within
seconds (:data:`HTTP_LIMITS` bounds MLflow's retries), never a silent "no such version".
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate

from ctloop.config import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PROMOTED_FROM = "promoted_from"
"""Set by :meth:`Registry.promote` on the version it promotes: the champion it replaced ("" if none)."""
ROLLED_BACK_TO = "rolled_back_to"
"""Set by a rollback on the version it moved away from: the version it went back to."""
ROLLED_BACK_PROMOTED_FROM = "rolled_back_promoted_from"
"""The rolled-back version's ``promoted_from`` before the rollback cleared it (lineage kept)."""
_PINNED = ("scikit-learn", "skops", "numpy", "scipy", "onnx", "onnxruntime")

HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
"""MLflow's HTTP client settings during this module's calls to a tracking server.

MLflow's defaults (7 retries, backoff factor 2, up to 120 s per wait, a 120 s timeout) are sized
for rate-limited hosted services: against a server that is down, one call retries for about four
minutes before it fails, and a pipeline step or a CLI command hangs that long with no word. Ours
is one in-cluster server (or a local one): a refused connection is retried twice, after 0 s and
2-2.5 s, so an unreachable server is reported in under 3 s; a server that accepts but does not
answer costs at most 3 x 20 s. A rerun (or KFP's task retry) takes over from there: registration
is idempotent. urllib3 applies the same count to connect, read and status (429/5xx) retries.
A variable the operator set in the environment wins over these."""


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


class _NoRetryWarnings(logging.Filter):
    """Drops urllib3's "Retrying (...)" warnings: the error that follows says how many retries it gave up after."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying")


class _BoundedHttp:
    """:data:`HTTP_LIMITS` in the environment while at least one registry call is under way.

    MLflow reads them from ``os.environ`` at each request (there is no per-client setting), so
    they are set only while this module talks to MLflow, and the process's other MLflow users
    keep their own. Nested and concurrent calls share one setting (a depth count under a lock):
    the first to enter sets the variables, the last to leave restores them. For the same span
    urllib3's per-retry warnings are dropped (a CLI would print each one above its error line).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: dict[str, str | None] = {}
        self._quiet = _NoRetryWarnings()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = {key: os.environ.get(key) for key in HTTP_LIMITS}
                for key, value in HTTP_LIMITS.items():
                    os.environ.setdefault(key, value)
                logging.getLogger("urllib3.connectionpool").addFilter(self._quiet)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    logging.getLogger("urllib3.connectionpool").removeFilter(self._quiet)
                    for key, saved in self._saved.items():
                        if saved is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = saved


bounded_http = _BoundedHttp()
"""``with bounded_http():`` runs a block of MLflow calls under :data:`HTTP_LIMITS`."""


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the tracking server could not be reached, when ``exc`` (or what caused it) says so.

    MLflow wraps the HTTP client's errors in ``MlflowException`` (as cause or context); a refused
    or dropped connection and a timeout are "unreachable", anything the server answered is not.
    """
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.Timeout):
            return f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '?')} s"
        if isinstance(current, requests.exceptions.ConnectionError):
            text = str(current)
            found = re.search(r"\[Errno -?\d+\] ([^'\"()]+)", text) or re.search(r"RemoteDisconnected\('([^']+)'", text)
            return found.group(1).strip().rstrip(".") if found else type(current).__name__
        current = current.__cause__ or current.__context__
    return None


def _guarded[**P, R](method: Callable[Concatenate[Registry, P], R]) -> Callable[Concatenate[Registry, P], R]:
    """Run a registry method under :meth:`Registry.guard`."""

    @functools.wraps(method)
    def wrapper(self: Registry, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.guard():
            return method(self, *args, **kwargs)

    return wrapper


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
        self._client: MlflowClient = mlflow.tracking.MlflowClient(self.uri, self.uri)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Bounded HTTP retries (:data:`HTTP_LIMITS`); an unreachable server becomes :class:`RegistryError`.

        The error is one line naming the tracking URI, raised within seconds when the server is
        down, whichever call (search, run, artifact upload, model version) met it.
        """
        if not self.uri.startswith(("http://", "https://")):
            yield  # a local store: no HTTP, nothing to bound
            return
        with bounded_http():
            try:
                yield
            except RegistryError:
                raise
            except Exception as exc:
                reason = unreachable_reason(exc)
                if reason is None:
                    raise
                retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
                raise RegistryError(
                    f"MLflow at {self.uri} is unreachable ({reason}; gave up after {retries} retries): "
                    "check that the tracking server runs and that registry.tracking_uri points at it"
                ) from exc

    @_guarded
    def experiment_id(self) -> str:
        """Create the experiment on first use, with artifacts under the data directory."""
        name = self.settings.registry.experiment
        try:
            found = self._client.get_experiment_by_name(name)
        except Exception as exc:
            if unreachable_reason(exc):
                raise  # the guard's one-line error
            raise RegistryError(f"MLflow at {self.uri} cannot be used: {exc}") from exc  # e.g. a store that cannot open
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:"):
            self.settings.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.settings.artifact_root.as_uri()
        return str(self._client.create_experiment(name, artifact_location=location))

    @contextmanager
    def run(self, run_name: str, tags: dict[str, str]) -> Iterator[str]:
        """An MLflow run in the experiment; yields its id."""
        with (
            self.guard(),
            self._mlflow.start_run(experiment_id=self.experiment_id(), run_name=run_name, tags=tags) as active,
        ):
            yield str(active.info.run_id)

    @_guarded
    def log_evaluation(
        self, params: dict[str, Any], metrics: dict[str, float], artifacts: dict[str, str], model_id: str | None = None
    ) -> None:
        """Params, metrics and text artifacts on the active run; ``model_id``: the logged model the metrics are of."""
        self._mlflow.log_params(params)
        finite = {k: v for k, v in metrics.items() if not math.isnan(v)}  # NaN is not loggable
        self._mlflow.log_metrics(finite, model_id=model_id)
        for name, text in artifacts.items():
            self._mlflow.log_text(text, name)

    @_guarded
    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The metrics a run logged (a version's run: its evaluation, ``eval_auc`` and the rest)."""
        return {str(k): float(v) for k, v in self._client.get_run(run_id).data.metrics.items()}

    @_guarded
    def log_folder(self, folder: Path, artifact_path: str) -> None:
        """Every file of ``folder`` as artifacts of the active run, under ``artifact_path``."""
        self._mlflow.log_artifacts(str(folder), artifact_path)

    @_guarded
    def find_version(self, tags: dict[str, str]) -> ModelVersion | None:
        """A version whose tags contain all of ``tags`` (idempotent registration)."""
        query = " and ".join(f"tag.{k} = '{v}'" for k, v in sorted(tags.items()))
        found = self._client.search_model_versions(f"name = '{self.name}' and {query}")
        return self._convert(found[0]) if found else None

    @_guarded
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
        from ctloop.contract.layout import METADATA_FILE, ONNX_FILE
        from ctloop.core.train import TRUSTED_SKOPS_TYPES, ModelBundle

        bundle = ModelBundle.load(model_dir)
        requirements = pinned_requirements()
        with self.run(run_name, tags) as run_id:
            log.info("run %s started", run_id)
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
            # after the models: the metrics are of the ONNX export (what evaluate scored and serving
            # runs), linked to it as they are logged; logged before, MLflow would copy every one of
            # them to each model as it logs it, a query per metric
            self.log_evaluation(params, metrics, artifacts, model_id=info.model_id)
        log.info("run %s logged; registering its model", run_id)
        self._ensure_model()
        # model_id: a tracking server refuses a ``models:/m-...`` source without it (a SQLite store did not ask)
        created = self._client.create_model_version(
            self.name, info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
        )
        log.info("registered %s version %s", self.name, created.version)
        return self.get(str(created.version))

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(self.name)
        except MlflowException as exc:
            if unreachable_reason(exc):
                raise  # not "no such model": the server is gone
            self._client.create_registered_model(
                self.name, description="Will this New York flight arrive 15+ minutes late?"
            )

    @_guarded
    def get(self, version: str) -> ModelVersion:
        """One version by number."""
        from mlflow.exceptions import MlflowException

        try:
            return self._convert(self._client.get_model_version(self.name, version))
        except MlflowException as exc:
            if unreachable_reason(exc):
                raise
            raise RegistryError(f"{self.name} has no version {version}") from exc

    @_guarded
    def by_alias(self, alias: str) -> ModelVersion | None:
        """The version an alias points to, or None (an unreachable server is an error, not "none")."""
        from mlflow.exceptions import MlflowException

        try:
            return self._convert(self._client.get_model_version_by_alias(self.name, alias))
        except MlflowException as exc:
            if unreachable_reason(exc):
                raise
            return None

    @_guarded
    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (promotion and rollback are this)."""
        self.get(version)
        self._client.set_registered_model_alias(self.name, alias, version)

    @_guarded
    def set_version_tags(self, version: str, tags: dict[str, str]) -> None:
        """Set tags on one model version (an empty value clears its meaning, MLflow keeps the key)."""
        for key, value in tags.items():
            self._client.set_model_version_tag(self.name, version, key, value)

    @_guarded
    def promote(self, version: str) -> ModelVersion | None:
        """Make ``version`` the champion; return the previous champion (kept as a version)."""
        previous = self.by_alias(CHAMPION)
        self.set_alias(CHAMPION, version)
        self._client.set_model_version_tag(self.name, version, PROMOTED_FROM, previous.version if previous else "")
        return previous

    @_guarded
    def versions(self) -> list[ModelVersion]:
        """All versions with their aliases, newest first (none when the model does not exist yet)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.search_model_versions(f"name = '{self.name}'")
            aliases = self._client.get_registered_model(self.name).aliases or {}
        except MlflowException as exc:
            if unreachable_reason(exc):
                raise
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in sorted(aliases.items()):
            by_version.setdefault(str(version), []).append(alias)
        out = [dataclasses.replace(self._convert(v), aliases=tuple(by_version.get(str(v.version), ()))) for v in found]
        return sorted(out, key=lambda v: int(v.version), reverse=True)

    @_guarded
    def download_serving(self, version: str, dest: Path) -> Path:
        """Download a version's serving folder (``model.onnx`` + ``metadata.json``) into ``dest``; its path."""
        mv = self.get(version)
        path = self._mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path="serving", dst_path=str(dest), tracking_uri=self.uri
        )
        return Path(path)

    @_guarded
    def model_tags(self, prefix: str) -> dict[str, str]:
        """The registered model's tags under ``prefix`` (prefix removed): small state kept with the model."""
        tags = self._client.get_registered_model(self.name).tags or {}
        return {k.removeprefix(prefix): str(v) for k, v in tags.items() if k.startswith(prefix)}

    @_guarded
    def set_model_tags(self, prefix: str, values: dict[str, str]) -> None:
        """Set tags ``<prefix><key>`` on the registered model."""
        for key, value in values.items():
            self._client.set_registered_model_tag(self.name, f"{prefix}{key}", value)

    @_guarded
    def serving_uri(self, mv: ModelVersion) -> str:
        """Where a version's serving folder lives, as object storage Seldon's initializer can read.

        With MLflow's proxied artifacts (``mlflow-artifacts:/...``) the path is mapped onto the
        server's ``--artifacts-destination`` (``[registry] artifacts_destination``).
        """
        run_uri = str(self._client.get_run(mv.run_id).info.artifact_uri).rstrip("/")
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
