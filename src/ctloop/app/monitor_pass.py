"""One monitoring pass (``ctloop monitor``, the cluster's monitor CronJob): read, judge, maybe retrain.

1. The serving model: its version and training reference (``reference_fractions``) from the
   local serving folder, or from the registry's champion on a cluster.
2. Its counters over a window: Prometheus's ``increase`` on a cluster; locally the difference
   between this reading of serving's ``/metrics`` and the one taken a window earlier (readings
   kept in ``<data_dir>/monitor/readings.jsonl``).
3. Drift, delayed-label performance and the model's data age through the policy
   (``ctloop.core.monitor.decide``); the decision, its reasons and numbers appended to
   ``<data_dir>/monitor/decisions.jsonl``.
4. If it says retrain: the same training pipeline on the window before ``now`` — ``kfp.local``
   locally (the run's outcome is known at once), the KFP server on a cluster (started; its gate
   and register steps decide). A failed or unblessed run leaves the champion serving.

Where each of these reads and acts is a :class:`Watch`, chosen once where the command starts
(:func:`on_this_machine` or :func:`on_cluster`); the pass itself has no local/cluster branch.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ctloop.adapters import metrics_source
from ctloop.config import TRAINING_PIPELINE, Settings, duration_s
from ctloop.core.monitor import Counts, Decision, State, decide, drift, performance, window_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """The version under watch and its training metadata."""

    version: str
    metadata: dict[str, Any]

    def data_end(self) -> datetime | None:
        """The last day of the window it was trained on (fit split plus the evaluation days)."""
        fit_end = self.metadata.get("fit_end")
        if not fit_end:
            return None
        eval_days = int(self.metadata.get("params", {}).get("eval_days", 0))
        return datetime.combine(date.fromisoformat(fit_end) + timedelta(days=eval_days), datetime.min.time())


@dataclass(frozen=True)
class Retrain:
    """What became of a retrain: ``promoted``, ``not blessed``, ``failed`` or ``started <run id>``.

    ``version``: the registered version (a blessed run); ``reasons``: the gate's failed checks, the
    failed step's error, or for a promotion the floors the gate waived (``GateSettings.floors_yield_to_champion``).
    """

    outcome: str
    version: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class PassResult:
    """What a pass decided, and what became of a retrain it started."""

    decision: Decision
    outcome: str
    window: tuple[str, str] | None
    retrain: Retrain | None = None


def served_from_folder(settings: Settings) -> ServedModel:
    """The model a local serving stack answers with: the ``current`` serving folder."""
    from ctloop.contract.layout import CURRENT, METADATA_FILE, MODEL_CARD, serving_dir

    folder = serving_dir(settings.data_dir) / CURRENT
    if not (folder / MODEL_CARD).exists():
        raise metrics_source.MetricsSourceError(f"nothing deployed at {folder}: run `ctloop serve` or `ctloop deploy`")
    card = json.loads((folder / MODEL_CARD).read_text())
    return ServedModel(str(card["version"]), json.loads((folder / METADATA_FILE).read_text()))


def served_from_registry(settings: Settings) -> ServedModel:
    """The model a cluster serves: the registry's champion."""
    from ctloop.adapters.registry import CHAMPION, Registry, RegistryError
    from ctloop.contract.layout import METADATA_FILE

    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise RegistryError("no champion to monitor")
    with tempfile.TemporaryDirectory(prefix="ctloop-champion-") as tmp:
        folder = registry.download_serving(champion.version, Path(tmp))
        return ServedModel(champion.version, json.loads((folder / METADATA_FILE).read_text()))


READINGS_FILE = "readings.jsonl"


def counts_from_prometheus(settings: Settings, version: str, now: datetime) -> Counts:
    """The counters' ``increase`` over ``[monitor] window`` (Prometheus evaluates at its own now)."""
    samples = metrics_source.read_prometheus(settings.monitor.prometheus_url, settings.monitor.window)
    return Counts.from_samples(samples, version)


def counts_from_page(settings: Settings, version: str, now: datetime) -> Counts:
    """The counters over ``[monitor] window`` before ``now``, from serving's own ``/metrics``.

    This reading minus the newest earlier reading taken at least a window before ``now`` (none:
    everything since the workers started, which is less than a window); readings are kept for
    one window in ``<data_dir>/monitor/readings.jsonl``.
    """
    url = f"http://127.0.0.1:{settings.serving.rest_port}/metrics"
    reading = Counts.from_samples(metrics_source.read_page(url, version), version)
    width = timedelta(seconds=duration_s(settings.monitor.window))
    path = monitor_dir(settings) / READINGS_FILE
    lines = path.read_text().splitlines() if path.exists() else []
    readings = [(datetime.fromisoformat(r["at"]), r) for r in map(json.loads, lines)]
    readings = [(at, r) for at, r in readings if at < now]  # a rewound clock starts over
    earlier = [r for at, r in readings if at <= now - width]
    base = Counts.from_dict(earlier[-1]["counts"]) if earlier else None
    kept = [*earlier[-1:], *(r for at, r in readings if at > now - width)]
    kept.append({"at": now.isoformat(), "counts": asdict(reading)})
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    return reading.minus(base)


