"""The as-of offline store answers ``get_historical_features`` exactly as Feast's own DuckDB store.

A small repository of its own: a view with a TTL and one without, rows placed on the edges
(an event at the entity's very time, one exactly a TTL old, one a microsecond older, a key no
view has, a null key), queried through both stores.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Float64

from ctloop.adapters.feast_asof import STORE_TYPE

T0 = pd.Timestamp("2013-03-10 06:00", tz="UTC")  # the morning US clocks move forward
TTL = timedelta(hours=3)


def _store(repo: Path, offline_type: str, views: list[FeatureView], entities: list[Entity]) -> FeatureStore:
    config = RepoConfig(
        project="asof",
        provider="local",
        repo_path=repo,
        registry={"registry_type": "file", "path": str(repo / f"registry-{offline_type.rsplit('.', 1)[-1]}.db")},
        offline_store={"type": offline_type},
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    store.apply([*entities, *views])
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[FeatureStore, FeatureStore]:
    repo = tmp_path_factory.mktemp("asof")
    rng = np.random.default_rng(7)
    hours = T0 + pd.to_timedelta(np.arange(0, 48), unit="h")
    weather = pd.DataFrame(
        {
            "origin": np.repeat(["EWR", "JFK"], len(hours)),
            "event_timestamp": np.tile(hours, 2),
            "temp": rng.normal(40, 10, 2 * len(hours)),
        }
    )
    weather = weather.drop(index=[5, 6, 7, 8, 9]).reset_index(drop=True)  # a gap longer than the TTL at EWR
    weather["event_timestamp"] = weather["event_timestamp"].astype("datetime64[us, UTC]")
    weather.to_parquet(repo / "weather.parquet")
    planes = pd.DataFrame(
        {
            "tailnum": ["N1", "N2"],
            "event_timestamp": pd.to_datetime(["1970-01-01", "2013-03-11"], utc=True).astype("datetime64[us, UTC]"),
            "seats": [150.0, 200.0],
        }
    )
    planes.to_parquet(repo / "planes.parquet")
    origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING)
    plane = Entity(name="tailnum", join_keys=["tailnum"], value_type=ValueType.STRING)
    views = [
        FeatureView(
            name="weather",
            entities=[origin],
            ttl=TTL,
            schema=[Field(name="temp", dtype=Float64)],
            source=FileSource(path=str(repo / "weather.parquet"), timestamp_field="event_timestamp"),
        ),
        FeatureView(
            name="plane",
            entities=[plane],
            ttl=timedelta(0),
            schema=[Field(name="seats", dtype=Float64)],
            source=FileSource(path=str(repo / "planes.parquet"), timestamp_field="event_timestamp"),
        ),
    ]
    return _store(repo, "duckdb", views, [origin, plane]), _store(repo, STORE_TYPE, views, [origin, plane])


def _entities() -> pd.DataFrame:
    at = [
        T0,  # an event at this very time counts
        T0 + pd.Timedelta(minutes=30),
        T0 + pd.Timedelta(hours=4),  # EWR's last row before its gap (hours 5 to 9 are missing)
        T0 + pd.Timedelta(hours=4, microseconds=1),
        T0 + pd.Timedelta(hours=7),  # that row exactly a TTL old: still found
        T0 + pd.Timedelta(hours=7, microseconds=1),  # a microsecond older than the TTL: no weather
        T0 + pd.Timedelta(hours=9, minutes=59),
        T0 - pd.Timedelta(minutes=1),  # before any row
        T0 + pd.Timedelta(days=1, hours=2),  # after plane N2's row appears
        T0 + pd.Timedelta(days=3),  # after every weather row, beyond the TTL
    ]
    n = len(at)
    return pd.DataFrame(
        {
            "origin": (["EWR", "JFK", "LGA", None] * n)[: 2 * n],
            "tailnum": (["N1", "N2", None, "N9"] * n)[: 2 * n],
            "event_timestamp": pd.Series(at * 2, dtype="datetime64[us, UTC]"),
            "_row": np.arange(2 * n),
        }
    )


def _features(store: FeatureStore, entities: pd.DataFrame) -> pd.DataFrame:
    found = store.get_historical_features(entity_df=entities, features=["weather:temp", "plane:seats"]).to_df()
    return found.sort_values("_row").reset_index(drop=True)[["_row", "temp", "seats"]]


def test_the_as_of_store_returns_what_feasts_own_store_returns(stores):
    stock, asof = stores
    entities = _entities()
    expected, found = _features(stock, entities), _features(asof, entities)
    pd.testing.assert_frame_equal(found, expected)
    # the edges are really there: some rows find nothing, some find their value at the TTL's edge
    assert found["temp"].isna().any() and found["temp"].notna().any()
    assert found["seats"].isna().any() and found["seats"].notna().any()


def test_a_row_exactly_a_ttl_old_is_found_and_a_microsecond_older_is_not(stores):
    _, asof = stores
    last_before_gap = T0 + pd.Timedelta(hours=4)  # EWR rows 5..9 were removed
    at = [last_before_gap + TTL, last_before_gap + TTL + pd.Timedelta(microseconds=1)]
    entities = pd.DataFrame(
        {
            "origin": ["EWR", "EWR"],
            "tailnum": ["N1", "N1"],
            "event_timestamp": pd.Series(at).astype("datetime64[us, UTC]"),
            "_row": [0, 1],
        }
    )
    found = _features(asof, entities)
    assert not np.isnan(found["temp"].iat[0])
    assert np.isnan(found["temp"].iat[1])


def test_many_entity_rows_get_the_same_answer(stores):
    """Many entity rows: the same answer as Feast's join (DuckDB would otherwise loop over them)."""
    stock, asof = stores
    rng = np.random.default_rng(11)
    n = 5_000
    entities = pd.DataFrame(
        {
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
            "tailnum": rng.choice(["N1", "N2", "N3"], n),
            "event_timestamp": (T0 + pd.to_timedelta(rng.integers(-3600, 52 * 3600, n), unit="s")).astype(
                "datetime64[us, UTC]"
            ),
            "_row": np.arange(n),
        }
    )
    pd.testing.assert_frame_equal(_features(asof, entities), _features(stock, entities))
