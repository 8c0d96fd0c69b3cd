"""`ctloop rollback` under load against the real stack: no failed request, serving follows within the swap interval.

The two-minute promotion run, a longer rollback run and the feature-server kill with figures
are `make reliability` (tests/reliability/test_load_full.py); the promotion-under-load and
feature-server-kill fast checks are tests/serving/test_endpoint.py.
"""

from __future__ import annotations

import time

import pytest

from ctloop.app import deploy
from ctloop.contract import layout
from reliability import load
from tests.serving.conftest import call, flights_payload, promote_and_deploy
from tests.serving.test_endpoint import GOOD

pytestmark = pytest.mark.slow


def test_rollback_under_load_fails_no_request_and_serving_follows(live, registered, champion_v1):
    """v1 → v2 promoted, then rolled back during 8 connections of requests: 0 failures, v1 answers after the swap."""
    settings = registered.settings
    promote_and_deploy(settings, "2")

    def roll_back() -> str:
        done = deploy.rollback(settings)
        assert (done.left, done.version, done.deployed.switched) == ("2", "1", True)
        return done.version

    swap_s = settings.serving.swap_check_s
    figures = load.rollback(live.rest_url, flights_payload([GOOD]), roll_back, swap_s, before_s=1.5, after_s=1.5)
    assert figures["failed"] == 0, figures["first_failures"]
    assert set(figures["versions"]) == {"1", "2"}  # both answered: the rollback happened under load
    assert figures["answers_after_swap_interval"] > 20
    assert figures["not_the_target_after_swap_interval"] == 0
    assert figures["last_old_version_sent_after_switch_s"] <= swap_s


def test_the_rolled_back_version_is_not_the_next_target(live, registered, champion_v1):
    """After v2 → v1, a second rollback refuses (v1 is the first) and serving stays on v1."""
    settings = registered.settings
    promote_and_deploy(settings, "2")
    assert deploy.rollback(settings).version == "1"
    with pytest.raises(deploy.RegistryError, match="no earlier version to roll back to"):
        deploy.rollback(settings)
    assert (layout.serving_dir(settings.data_dir) / layout.CURRENT).readlink().name == "v1"
    time.sleep(settings.serving.swap_check_s)
    for _ in range(6):  # both workers answer with v1
        status, answer = call(f"{live.rest_url}{load.PREDICT_PATH}", flights_payload([GOOD]))
        assert (status, answer["meta"]["tags"]["model_version"]) == (200, "1")