class Retrainer(Protocol):
    """Runs the training pipeline on ``[start, end]`` with only outcomes known at ``as_of``."""

    def __call__(self, settings: Settings, start: str, end: str, as_of: str) -> Retrain:
        """Start (or run) the pipeline; what became of it."""


@dataclass(frozen=True)
class KfpRetrainer:
    """Retrains on a cluster: a run of the newest uploaded pipeline version on the KFP server."""

    host: str

    def __call__(self, settings: Settings, start: str, end: str, as_of: str) -> Retrain:
        """Start the run; its gate and register steps decide."""
        from ctloop.adapters.kfp_client import Kfp

        params = {"start": start, "end": end, "settings_json": settings.to_json(portable=True), "as_of": as_of}
        run_id = Kfp(self.host).run_latest(TRAINING_PIPELINE, "ctloop", f"ct-{start}-{end}", params)
        return Retrain(f"started {run_id}")


class StateStore(Protocol):
    """The policy's memory between passes."""

    def load(self) -> State:
        """The last run's time, incident and outcome."""

    def save(self, state: State) -> None:
        """Remember them."""


@dataclass(frozen=True)
class StateFile:
    """The policy's memory in a file (a machine that keeps its files)."""

    path: Path

    def load(self) -> State:
        """The file's state, or a fresh one."""
        return State(**json.loads(self.path.read_text())) if self.path.exists() else State()

    def save(self, state: State) -> None:
        """Write it."""
        self.path.write_text(json.dumps(asdict(state)))


STATE_TAG = "ctloop.monitor."


@dataclass(frozen=True)
class RegistryState:
    """The policy's memory as tags on the registered model (a cluster's pods keep no files)."""

    settings: Settings

    def load(self) -> State:
        """The tags' state."""
        from ctloop.adapters.registry import Registry

        tags = Registry(self.settings).model_tags(STATE_TAG)
        return State(**{k: v for k, v in tags.items() if k in State.__dataclass_fields__})

    def save(self, state: State) -> None:
        """Set the tags."""
        from ctloop.adapters.registry import Registry

        Registry(self.settings).set_model_tags(STATE_TAG, asdict(state))


@dataclass(frozen=True)
class Watch:
    """Where a pass reads and acts: the served model, its counters, the policy's memory, retraining."""

    served: Callable[[Settings], ServedModel]
    counts: Callable[[Settings, str, datetime], Counts]
    state: StateStore
    retrain: Retrainer


def monitor_dir(settings: Settings) -> Path:
    """The monitor's files (decisions, readings, state) under the data folder."""
    folder = settings.data_dir / "monitor"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def on_this_machine(settings: Settings, retrain: Retrainer) -> Watch:
    """The local serving folder and ``/metrics`` page, a state file, and the given retrainer (kfp.local)."""
    return Watch(served_from_folder, counts_from_page, StateFile(monitor_dir(settings) / "state.json"), retrain)


def on_cluster(settings: Settings) -> Watch:
    """The registry's champion, Prometheus, registry tags, and runs on the KFP server."""
    return Watch(
        served_from_registry, counts_from_prometheus, RegistryState(settings), KfpRetrainer(settings.monitor.kfp_host)
    )


def monitor_pass(settings: Settings, now: datetime, watch: Watch, dry_run: bool = False) -> PassResult:
    """Read, decide, record; retrain when the policy says so (and ``dry_run`` is off)."""
    folder = monitor_dir(settings)
    state = watch.state.load()
    model = watch.served(settings)
    window = watch.counts(settings, model.version, now)
    reference = model.metadata.get("reference_fractions")
    window_drift = drift(window, reference) if reference and window.rows() else None
    decision = decide(now, model.version, model.data_end(), window_drift, performance(window), settings.monitor, state)
    outcome, trained, retrain = "none", None, None
    if decision.retrain and not dry_run:
        trained = window_for(now, settings.monitor.train_window_days)
        retrain = watch.retrain(settings, *trained, now.isoformat())
        outcome = retrain.outcome
        state = State(last_run_at=now.isoformat(), last_incident="+".join(decision.triggers), last_outcome=outcome)
        watch.state.save(state)
    elif decision.retrain:
        outcome = "dry run"
    record = {**decision.to_dict(), "outcome": outcome, "window": trained}
    if retrain is not None:
        record.update(version=retrain.version, gate_reasons=list(retrain.reasons))
    with (folder / "decisions.jsonl").open("a") as log_file:
        log_file.write(json.dumps(record) + "\n")
    log.info("monitor decision: %s", json.dumps(record))  # a cluster's CronJob keeps its log, not its files
    return PassResult(decision, outcome, trained, retrain)
