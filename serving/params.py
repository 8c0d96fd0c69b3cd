"""Serving settings, passed as Seldon model parameters (``--parameters`` / the graph's ``parameters``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ServingParams:
    """Typed settings of the model class; units in the names."""

    model_dir: str
    """The ``current`` link (or folder) holding ``model.onnx``, ``metadata.json`` and ``model.json``."""
    feature_server_url: str = "http://127.0.0.1:6566"
    feature_timeout_s: float = 1.0
    feature_cache_ttl_s: float = 10.0
    """How long online feature values are reused per entity key; 0 turns the cache off."""
    feature_cache_max_entries: int = 20_000
    max_batch: int = 1000
    max_body_bytes: int = 1_000_000
    swap_check_s: float = 0.2
    """How often a worker looks whether ``model_dir`` points at a new version."""
    readiness_cache_s: float = 1.0
    metrics_flush_s: float = 1.0
    """How often a worker moves its in-memory drift counts into the Prometheus counters (0: at every request)."""
    static_feature_cache_ttl_s: float = 300.0
    """Cache time for feature views without a TTL in Feast (static attributes such as planes)."""
    model_name: str = ""
    model_version: str = ""
    model_alias: str = ""
    feature_service: str = ""
    """What ``meta.tags`` reports when the model folder has no ``model.json`` (a cluster's download)."""

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> ServingParams:
        """Build from Seldon's parsed parameters; unknown names are an error (a typo is not ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise ValueError(f"unknown serving parameter(s) {unknown}; known: {sorted(known)}")
        if "model_dir" not in parameters:
            raise ValueError("serving parameter model_dir is required")
        kinds = {"str": str, "int": int, "float": float}
        try:
            values = {f.name: kinds[str(f.type)](parameters[f.name]) for f in fields(cls) if f.name in parameters}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"serving parameters: {exc}") from None
        params = cls(**values)
        for name in ("feature_timeout_s", "swap_check_s", "readiness_cache_s"):
            if float(getattr(params, name)) <= 0:
                raise ValueError(f"serving parameter {name} must be > 0")
        if params.metrics_flush_s < 0:
            raise ValueError("serving parameter metrics_flush_s must be >= 0 (0: at every request)")
        if params.max_batch < 1 or params.max_body_bytes < 1024:
            raise ValueError("serving parameters: max_batch >= 1, max_body_bytes >= 1024")
        if params.feature_cache_ttl_s < 0 or params.static_feature_cache_ttl_s < 0:
            raise ValueError("serving parameters: feature cache TTLs are >= 0 (0 turns the cache off)")
        return params
