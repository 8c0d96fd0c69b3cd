"""One monitoring pass (``ctloop monitor``, the cluster's monitor CronJob): read, judge, maybe retrain.

1. The serving model: its version and training reference (``reference_fractions``) from the
   local serving folder, or from the registry's champion on a cluster.
2. Its counters over a window: Prometheus's ``increase`` on a cluster; locally the difference
   between this reading of serving's ``/metrics`` and the one taken a window earlier (readings
   kept in ``<data_dir>/monitor/readings.jsonl``).
3. Drift, delayed-label performance and the model's data age through the policy
   (``ctloop.monitor.decide``); the decision, its reasons and numbers appended to
   ``<data_dir>/monitor/decisions.jsonl``.
4. If it says retrain: the same training pipeline on the window before ``now`` — ``kfp.local``
   locally (the run's outcome is known at once), the KFP server on a cluster (started; its gate
   and register steps decide). A failed or unblessed run leaves the champion serving.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ctloop import metrics_source
from ctloop.config import Settings, duration_s
from ctloop.monitor import Counts, Decision, State, decide, drift, performance, window_for

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

    ``version``: the registered version (a blessed run); ``reasons``: the gate's failed checks, or
    the failed step's error.
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


def served_model(settings: Settings) -> ServedModel:
    """The model serving answers with: the local ``current`` folder, or the registry's champion."""
    if settings.deploy.target == "local":
        from ctloop.deploy import CURRENT, MODEL_CARD, serving_dir

        folder = serving_dir(settings) / CURRENT
        if not (folder / MODEL_CARD).exists():
            raise metrics_source.MetricsSourceError(
                f"nothing deployed at {folder}: run `ctloop serve` or `ctloop deploy`"
            )
        card = json.loads((folder / MODEL_CARD).read_text())
        return ServedModel(str(card["version"]), json.loads((folder / "metadata.json").read_text()))
    from ctloop.registry import CHAMPION, Registry, RegistryError

    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise RegistryError("no champion to monitor")
    folder = registry.download_serving(champion.version)
    return ServedModel(champion.version, json.loads((folder / "metadata.json").read_text()))


READINGS_FILE = "readings.jsonl"


def _read_window(settings: Settings, version: str, folder: Path, now: datetime) -> Counts:
    """The counters over ``[monitor] window`` before ``now``.

    Prometheus: its ``increase`` over the window. Locally: this reading of ``/metrics`` minus the
    newest earlier reading taken at least a window before ``now`` (none: everything since the
    workers started, which is less than a window); readings are kept for one window.
    """
    if settings.monitor.prometheus_url:
        samples = metrics_source.read_prometheus(settings.monitor.prometheus_url, settings.monitor.window)
        return Counts.from_samples(samples, version)
    url = f"http://127.0.0.1:{settings.serving.rest_port}/metrics"
    reading = Counts.from_samples(metrics_source.read_page(url), version)
    width = timedelta(seconds=duration_s(settings.monitor.window))
    path = folder / READINGS_FILE
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


def _retrain(settings: Settings, start: str, end: str, now: datetime) -> Retrain:
    """Run the training pipeline on the window, with only outcomes known at ``now``."""
    as_of = now.isoformat()
    if settings.monitor.prometheus_url:  # a cluster: the KFP server runs it
        from ctloop.kfp_client import Kfp

        client = Kfp(settings.monitor.kfp_host)
        params = {"start": start, "end": end, "settings_json": settings.to_json(portable=True), "as_of": as_of}
        run_id = client.run_latest("flight-delay-training", "ctloop", f"ct-{start}-{end}", params)
        return Retrain(f"started {run_id}")
    from pipelines import local

    try:
        run = local.run(settings, start, end, git_sha="monitor", as_of=as_of)
    except local.PipelineStepError as exc:
        log.warning("retrain failed: %s", exc)
        return Retrain("failed", reasons=(f"step {exc.task}: {exc.detail}",))
    reasons = tuple(str(r) for r in run.artifact_metadata("gate", "decision").get("reasons", []))
    if run.output("gate") != "blessed":
        return Retrain("not blessed", reasons=reasons)
    return Retrain("promoted", run.output("register"), reasons)


STATE_TAG = "ctloop.monitor."


def load_state(settings: Settings, folder: Path) -> State:
    """The policy's memory: a file locally; tags on the registered model on a cluster (pods keep no files)."""
    if settings.deploy.target == "local":
        path = folder / "state.json"
        return State(**json.loads(path.read_text())) if path.exists() else State()
    from ctloop.registry import Registry

    tags = Registry(settings).model_tags(STATE_TAG)
    return State(**{k: v for k, v in tags.items() if k in State.__dataclass_fields__})


def save_state(settings: Settings, folder: Path, state: State) -> None:
    """Remember the last run (see :func:`load_state`)."""
    if settings.deploy.target == "local":
        (folder / "state.json").write_text(json.dumps(asdict(state)))
        return
    from ctloop.registry import Registry

    Registry(settings).set_model_tags(STATE_TAG, asdict(state))


def monitor_pass(settings: Settings, now: datetime, dry_run: bool = False) -> PassResult:
    """Read, decide, record; retrain when the policy says so (and ``dry_run`` is off)."""
    folder = settings.data_dir / "monitor"
    folder.mkdir(parents=True, exist_ok=True)
    state = load_state(settings, folder)
    model = served_model(settings)
    window = _read_window(settings, model.version, folder, now)
    reference = model.metadata.get("reference_fractions")
    window_drift = drift(window, reference) if reference and window.rows() else None
    decision = decide(now, model.version, model.data_end(), window_drift, performance(window), settings.monitor, state)
    outcome, trained, retrain = "none", None, None
    if decision.retrain and not dry_run:
        trained = window_for(now, settings.monitor.train_window_days)
        retrain = _retrain(settings, *trained, now)
        outcome = retrain.outcome
        state = State(last_run_at=now.isoformat(), last_incident="+".join(decision.triggers), last_outcome=outcome)
        save_state(settings, folder, state)
    elif decision.retrain:
        outcome = "dry run"
    record = {**decision.to_dict(), "outcome": outcome, "window": trained}
    if retrain is not None:
        record.update(version=retrain.version, gate_reasons=list(retrain.reasons))
    with (folder / "decisions.jsonl").open("a") as log_file:
        log_file.write(json.dumps(record) + "\n")
    log.info("monitor decision: %s", json.dumps(record))  # a cluster's CronJob keeps its log, not its files
    return PassResult(decision, outcome, trained, retrain)
