"""End to end in containers: the pipeline in the platform image, serving from the serving image.

The pipeline runs on 2013 Jan-Mar with kfp.local's DockerRunner (each task in the platform image
of this checkout, as uid 10001, on the host's network) and registers a version; the feature
server (platform image) and Seldon's microservice (serving image, read-only root) then serve
it, enriched from Feast; a promotion swaps the served version.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ctloop.adapters.registry import Registry
from ctloop.app import stack
from ctloop.app.deploy import deploy
from ctloop.contract.flight_request import EXAMPLE
from ctloop.pipelines import local
from tests.containers.conftest import ours


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST JSON, return (status, decoded body)."""
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
        return int(response.status), json.loads(response.read())


def get(url: str) -> tuple[int, str]:
    """GET, return (status, text)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback test server
        return int(response.status), response.read().decode()


def test_the_pipeline_in_containers_registers_a_blessed_version(box_settings, trained, tag, podman):
    """All seven tasks ran in the image; the gate blessed the model; v1 carries the image's SHA."""
    assert trained.tasks == list(local.TASKS)
    assert trained.output("gate") == "blessed"
    assert trained.output("register") == "1"
    champion = Registry(box_settings).by_alias("champion")
    assert champion is not None
    assert (champion.version, champion.tags["git_sha"]) == ("1", tag)
    assert ours(podman) == []


@pytest.fixture(scope="module")
def served(box_settings, trained, tag) -> Iterator[stack.Stack]:
    """Redis, then the feature server and the microservice in their images, serving the champion."""
    with stack.serving_stack(box_settings, launcher=stack.Containers(box_settings, tag)) as running:
        yield running


def test_the_serving_image_answers_an_enriched_prediction_of_the_registered_version(served):
    """A prediction from the serving container names v1, enriched by the feature server's container."""
    status, body = post(f"{served.rest_url}/api/v1.0/predictions", {"jsonData": {"flights": [EXAMPLE]}})
    assert status == 200
    assert body["meta"]["tags"]["model_version"] == "1"
    assert body["meta"]["tags"]["feature_service"] == "flight_delay_v1"
    (probability,) = body["jsonData"]["probabilities"]
    assert 0 < probability < 1
    assert get(f"{served.rest_url}/health/status")[0] == 200
    status, metrics = get(served.metrics_url)
    assert status == 200
    assert "ctloop_predictions_total" in metrics
    # the feature server's container answered from Redis: no view of this flight came back missing
    assert "ctloop_feature_missing_total{" not in metrics


def test_a_promotion_swaps_the_version_the_container_serves(box_settings, served):
    """A second version (the same window, by the subprocess runner), promoted and deployed, is served in seconds."""
    second = local.run(box_settings, "2013-01-01", "2013-03-31", promote=False, runner="subprocess")
    version = second.output("register")
    assert version == "2"
    Registry(box_settings).promote(version)
    assert deploy(box_settings).switched
    deadline = time.monotonic() + 10
    seen = ""
    while time.monotonic() < deadline and seen != version:
        seen = post(f"{served.rest_url}/api/v1.0/predictions", {"jsonData": {"flights": [EXAMPLE]}})[1]["meta"]["tags"][
            "model_version"
        ]
        time.sleep(0.2)
    assert seen == version
