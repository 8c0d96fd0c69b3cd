"""The Seldon wrapper's own ceiling: a model class that returns its input (no model, no metrics)."""

from __future__ import annotations

from typing import Any


class EmptyModel:
    """``seldon-core-microservice bench.baselines.empty_model.EmptyModel``."""

    def predict(self, features: Any, feature_names: Any = None) -> Any:
        """Return the request's rows unchanged."""
        del feature_names
        return features
