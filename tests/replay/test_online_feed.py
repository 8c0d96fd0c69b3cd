"""The replay's online store holds only what its clock has passed: no feature row before its event time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ctloop.adapters import featurestore as fs
from ctloop.adapters import services
from ctloop.app.replay import local_midnight, warm_feed
from ctloop.config import Settings
from ctloop.core import data, features

pytestmark = pytest.mark.slow

ORIGINS = ("EWR", "JFK", "LGA")
CARRIERS = ("AA", "B6", "UA")


@dataclass(frozen=True)
class Online:
    """The session's Feast registry over a Redis of its own, and the snapshot's offline tables."""

    settings: Settings
    store: Any
    tables: dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def online(materialized, snapshot, tmp_path_factory) -> Iterator[Online]:
    """A fresh Redis: the session's shared one keeps what the other tests expect."""
    port = services.free_port()
    with services.redis_running(port, tmp_path_factory.mktemp("feed-redis")):
        settings = materialized.replace(services=replace(materialized.services, redis_port=port))
        tables = features.feature_tables(*data.read_snapshot(Path(snapshot.path)))
        yield Online(settings, fs.open_store(settings), tables)


def online_rows(store, view: str, key: str, values: tuple[str, ...], feature: str) -> pd.DataFrame:
    """Online values of one feature per key, with the event time Feast stored them under."""
    response = store.get_online_features(
        features=[f"{view}:{feature}"], entity_rows=[{key: v} for v in values]
    ).to_dict(include_event_timestamps=True)
    return pd.DataFrame({key: response[key], feature: response[feature], "at": response[f"{feature}__ts"]})


def latest_offline(table: pd.DataFrame, key: str, values: tuple[str, ...], now: pd.Timestamp) -> pd.DataFrame:
    """Per key, the offline row with the newest event time at or before ``now``."""
    rows = table.loc[table[key].isin(values) & (table["event_timestamp"] <= now)]
    return rows.sort_values("event_timestamp").groupby(key).tail(1).set_index(key)


def test_the_feed_serves_each_hour_exactly_the_rows_whose_time_has_come(online):
    """Hour by hour, online weather and carrier rates are the newest offline rows at or before now, never later.

    The steps cross the day the feed converts ahead, and jump past it (rows converted anew).
    """
    begins = local_midnight(pd.Timestamp("2013-02-20").date())
    feed = warm_feed(online.store, online.tables, begins.to_pydatetime())
    for hours in (0, 1, 5, 23, 30, 31, 100, 101):
        now = begins + pd.Timedelta(hours=hours)
        feed.advance(now.to_pydatetime())
        for view, key, values, feature in (
            ("origin_weather", "origin", ORIGINS, "temp"),
            ("carrier_delay", "carrier", CARRIERS, "carrier_delay_rate_7d"),
        ):
            got = online_rows(online.store, view, key, values, feature).set_index(key)
            want = latest_offline(online.tables[view], key, values, now)
            stamps = pd.to_datetime(got["at"], unit="s", utc=True)
            assert (stamps <= now).all(), f"{view} holds a row from after {now}"
            assert stamps.tolist() == want["event_timestamp"].reindex(got.index).tolist(), (view, now)
            assert got[feature].astype(float).round(9).equals(want[feature].reindex(got.index).round(9))
    assert feed.written_until == now


def test_a_stack_loads_the_online_store_only_up_to_the_replays_start(online):
    """``load_online(until=...)``: after it, nothing online is newer than ``until`` although the partitions go on."""
    until = local_midnight(pd.Timestamp("2013-03-01").date())
    assert online.tables["origin_weather"]["event_timestamp"].max() > until + pd.Timedelta(days=7)
    fs.load_online(online.settings, until.to_pydatetime())
    weather = online_rows(online.store, "origin_weather", "origin", ORIGINS, "temp")
    rates = online_rows(online.store, "carrier_delay", "carrier", CARRIERS, "carrier_delay_rate_7d")
    for got in (weather, rates):
        assert (pd.to_datetime(got["at"], unit="s", utc=True) <= until).all()
    newest = latest_offline(online.tables["origin_weather"], "origin", ORIGINS, until)["event_timestamp"]
    assert (pd.to_datetime(weather.set_index("origin")["at"], unit="s", utc=True) == newest.reindex(ORIGINS)).all()


def test_an_hour_whose_features_are_all_null_leaves_the_values_before_it(online):
    """As Feast's ``write_to_online_store`` does: a batch with no feature value is not written."""
    begins = local_midnight(pd.Timestamp("2013-03-04").date())  # after what the tests above left online
    blank = begins + pd.Timedelta(hours=6)
    weather = online.tables["origin_weather"].copy()
    at_blank = (weather["event_timestamp"] > blank - pd.Timedelta(hours=1)) & (weather["event_timestamp"] <= blank)
    assert at_blank.sum() >= len(ORIGINS)
    values = [c for c in weather.columns if c not in ("origin", "event_timestamp", "created")]
    weather.loc[at_blank, values] = float("nan")
    feed = warm_feed(online.store, {**online.tables, "origin_weather": weather}, begins.to_pydatetime())
    feed.advance((blank - pd.Timedelta(hours=1)).to_pydatetime())
    before = online_rows(online.store, "origin_weather", "origin", ORIGINS, "temp").set_index("origin")
    feed.advance(blank.to_pydatetime())
    after = online_rows(online.store, "origin_weather", "origin", ORIGINS, "temp").set_index("origin")
    assert after.equals(before)  # still the hour before, not nulls
    feed.advance((blank + pd.Timedelta(hours=1)).to_pydatetime())
    later = online_rows(online.store, "origin_weather", "origin", ORIGINS, "temp").set_index("origin")
    assert (pd.to_datetime(later["at"], unit="s", utc=True) > blank).all()


def test_the_feed_writes_redis_without_reading_the_stored_event_times(online):
    """Its rows come in event-time order: Feast's ``skip_dedup`` for its writes only, the store's config untouched."""
    feed = fs.OnlineFeed(online.store, online.tables, local_midnight(pd.Timestamp("2013-03-10").date()))
    assert feed.config.online_store.skip_dedup is True
    assert online.store.config.online_store.skip_dedup is False
    assert feed.config.online_store.connection_string == online.store.config.online_store.connection_string
    assert feed.config.registry.path == online.store.config.registry.path
