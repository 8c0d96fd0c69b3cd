"""Feature-test fixtures: the brute-force reading of the raw CSVs, and pipeline runs in stores of their own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from ctloop.adapters import featurestore as fs
from ctloop.app import feature_steps
from ctloop.config import Settings
from ctloop.core import data, features
from tests.conftest import HISTORY_DAYS, make_settings
from tests.features import raw_truth


@pytest.fixture(scope="session")
def truth() -> raw_truth.Truth:
    """The raw CSVs, indexed once per session."""
    return raw_truth.load()


def own_settings(folder: Path, redis_port: int) -> Settings:
    """Settings with a Feast registry and offline tables of their own under ``folder``.

    Nothing here materializes: the session's Redis keeps what the other tests expect.
    """
    return make_settings(folder, redis_port)


def pipeline_features(
    settings: Settings, window: data.Window, folder: Path, source: Path | None = None, rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The pipeline's point-in-time features for ``rows`` (default: the window's flights), from ``source``.

    The feature pipeline's steps for the window's day partitions (without the online store), the
    training ingest and Feast's historical retrieval: what the training set step reads.
    """
    snapshot = folder / "snapshot"
    start, end = window.start.isoformat(), window.end.isoformat()
    if source is not None:
        settings = settings.replace(paths=replace(settings.paths, source_dir=str(source)))
    feature_steps.run_in_process(settings, feature_steps.window_days(start, end), folder / "features", online=False)
    data.ingest(window, HISTORY_DAYS, snapshot, source)
    if rows is None:
        flights, _, _ = data.read_snapshot(snapshot)
        rows = data.training_rows(flights, window)
    store = fs.open_store(settings)
    return fs.historical_features(store, settings.features.feature_service, features.entity_frame(rows))
