"""Our Prometheus metrics, in ``prometheus_client`` multiprocess mode, on a route of our own.

Seldon's per-request custom-metrics path costs up to 3x throughput (measured with wrk); a multiprocess
counter update is one write to a memory-mapped file. Every gunicorn worker writes its own files
under ``PROMETHEUS_MULTIPROC_DIR``; :func:`exposition` merges them.

Drift from metrics alone: each feature's value is counted in the bucket the training reference
cut (``ctloop.contract.buckets``, cut points in the model's metadata) per model version, and so is each
predicted probability. Delayed-label performance: feedback counts outcomes per predicted
probability bucket (a histogram per outcome gives AUC and calibration) and sums squared errors
(Brier).
"""

from __future__ import annotations

import atexit
import os
import threading
from bisect import bisect_right
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ctloop.contract import buckets
from serving.model_store import LoadedModel

PREDICTION_CUTS = tuple(buckets.PREDICTION_CUTS)
SMALL_BATCH = 8
"""Up to this many rows, bucketing in plain Python beats numpy's per-call overhead."""

http_requests = Counter("ctloop_http_requests", "HTTP requests answered, by route and status code", ["route", "code"])
http_seconds = Histogram(
    "ctloop_http_request_duration_seconds",
    "Time to answer, by route",
    ["route"],
    buckets=(0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 1.0),
)
predictions = Counter("ctloop_predictions", "Flights scored", ["model_version"])
prediction_bucket = Counter(
    "ctloop_prediction_bucket",
    "Flights scored per predicted-probability bucket (cuts: ctloop.contract.buckets)",
    ["model_version", "bucket"],
)
feature_bucket = Counter(
    "ctloop_feature_bucket",
    "Feature values per training-reference bucket (cuts: the model's reference_quantiles)",
    ["model_version", "feature", "bucket"],
)
feature_missing = Counter("ctloop_feature_missing", "Flights whose online features were not found, by view", ["view"])
feature_cache = Counter("ctloop_feature_cache", "Online feature lookups by cache result", ["result"])
feedback = Histogram(
    "ctloop_feedback_probability",
    "Predicted probability of flights whose true outcome came back, by outcome",
    ["model_version", "outcome"],
    buckets=(*PREDICTION_CUTS, 1.0),
)
feedback_squared_error = Counter(
    "ctloop_feedback_squared_error",
    "Sum of (probability - outcome)^2 over feedback (Brier = this / count)",
    ["model_version"],
)
model_info = Gauge(
    "ctloop_model_info",
    "The model version a worker serves (1) or served before (0)",
    ["model_name", "model_version", "alias", "feature_service"],
    multiprocess_mode="livemax",
)
model_swaps = Counter("ctloop_model_swaps", "Hot swaps to a new model version")
feature_reference = Gauge(
    "ctloop_feature_reference_share",
    "Share of the training reference in each feature bucket (PSI in PromQL against ctloop_feature_bucket)",
    ["model_version", "feature", "bucket"],
    multiprocess_mode="livemax",
)
prediction_reference = Gauge(
    "ctloop_prediction_reference_share",
    "Share of the training reference in each predicted-probability bucket",
    ["model_version", "bucket"],
    multiprocess_mode="livemax",
)
feature_normal = Gauge(
    "ctloop_feature_normal_psi",
    "Each feature's normal PSI over a monitoring window within the training data (drift is judged above it)",
    ["model_version", "feature"],
    multiprocess_mode="livemax",
)
prediction_normal = Gauge(
    "ctloop_prediction_normal_psi",
    "The prediction's normal PSI over a monitoring window within the training data",
    ["model_version"],
    multiprocess_mode="livemax",
)


