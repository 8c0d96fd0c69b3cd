"""The online store serves what the offline store would give for the same entity and time."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta

import pandas as pd
import pytest
from feast import RepoConfig
from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

from ctloop.adapters import featurestore as fs
from ctloop.adapters.feast_asof import STORE_TYPE, AsOfDuckDBOfflineStore
from ctloop.adapters.offline_store import OfflineStore
from ctloop.app import feature_steps
from ctloop.core.clock import local_midnight
from tests.conftest import END, ROOT
from tests.online_store import online_features

pytestmark = pytest.mark.slow


def test_online_equals_offline_after_materialize(store, materialized):
    """After materializing to the window's end, online features equal historical ones at that instant."""
    service = materialized.features.feature_service
    at = local_midnight(pd.Timestamp(END).date() + timedelta(days=1))
    rows = [
        {
            "origin": "JFK",
            "carrier": "B6",
            "route": "JFK-BOS",
            "tailnum": "N503JB",
            "sched_dep_local": "2013-03-15T23:30:00",
            "distance": 187.0,
        },
        {
            "origin": "EWR",
            "carrier": "UA",
            "route": "EWR-ORD",
            "tailnum": "N14228",
            "sched_dep_local": "2013-03-15T23:40:00",
            "distance": 719.0,
        },
        {
            "origin": "LGA",
            "carrier": "DL",
            "route": "LGA-ATL",
            "tailnum": "N0NONE",
            "sched_dep_local": "2013-03-15T23:50:00",
            "distance": 762.0,
        },
    ]
    entity_df = pd.DataFrame(rows).assign(
        flight_id=[f"f{i}" for i in range(len(rows))], event_timestamp=at.as_unit("us")
    )
    offline = fs.historical_features(store, service, entity_df)
    online = online_features(store, service, rows)
    names = fs.feature_names(store, service)
    assert len(names) == 21
    for i in range(len(rows)):
        for name in names:
            want, got = offline.loc[i, name], online.loc[i, name]
            want = float("nan") if want is None or pd.isna(want) else float(want)
            got = float("nan") if got is None or pd.isna(got) else float(got)
            assert (math.isnan(want) and math.isnan(got)) or math.isclose(want, got, abs_tol=1e-9), (i, name, want, got)
    # the unknown plane has no attributes online or offline; known ones do
    assert math.isnan(float(online.loc[2, "plane_seats"])) and online.loc[0, "plane_seats"] is not None


def test_online_store_holds_nothing_after_the_materialized_end(store, materialized, tmp_path):
    """Online weather is the last row materialized: a day appended offline only does not reach it.

    The day after the window is appended to the offline store without materializing: its weather
    is offline, and the online store still serves the last row of the window.
    """
    after = (pd.Timestamp(END).date() + timedelta(days=1)).isoformat()
    if date.fromisoformat(after) not in OfflineStore(fs.offline_uri(materialized)).days():
        feature_steps.run_in_process(materialized, after, tmp_path, online=False)
    online = online_features(
        store,
        materialized.features.feature_service,
        [
            {
                "origin": "JFK",
                "carrier": "B6",
                "route": "JFK-BOS",
                "tailnum": "N503JB",
                "sched_dep_local": "2013-03-20T08:00:00",
                "distance": 187.0,
            }
        ],
    )
    weather = OfflineStore(fs.offline_uri(materialized)).read("origin_weather")
    end = local_midnight(pd.Timestamp(END).date() + timedelta(days=1))
    last = weather[(weather["origin"] == "JFK") & (weather["event_timestamp"] <= end)].iloc[-1]
    later = weather[(weather["origin"] == "JFK") & (weather["event_timestamp"] > end)]
    assert len(later) > 0, "the offline store holds weather after the end, so this test can tell"
    assert float(online.loc[0, "temp"]) == pytest.approx(float(last["temp"]))


def test_cluster_feature_store_yaml_parses_and_its_definitions_apply(tmp_path, materialized, redis_server):
    """The cluster config is valid Feast config and its definitions apply with it.

    Redis online, registry and offline data on object storage: only the registry location and
    the Redis address are swapped for local ones, because no object store or cluster DNS runs here.
    """
    cluster_yaml = ROOT / "feature_repo" / "cluster" / "feature_store.yaml"
    raw = fs.load_yaml(cluster_yaml)
    config = RepoConfig(repo_path=tmp_path, **raw)
    assert config.online_store.type == "redis"
    assert str(config.registry.path).startswith("s3://")
    assert config.offline_store.type == STORE_TYPE  # Feast's DuckDB store, its joins by ASOF JOIN
    assert isinstance(get_offline_store_from_config(config.offline_store), AsOfDuckDBOfflineStore)
    local = dict(raw)
    local["registry"] = {**raw["registry"], "path": str(tmp_path / "registry.db")}
    local["online_store"] = {**raw["online_store"], "connection_string": f"127.0.0.1:{redis_server.port}"}
    cluster_like = materialized.replace(features=replace(materialized.features, offline_uri="s3://ctloop-feast/data"))
    objects = fs.definitions(cluster_like)
    store = fs.open_store(cluster_like, RepoConfig(repo_path=tmp_path, **local))
    names = fs.apply(store, objects)
    assert "flight_delay_v1" in names
    sources = {fv.name: fv.batch_source.path for fv in store.list_feature_views()}
    assert sources["origin_weather"] == "s3://ctloop-feast/data/origin_weather/day=*/part.parquet"
    assert sources["plane"] == "s3://ctloop-feast/data/plane.parquet"
    assert fs.feature_names(store, "flight_delay_v1")[:2] == ["temp", "dewp"]


def test_cluster_feature_store_yaml_takes_redis_from_the_environment(tmp_path, monkeypatch):
    """Feast's own loader fills the cluster Redis address from CTLOOP_REDIS (set per namespace by the manifests)."""
    from feast.repo_config import load_repo_config

    monkeypatch.setenv("CTLOOP_REDIS", "redis:6379")
    cluster_yaml = ROOT / "feature_repo" / "cluster" / "feature_store.yaml"
    assert "${CTLOOP_REDIS}" in cluster_yaml.read_text()
    config = load_repo_config(tmp_path, cluster_yaml)
    assert config.online_store.connection_string == "redis:6379"
