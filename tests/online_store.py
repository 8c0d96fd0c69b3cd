"""Feast's online store read in process: what the feature server and the served model must agree with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from feast import FeatureStore

from ctloop.adapters import featurestore as fs


def online_features(store: FeatureStore, service_name: str, entity_rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Online features of the feature service for request rows (join keys plus request inputs)."""
    service = fs.feature_service(store, service_name)
    return store.get_online_features(features=service, entity_rows=list(entity_rows)).to_df()
