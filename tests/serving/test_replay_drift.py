"""Drift injection through the replay engine: one week replayed against the live stack, as is and shifted.

Flights of a week the champion was fitted on go through the real endpoint hour by hour (the
replay's loop, its online feed, its feedback); the monitor's pass over that week finds no drift.
The same week again with each incident of ``tests/drift_scenarios.py`` injected where it would
happen (the weather fed to the online store 25 °F warmer, or without pressure; requests 1,000 miles
further and five hours later; one carrier's flights four times over) fires the drift trigger on
exactly the features the incident moved, judged above each one's normal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from ctloop.adapters import featurestore as fs
from ctloop.app.monitor_pass import monitor_pass, on_this_machine
from ctloop.app.replay import Endpoint, Loop, Plan, Sender, replay_flights, warm_feed
from ctloop.config import MonitorSettings
from ctloop.contract import buckets
from ctloop.core import data, features
from ctloop.pipelines.local import LocalRetrainer
from tests import drift_scenarios as scenarios

pytestmark = pytest.mark.slow

WEEK = (date(2013, 2, 2), date(2013, 2, 8))  # inside the serving champion's fit days (Feb 1 - Mar 1)


def further_and_later(flight: dict[str, Any]) -> dict[str, Any]:
    """A thousand miles further; the scheduled departure five hours later on the same day."""
    when = pd.Timestamp(flight["sched_dep"])
    later = when.replace(hour=(when.hour + 5) % 24)
    return {**flight, "distance": flight["distance"] + 1000, "sched_dep": later.isoformat()}


def carrier_mix(flights: pd.DataFrame) -> pd.DataFrame:
    """One carrier's flights four times over (copies under their own ids)."""
    theirs = flights.loc[flights["carrier"] == scenarios.CARRIER]
    copies = [theirs.assign(flight_id=theirs["flight_id"] + f"-copy{i}") for i in (1, 2, 3)]
    return pd.concat([flights, *copies], ignore_index=True)


@dataclass(frozen=True)
class Incident:
    """How a scenario of ``tests/drift_scenarios.py`` reaches the live stack."""

    requests: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Changes each request (request-time features)."""
    weather: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    """Changes the weather the online store is fed."""
    flights: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    """Changes which flights are sent."""


INCIDENTS = {
    "unchanged": Incident(),
    "weather": Incident(weather=scenarios.warmer),
    "distances and hours": Incident(requests=further_and_later),
    "carrier mix": Incident(flights=carrier_mix),
    "broken feature": Incident(weather=scenarios.broken),
}


def replay_week(settings, live, snapshot, incident: Incident) -> Any:
    """One week through the live endpoint; the monitor's dry-run pass at its end."""
    plan = Plan("2013-01-01", "2013-01-31", WEEK[0], WEEK[1], sample=0.4, seed=5, monitor_every_days=1)
    flights_, weather, planes = data.read_snapshot(Path(snapshot.path))
    tables = features.feature_tables(flights_, weather, planes)  # rates from the real traffic
    if incident.weather is not None:
        tables["origin_weather"] = incident.weather(tables["origin_weather"])
    flights = replay_flights(flights_ if incident.flights is None else incident.flights(flights_), plan)
    if incident.requests is not None:
        flights.requests = [incident.requests(r) for r in flights.requests]
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


@pytest.fixture(scope="module")
def passes(live, registered, snapshot) -> dict[str, Any]:
    """The monitor's pass after each scenario's week, replayed through the live endpoint."""
    settings = registered.settings.replace(monitor=replace(MonitorSettings(), window="7d"))
    online = redis.Redis(port=settings.services.redis_port)
    out = {}
    try:
        for name, incident in INCIDENTS.items():
            # Feast's Redis store keeps the newest event per key: a rewound clock starts from an empty store
            online.flushdb()
            out[name] = replay_week(settings, live, snapshot, incident)
    finally:
        online.flushdb()
        fs.load_online(settings)  # the other serving tests expect the newest values online
    return out


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.name)
def test_a_replayed_week_fires_drift_only_when_shifted_naming_the_features(passes, scenario):
    """Unchanged: no drift. Weather, distances and hours, a carrier's mix, a broken feature: drift naming them."""
    decision = passes[scenario.name].decision
    assert decision.numbers["rows"] >= MonitorSettings().min_rows
    assert set(decision.numbers["drifted_features"]) == scenario.fires, decision.reasons
    if scenario.fires:
        assert "drift" in decision.triggers
        reason = next(r for r in decision.reasons if "above their normal" in r)
        assert all(name in reason for name in scenario.fires), reason
    else:
        assert "drift" not in decision.triggers and "prediction_drift" not in decision.triggers, decision.reasons


def test_serving_exports_the_reference_shares_and_normals_the_rules_read(live, registered):
    """The metrics page carries the served version's reference shares and normal PSIs, as in its metadata."""
    from tests.serving.test_endpoint import scrape, total

    profile = registered.bundles["1"].metadata["reference_fractions"]
    page = scrape(live)
    normal = profile[buckets.NORMAL]
    assert set(normal["features"]) == set(registered.bundles["1"].feature_names)
    for feature, value in normal["features"].items():
        assert total(page, "ctloop_feature_normal_psi", model_version="1", feature=feature) == pytest.approx(value)
    assert total(page, "ctloop_prediction_normal_psi", model_version="1") == pytest.approx(normal["prediction"])
    for bucket, share in profile["features"]["temp"].items():
        got = total(page, "ctloop_feature_reference_share", model_version="1", feature="temp", bucket=bucket)
        assert got == pytest.approx(share)
