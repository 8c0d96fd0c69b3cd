"""Shared fixtures: real Redis, a real snapshot, real Feast and MLflow stores under a temp dir."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from ctloop.adapters import featurestore, services
from ctloop.app import feature_steps, pipeline_steps
from ctloop.config import Settings
from ctloop.core import data
from tests.recording import Recorder, recording_server

ROOT = Path(__file__).resolve().parent.parent
# a small window keeps the suite fast: 6 weeks of flights, the last 2 for evaluation
START, END = "2013-02-01", "2013-03-15"
EVAL_DAYS = 14
HISTORY_DAYS = 28


def promtool() -> str:
    """`promtool`: `make setup` puts it in the venv's bin (out of Debian's prometheus, with no server)."""
    beside = Path(sys.executable).parent / "promtool"
    found = str(beside) if beside.is_file() else shutil.which("promtool")
    assert found, "promtool missing: run `make setup`"
    return found


def partition_files(folder: Path, day: date, value: float) -> dict[str, Path]:
    """One tiny parquet file per partitioned table for ``day`` (column ``x`` = ``value``), as an append takes them."""
    import pandas as pd

    from ctloop.core import partitions

    out = {}
    for table in partitions.PARTITIONED_TABLES:
        path = folder / f"{day}-{table}.parquet"
        pd.DataFrame({"x": [value]}).to_parquet(path, index=False)
        out[table] = path
    return out


def make_settings(data_dir: Path, redis_port: int) -> Settings:
    """Test settings: the project's local config with a temp data dir, own Redis port, small window."""
    base = Settings.load(ROOT / "config" / "local.toml")
    return base.replace(
        paths=replace(base.paths, data_dir=str(data_dir)),
        services=replace(base.services, redis_port=redis_port),
        features=replace(base.features, history_days=HISTORY_DAYS),
        train=replace(base.train, eval_days=EVAL_DAYS, max_iter=120),
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Redis]:
    """A real redis-server on a free loopback port for the whole session."""
    redis = services.start_redis(services.free_port(), tmp_path_factory.mktemp("redis"))
    yield redis
    redis.stop()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, redis_server: services.Redis) -> Settings:
    """Session settings over a temp data dir (shared Feast store; MLflow per test below)."""
    return make_settings(tmp_path_factory.mktemp("data"), redis_server.port)


@pytest.fixture(scope="session")
def window() -> data.Window:
    return data.Window.parse(START, END)


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory, window: data.Window) -> data.IngestResult:
    """A real ingest of the test window."""
    return data.ingest(window, HISTORY_DAYS, tmp_path_factory.mktemp("snapshot") / "snap")


@pytest.fixture(scope="session")
def materialized(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The window's day partitions appended by the feature pipeline's steps, definitions applied, loaded online."""
    days = feature_steps.window_days(START, END)
    feature_steps.run_in_process(settings, days, tmp_path_factory.mktemp("features"))
    return settings


@pytest.fixture(scope="session")
def store(materialized: Settings) -> featurestore.FeatureStore:
    return featurestore.open_store(materialized)


@pytest.fixture(scope="session")
def training_set(materialized: Settings, snapshot: data.IngestResult) -> pipeline_steps.core.TrainingSet:
    return pipeline_steps.training_set(materialized, Path(snapshot.path), START, END)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A local recording HTTP server (contract checks of the Kubernetes and KFP API calls)."""
    with recording_server() as server:
        yield server
