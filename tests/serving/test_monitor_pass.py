"""A monitoring pass against the live microservice: windows between passes, the decision log, dry runs."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime

import pytest

from ctloop.app.monitor_pass import monitor_pass, on_this_machine
from ctloop.pipelines.local import LocalRetrainer
from tests.serving.conftest import call, flights_payload
from tests.serving.test_endpoint import sample_flights

pytestmark = pytest.mark.slow


def test_passes_read_the_window_since_the_previous_one_and_log_decisions(live, registered, snapshot):
    """With a one-day window, a pass a day later sees exactly the flights and outcomes sent since; all are logged."""
    settings = registered.settings.replace(monitor=replace(registered.settings.monitor, window="1d"))
    url = f"{live.rest_url}/api/v1.0/predictions"
    time.sleep(0.3)  # earlier traffic flushed to the metrics page
    monitor_pass(settings, datetime(2013, 3, 16), on_this_machine(settings, LocalRetrainer()), dry_run=True)
    rows = sample_flights(snapshot, 12)
    _, answer = call(url, flights_payload(rows))
    status, _ = call(
        f"{live.rest_url}/api/v1.0/feedback", {"response": answer, "truth": {"data": {"ndarray": [1, 0] * 6}}}
    )
    assert status == 200
    time.sleep(0.3)
    second = monitor_pass(settings, datetime(2013, 3, 17), on_this_machine(settings, LocalRetrainer()), dry_run=True)
    assert second.decision.numbers["rows"] == 12
    assert any("12 flights scored" in r for r in second.decision.reasons)  # below min_rows: drift not judged
    log = [json.loads(line) for line in (settings.data_dir / "monitor" / "decisions.jsonl").read_text().splitlines()]
    assert log[-1]["at"] == "2013-03-17T00:00:00" and log[-1]["model_version"] == second.decision.model_version


def test_an_old_champion_triggers_a_scheduled_retrain_on_the_window_before_now(live, registered):
    """Months after the champion's data: the schedule fires; a dry run records the window it would train on."""
    watch = on_this_machine(registered.settings, LocalRetrainer())
    result = monitor_pass(registered.settings, datetime(2013, 6, 1), watch, dry_run=True)
    assert "schedule" in result.decision.triggers and result.decision.retrain
    assert result.outcome == "dry run"
    assert result.decision.numbers["model_age_days"] > 28


def test_on_a_cluster_the_policy_memory_lives_in_the_registry(registered, tmp_path):
    """A cluster's watch keeps the last run's state in registered-model tags, not in files."""
    from ctloop.app.monitor_pass import RegistryState, on_cluster
    from ctloop.core.monitor import State

    settings = registered.settings.replace(paths=replace(registered.settings.paths, data_dir=str(tmp_path)))
    store = on_cluster(settings).state
    assert isinstance(store, RegistryState)
    assert store.load() == State()
    state = State(last_run_at="2013-06-01T00:00:00", last_incident="drift", last_outcome="not blessed")
    store.save(state)
    assert store.load() == state
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing written to the pod's disk
