"""`make reliability`: load with a promotion, a rollback and a feature-server kill, against the real stack.

Each scenario keeps 8 connections busy with valid prediction requests, prints its figures and
writes them under its own key in bench/results/reliability.json. The fast versions that run in
`make test` are tests/serving/test_rollback.py and tests/serving/test_endpoint.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from ctloop.adapters.registry import CHAMPION, Registry
from ctloop.app import deploy, stack
from reliability import load
from tests.serving.conftest import flights_payload, promote_and_deploy
from tests.serving.test_endpoint import GOOD

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "reliability.json"
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "120"))
ROLLBACK_SECONDS = float(os.environ.get("ROLLBACK_SECONDS", "10"))
FEATURE_SERVER_DOWN_S = float(os.environ.get("FEATURE_SERVER_DOWN_S", "5"))
BODY = flights_payload([GOOD])


def champion_is(settings: Any, version: str) -> None:
    found = Registry(settings).by_alias(CHAMPION)
    if found is None or found.version != version:
        promote_and_deploy(settings, version)


def report(key: str, figures: dict[str, Any], line: str) -> None:
    load.write(RESULTS, key, figures)
    print(f"\n{line}\nfigures: {RESULTS.relative_to(ROOT)} [{key!r}]")


def test_two_minutes_at_8_connections_with_a_promotion_fail_nothing_and_memory_stays_flat(live, registered, capsys):
    """A promotion half-way through 120 s of load: 0 failed requests, serving RSS grows < 10 % after warm-up."""
    settings = registered.settings
    champion_is(settings, "1")
    seldon = live.processes[1]
    figures = load.promotion(
        live.rest_url, BODY, seldon.popen.pid, lambda: promote_and_deploy(settings, "2"), LOAD_SECONDS
    )
    with capsys.disabled():
        report(
            "load_with_promotion",
            figures,
            f"load with a promotion: {figures['requests']} requests in {figures['seconds']} s at "
            f"{figures['connections']} connections ({figures['requests_per_s']}/s), {figures['failed']} failed, "
            f"answered by {figures['versions']}; serving RSS ({figures['serving_processes']} processes) "
            f"{figures['rss_mib_after_warmup']} MiB after warm-up -> {figures['rss_mib_end']} MiB at the end "
            f"({figures['memory_growth_pct']:+} %)",
        )
    assert figures["failed"] == 0, figures["first_failures"]
    assert set(figures["versions"]) == {"1", "2"}
    assert figures["memory_growth_pct"] < 10


def test_rollback_under_load_fails_nothing_and_serving_follows_within_the_swap_interval(live, registered, capsys):
    """`ctloop rollback` (its function) between two stretches of load: 0 failures, then only the target answers."""
    settings = registered.settings
    champion_is(settings, "2")
    swap_s = settings.serving.swap_check_s

    def roll_back() -> str:
        return deploy.rollback(settings).version

    figures = load.rollback(live.rest_url, BODY, roll_back, swap_s, ROLLBACK_SECONDS, ROLLBACK_SECONDS)
    with capsys.disabled():
        report(
            "rollback_under_load",
            figures,
            f"rollback under load: {figures['requests']} requests, {figures['failed']} failed; back to "
            f"v{figures['rolled_back_to']} in {figures['rollback_call_s']} s; "
            f"{figures['answers_after_swap_interval']} answers sent > {swap_s} s after the switch, "
            f"{figures['not_the_target_after_swap_interval']} not from v{figures['rolled_back_to']}; the last old "
            f"answer was sent {figures['last_old_version_sent_after_switch_s']} s after the switch",
        )
    assert figures["rolled_back_to"] == "1"
    assert figures["failed"] == 0, figures["first_failures"]
    assert set(figures["versions"]) == {"1", "2"}
    assert figures["not_the_target_after_swap_interval"] == 0
    assert figures["answers_after_swap_interval"] > 100


def test_feature_server_killed_under_load_is_503_not_ready_and_recovers_within_5_s(live, registered, request, capsys):
    """The feature server SIGKILLed under load: 503 with the reason, not ready; back within 5 s of its return."""
    settings = registered.settings
    feast = live.processes[0]
    assert feast.name == "feature-server" and feast.alive()
    cfg = settings.serving

    def kill() -> None:
        feast.signal(signal.SIGKILL)
        feast.popen.wait()

    def restart() -> None:
        log_dir = settings.data_dir / "logs" / "serving"
        restarted = stack.start_feature_server(settings, cfg.feature_server_port, cfg.feature_server_workers, log_dir)
        request.config.add_cleanup(restarted.stop)  # the session's stack goes on with the new server

    figures = load.feature_server_kill(live.rest_url, BODY, kill, restart, FEATURE_SERVER_DOWN_S)
    with capsys.disabled():
        report(
            "feature_server_kill",
            figures,
            f"feature server killed under load for {figures['down_s']} s: {figures['requests']} requests, during the "
            f"outage {figures['during_outage']}, readiness false after {figures['readiness_false_after_s']} s; "
            f"restarted in {figures['restart_s']} s; after its return: first 200 in "
            f"{figures['recovery_first_ok_s']} s, ready in {figures['recovery_ready_s']} s; "
            f"{figures['unexpected']} answers other than 200 or that 503, "
            f"{figures['failed_after_recovery']} failed after recovery",
        )
    assert figures["unexpected"] == 0, figures["first_unexpected"]
    assert list(figures["during_outage"]) == ["503 FEATURE_SERVER_UNAVAILABLE"]  # every request, with the reason
    assert figures["readiness_false_after_s"] is not None
    assert figures["readiness_while_down"]["http_status"] == 503
    assert figures["recovery_first_ok_s"] is not None and figures["recovery_first_ok_s"] <= 5
    assert figures["recovery_ready_s"] is not None and figures["recovery_ready_s"] <= 5
    assert figures["failed_after_recovery"] == 0
