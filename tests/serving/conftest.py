"""The real serving stack for the serving tests: two registered models, feast serve, the Seldon microservice."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ctloop.adapters import services
from ctloop.adapters.registry import Registry
from ctloop.app import deploy, stack
from ctloop.config import Settings
from ctloop.contract import layout
from ctloop.core import train as core
from tests.conftest import END


@dataclass(frozen=True)
class Registered:
    """Two versions of the model in a registry of their own: v1 is champion."""

    settings: Settings
    bundles: dict[str, core.ModelBundle]


@pytest.fixture(scope="session")
def registered(materialized, training_set, snapshot, tmp_path_factory) -> Registered:
    """Train two different models on the test window and register both (real MLflow)."""
    folder = tmp_path_factory.mktemp("serving-registry")
    settings = materialized.replace(
        registry=replace(materialized.registry, tracking_uri=f"sqlite:///{folder / 'mlflow.db'}"),
        serving=replace(
            materialized.serving,
            rest_port=services.free_port(),
            metrics_port=services.free_port(),
            feature_server_port=services.free_port(),
            feature_cache_ttl_s=0.0,  # every request reads the online store: kills and parity are visible
            static_feature_cache_ttl_s=0.0,
            metrics_flush_s=0.1,
        ),
    )
    registry = Registry(settings)
    bundles: dict[str, core.ModelBundle] = {}
    for run, params in (("a", settings.train), ("b", replace(settings.train, max_iter=30, max_leaf_nodes=7))):
        bundle, _ = core.train(training_set, date.fromisoformat(END), params)
        model_dir = folder / f"model-{run}"
        bundle.save(model_dir)
        tags = {"pipeline_run": f"serving-test-{run}", "data_sha256": snapshot.sha256, "git_sha": "0" * 40}
        tags["feature_service"] = settings.features.feature_service
        version = registry.register(model_dir, f"serving-{run}", tags, {"run": run}, {}, {})
        bundles[version.version] = bundle
    registry.promote("1")
    return Registered(settings, bundles)


@pytest.fixture(scope="session")
def live(registered) -> Iterator[stack.Stack]:
    """Redis (the session's), feast serve and the Seldon microservice serving the champion."""
    with stack.serving_stack(registered.settings) as running:
        yield running


def call(
    url: str, body: Any = None, content_type: str = "application/json", raw: bytes | None = None
) -> tuple[int, Any]:
    """POST (or GET without a body) and return the status and the decoded JSON (or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": content_type} if data else {}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - loopback test server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def promote_and_deploy(settings: Settings, version: str) -> None:
    """What `ctloop promote` does: move the alias, export, switch the link."""
    Registry(settings).promote(version)
    deploy.deploy_alias(settings)


@pytest.fixture
def champion_v1(registered) -> Iterator[None]:
    """Leave v1 serving after the test, whatever it promoted (and wait out the workers' swap interval)."""
    yield
    promote_and_deploy(registered.settings, "1")
    time.sleep(3 * registered.settings.serving.swap_check_s + 0.1)


def flights_payload(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A Seldon jsonData request for these flights."""
    return {"jsonData": {"flights": rows}}


def model_dir(settings: Settings) -> Path:
    """The served link."""
    return layout.serving_dir(settings.data_dir) / layout.CURRENT
