"""``FlightDelayModel``: the Seldon Core model class (``seldon-core-microservice serving.model.FlightDelayModel``).

Per request: validate, enrich each flight with the feature service's online features (Feast
feature server) and its request-time features (``ctloop.contract.flight_request``, the definition Feast's
on-demand view uses in training), score with ONNX, count drift buckets, answer with the
probabilities and ``meta.tags`` naming the model version, alias and feature service. A request
whose body carries the features (``data.names`` + ``data.ndarray``) skips enrichment.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from flask import g
from seldon_core.utils import json_to_seldon_message

from ctloop.contract.flight_request import Flight, request_features
from serving import metrics
from serving.errors import ServingError
from serving.features_client import FeatureClient
from serving.http import blueprint
from serving.model_store import LoadedModel, ModelLoadError, ModelWatcher
from serving.params import ServingParams
from serving.payloads import PREDICTION_NAME, feature_matrix, flights, parse_request

log = logging.getLogger(__name__)


class FlightDelayModel:
    """Delay probability of New York flights, served by Seldon Core's Python wrapper."""

    def __init__(self, **parameters: Any) -> None:
        """Read the parameters; the model itself loads in each worker (:meth:`load`)."""
        self.params = ServingParams.from_parameters(parameters)
        p = self.params
        card = {"name": p.model_name, "version": p.model_version, "alias": p.model_alias}
        card["feature_service"] = p.feature_service
        self.watcher = ModelWatcher(Path(p.model_dir), p.swap_check_s, card if p.model_version else None)
        self.model_error_handler = blueprint(self.params)  # Seldon registers it on its Flask app
        self._features: FeatureClient | None = None
        self._series: metrics.ModelSeries | None = None
        self._flusher = metrics.Flusher(self.params.metrics_flush_s)
        self._ready_checked = 0.0
        self._ready_error: ServingError | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model the link points at (called by Seldon in every worker after the fork)."""
        self._bind(self.watcher.start())

    def _bind(self, model: LoadedModel) -> metrics.ModelSeries:
        computed = set(request_features([], []))
        for view, spec in model.layout.get("on_demand", {}).items():
            if not set(spec["features"]) <= computed:
                raise ModelLoadError(f"on-demand view {view} has features serving cannot compute: {spec['features']}")
        views = model.layout["views"]
        if self._features is None or self._features.layout != views:  # a new layout: new client and cache
            if self._features is not None:
                self._features.close()
            p = self.params
            self._features = FeatureClient(
                p.feature_server_url,
                views,
                p.feature_timeout_s,
                p.feature_cache_ttl_s,
                p.feature_cache_max_entries,
                p.static_feature_cache_ttl_s,
            )
        previous = self._series
        series = metrics.ModelSeries(model)
        if previous is not None:
            previous.info.set(0)
            metrics.model_swaps.inc()
        series.info.set(1)
        self._flusher.track(series)  # the previous version's last counts are flushed first
        self._series = series
        return series

    def _current(self) -> metrics.ModelSeries:
        model = self.watcher.current()
        series = self._series
        if series is None or series.model is not model:
            try:
                series = self._bind(model)
            except ModelLoadError:
                log.exception("model v%s cannot be served by this code; keeping the previous one", model.version)
                if series is None:
                    raise
        return series

    # -- Seldon hooks ----------------------------------------------------------------------
    def predict_raw(self, request: Any) -> dict[str, Any]:
        """Answer a Seldon v1 JSON request (``jsonData.flights`` or ``data.names``/``ndarray``)."""
        body = parse_request(request)
        series = self._current()
        model = series.model
        if "jsonData" in body:
            matrix = self._enrich(model, flights(body["jsonData"], self.params.max_batch))
        else:
            matrix = feature_matrix(body["data"], model.feature_names, self.params.max_batch)
        probabilities = model.predict(matrix)
        series.observe(matrix, probabilities)
        values = probabilities.tolist()
        tags = model.tags()
        if "jsonData" in body:
            return {"jsonData": {"probabilities": values}, "meta": {"tags": tags}}
        return {"data": {"names": [PREDICTION_NAME], "ndarray": [[v] for v in values]}, "meta": {"tags": tags}}

    def _enrich(self, model: LoadedModel, batch: list[Flight]) -> np.ndarray:
        assert self._features is not None  # nosec B101 # type narrowing: load() binds it before any request
        matrix = np.full((len(batch), len(model.feature_names)), np.nan, dtype=np.float32)
        hits, misses = self._features.hits, self._features.misses
        online = self._features.fetch([f.entity_keys() for f in batch])
        metrics.feature_cache.labels("hit").inc(self._features.hits - hits)
        metrics.feature_cache.labels("miss").inc(self._features.misses - misses)
        for view, spec in model.layout["views"].items():
            columns = [model.index[name] for name in spec["features"]]
            values = np.array([per_view[view] for per_view in online], dtype=np.float32).reshape(len(batch), -1)
            matrix[:, columns] = values
            empty = int(np.isnan(values).all(axis=1).sum())  # the store had nothing for the flight's key
            if empty:
                metrics.feature_missing.labels(view).inc(empty)
        computed = request_features([f.sched_dep_local for f in batch], [f.distance for f in batch])
        for spec in model.layout.get("on_demand", {}).values():
            for name in spec["features"]:
                matrix[:, model.index[name]] = computed[name]
        return matrix

    def send_feedback_raw(self, feedback: Any) -> Any:
        """Count the true outcomes (validated by the blueprint before Seldon parsed the body)."""
        parsed = g.get("ctloop_feedback")
        if parsed is None:
            raise ServingError(400, "BAD_FEEDBACK", "feedback is accepted over REST only")
        metrics.observe_feedback(parsed.model_version, parsed.probabilities, parsed.outcomes)
        del feedback  # Seldon's protobuf copy of the same body
        return json_to_seldon_message(
            {"jsonData": {"accepted": len(parsed.outcomes), "model_version": parsed.model_version}}
        )

    def health_status_raw(self) -> dict[str, Any]:
        """Readiness: a model is loaded and the feature server answers a real online read.

        A ready answer is reused for ``readiness_cache_s``; a not-ready one is checked again at the
        next call, so a worker that probed before the feature server was up does not keep saying
        so after the stack (or its other worker) is ready.
        """
        model = self.watcher.loaded
        if model is None:
            raise ServingError(503, "NOT_READY", "no model loaded yet")
        now = time.monotonic()
        if self._ready_error is not None or now - self._ready_checked > self.params.readiness_cache_s:
            self._ready_checked = now
            try:
                assert self._features is not None  # nosec B101 # type narrowing: set by load() with the model
                self._features.probe()
                self._ready_error = None
            except ServingError as exc:
                self._ready_error = exc
        if self._ready_error is not None:
            raise ServingError(503, "NOT_READY", f"not ready: {self._ready_error.message}")
        return {"ready": True, "model_version": model.version, "feature_server": self.params.feature_server_url}

    def tags(self) -> dict[str, str]:
        """The served model's tags (Seldon's non-raw paths; predict_raw sets them itself)."""
        model = self.watcher.loaded
        return model.tags() if model is not None else {}
