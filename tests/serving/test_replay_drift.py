"""Drift injection through the replay engine: the same week replayed twice against the live stack.

Flights of a week the champion was fitted on go through the real endpoint hour by hour (the
replay's loop, its online feed, its feedback); the monitor's pass over that week finds no drift.
The same week again with two request features shifted (distances 1,000 miles longer, departures five hours
later in the day) fires the drift trigger on exactly those features.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from ctloop.adapters import featurestore as fs
from ctloop.app.monitor_pass import monitor_pass, on_this_machine
from ctloop.app.replay import Endpoint, Loop, Plan, Sender, replay_flights, warm_feed
from ctloop.core import data, features
from ctloop.pipelines.local import LocalRetrainer

pytestmark = pytest.mark.slow

WEEK = (date(2013, 2, 2), date(2013, 2, 8))  # inside the serving champion's fit days (Feb 1-12)


def shifted(flight: dict[str, Any]) -> dict[str, Any]:
    """A thousand miles further; the scheduled departure five hours later on the same day."""
    when = pd.Timestamp(flight["sched_dep"])
    later = when.replace(hour=(when.hour + 5) % 24)
    return {**flight, "distance": flight["distance"] + 1000, "sched_dep": later.isoformat()}


def replay_week(settings, live, snapshot, change=None) -> Any:
    """One week through the live endpoint; the monitor's dry-run pass at its end."""
    plan = Plan("2013-01-01", "2013-01-31", WEEK[0], WEEK[1], sample=0.4, seed=5, monitor_every_days=1)
    flights_, weather, planes = data.read_snapshot(Path(snapshot.path))
    tables = features.feature_tables(flights_, weather, planes)
    flights = replay_flights(flights_, plan)
    if change is not None:
        flights.requests = [change(r) for r in flights.requests]
    fs.load_online(settings, plan.begins.to_pydatetime())  # static plane rows, and everything up to the start
    feed = warm_feed(fs.open_store(settings), tables, plan.begins.to_pydatetime())
    watch = on_this_machine(settings, LocalRetrainer())
    loop = Loop(
        settings,
        plan,
        flights,
        Endpoint(live.rest_url),
        feed,
        lambda _now: None,
        Sender(live.rest_url),
        watch,
        dry_run=True,
    )
    loop.run()
    return monitor_pass(settings, plan.ends.tz_localize(None).to_pydatetime(), watch, dry_run=True)


def test_a_shifted_week_fires_drift_and_the_same_week_unshifted_does_not(live, registered, snapshot):
    """Unshifted: no drift trigger. Shifted: the drift trigger, naming the two shifted features."""
    settings = registered.settings.replace(
        monitor=replace(registered.settings.monitor, window="7d", min_rows=1000, min_drifted_features=2)
    )
    online = redis.Redis(port=settings.services.redis_port)
    try:
        # Feast's Redis store keeps the newest event per key: a rewound clock starts from an empty store
        online.flushdb()
        same = replay_week(settings, live, snapshot)
        online.flushdb()
        moved = replay_week(settings, live, snapshot, shifted)
    finally:
        online.flushdb()
        fs.load_online(settings)  # the other serving tests expect the newest values online
    assert same.decision.numbers["rows"] >= 1000
    assert "drift" not in same.decision.triggers, same.decision.reasons
    assert "drift" in moved.decision.triggers, moved.decision.reasons
    reason = next(r for r in moved.decision.reasons if r.startswith("2 features"))
    assert "distance_mi" in reason and "sched_hour" in reason