class ModelSeries:
    """The drift counters of one model version: counted in memory per request, flushed in the background.

    A request adds to plain lists (~10 µs for one flight); every ``flush_s`` a thread moves the
    sums into the multiprocess counters (one file write per non-zero bucket instead of ~25 per
    request). Counts reach the metrics page within ``flush_s``; nothing is dropped (the last
    sums are flushed when the worker exits or the version is swapped out). With
    ``write_through`` (``flush_s`` 0) each request flushes its own counts before it is answered,
    so a scrape that follows a response sees it (a replay's clock, which outruns any interval).
    """

    write_through = False

    def __init__(self, model: LoadedModel) -> None:
        """Bind every bucket of every feature, and the prediction buckets, for ``model``'s version."""
        version = model.version
        self.model = model
        self._lock = threading.Lock()
        self.predictions = predictions.labels(version)
        self.prediction_buckets = [prediction_bucket.labels(version, b) for b in buckets.bucket_labels(PREDICTION_CUTS)]
        self.cuts = [tuple(float(c) for c in model.cuts[name]) for name in model.feature_names]
        self.feature_buckets = [
            [feature_bucket.labels(version, name, b) for b in buckets.bucket_labels(cuts)]
            for name, cuts in zip(model.feature_names, self.cuts, strict=True)
        ]
        self._rows = 0
        self._prediction_counts = [0] * len(self.prediction_buckets)
        self._feature_counts = [[0] * len(children) for children in self.feature_buckets]
        labels = model.tags()
        self.info = model_info.labels(labels["model_name"], version, labels["alias"], labels["feature_service"])
        for name, fractions in model.reference.get("features", {}).items():
            for bucket, share in fractions.items():
                feature_reference.labels(version, name, bucket).set(share)
        for bucket, share in model.reference.get("prediction", {}).get("fractions", {}).items():
            prediction_reference.labels(version, bucket).set(share)
        normal = model.reference.get(buckets.NORMAL) or {}
        for name, value in (normal.get("features") or {}).items():
            feature_normal.labels(version, name).set(value)
        if "prediction" in normal:
            prediction_normal.labels(version).set(normal["prediction"])

    def observe(self, matrix: np.ndarray, probabilities: np.ndarray) -> None:
        """Count a scored batch: rows, prediction buckets, feature buckets."""
        with self._lock:
            self._rows += len(probabilities)
            if len(probabilities) <= SMALL_BATCH:
                self._add_rows(matrix.tolist(), probabilities.tolist())
            else:
                self._add(self._prediction_counts, PREDICTION_CUTS, probabilities)
                for j, cuts in enumerate(self.cuts):
                    self._add(self._feature_counts[j], cuts, matrix[:, j].astype(np.float64))
        if self.write_through:
            self.flush()

    def _add_rows(self, rows: list[list[float]], probabilities: list[float]) -> None:
        for p in probabilities:
            self._prediction_counts[bisect_right(PREDICTION_CUTS, p)] += 1
        for row in rows:
            for j, value in enumerate(row):
                self._feature_counts[j][-1 if value != value else bisect_right(self.cuts[j], value)] += 1  # noqa: PLR0124 - NaN

    @staticmethod
    def _add(counts: list[int], cuts: Sequence[float], values: np.ndarray) -> None:
        missing = np.isnan(values)
        found = np.bincount(np.searchsorted(np.asarray(cuts), values[~missing], side="right"), minlength=len(cuts) + 1)
        for i in np.flatnonzero(found).tolist():
            counts[i] += int(found[i])
        counts[-1] += int(missing.sum())

    def flush(self) -> None:
        """Move the in-memory sums into the Prometheus counters."""
        with self._lock:
            rows, self._rows = self._rows, 0
            prediction_counts, self._prediction_counts = self._prediction_counts, [0] * len(self._prediction_counts)
            feature_counts, self._feature_counts = self._feature_counts, [[0] * len(c) for c in self._feature_counts]
        if not rows:
            return
        self.predictions.inc(rows)
        for child, n in zip(self.prediction_buckets, prediction_counts, strict=True):
            if n:
                child.inc(n)
        for children, counts in zip(self.feature_buckets, feature_counts, strict=True):
            for child, n in zip(children, counts, strict=True):
                if n:
                    child.inc(n)


class Flusher:
    """A daemon thread that flushes the worker's current :class:`ModelSeries` every ``flush_s``.

    ``flush_s`` 0: no thread; each series writes its counts through at every request.
    """

    def __init__(self, flush_s: float) -> None:
        """Start nothing yet (Seldon forks its workers after building the model object)."""
        self.flush_s = flush_s
        self._series: list[ModelSeries] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def track(self, series: ModelSeries) -> None:
        """Flush ``series`` from now on; a series swapped out gets its last flush now."""
        for old in self._series:
            old.flush()
        self._series = [series]
        if self.flush_s == 0:
            series.write_through = True
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ctloop-metrics-flush", daemon=True)
            self._thread.start()
            atexit.register(self.flush)

    def flush(self) -> None:
        """Flush every tracked series now."""
        for series in list(self._series):
            series.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()


def observe_feedback(version: str, probabilities: Sequence[float], outcomes: Sequence[int]) -> None:
    """Count true outcomes against what was predicted for them."""
    delayed = feedback.labels(version, "delayed")
    on_time = feedback.labels(version, "on_time")
    squared = 0.0
    for p, y in zip(probabilities, outcomes, strict=True):
        (delayed if y else on_time).observe(p)
        squared += (p - y) ** 2
    feedback_squared_error.labels(version).inc(squared)


def exposition(names: Collection[str] = ()) -> tuple[bytes, str]:
    """The metrics page: every worker's files merged (or this process alone outside multiprocess mode).

    ``names`` (Prometheus's ``name[]`` query parameter): only the samples of those names. In
    multiprocess mode only the files of their kinds are read: a monitoring pass asks for counters
    and histograms, and the reference gauges, about half the page, are not merged for it.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return generate_latest(REGISTRY.restricted_registry(names) if names else REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    if names:
        registry.register(_Restricted(folder, set(names)))
    else:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


_SAMPLE_SUFFIXES = ("", "_total", "_created", "_bucket", "_sum", "_count")


def _kind_of_sample() -> dict[str, str]:
    """Each sample name our metrics can write, to its metric type (the prefix of its multiprocess files)."""
    kinds: dict[str, str] = {}
    for metric in (value for value in globals().values() if isinstance(value, MetricWrapperBase)):
        for family in metric.describe():
            kinds.update((family.name + suffix, family.type) for suffix in _SAMPLE_SUFFIXES)
    return kinds


class _Restricted(Collector):
    """The merged multiprocess files of the kinds that hold ``names``, with only those samples."""

    def __init__(self, folder: str, names: set[str]) -> None:
        self.folder, self.names = folder, names

    def collect(self) -> Iterator[Metric]:
        kinds = _kind_of_sample()
        wanted = {kinds.get(name) for name in self.names}
        prefixes = ("",) if None in wanted else tuple(f"{kind}_" for kind in wanted)  # a name not ours: every file
        files = [str(f) for f in Path(self.folder).glob("*.db") if f.name.startswith(prefixes)]
        for metric in multiprocess.MultiProcessCollector.merge(files):  # type: ignore[no-untyped-call]
            metric.samples = [s for s in metric.samples if s.name in self.names]
            if metric.samples:
                yield metric
