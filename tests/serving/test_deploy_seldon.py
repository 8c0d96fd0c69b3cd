"""The cluster deploy step against a real registry: aliases resolved to versions and artifact URIs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml
from mlflow import MlflowClient

from ctloop.adapters import kube
from ctloop.adapters.kube import VERSION_LABEL
from ctloop.adapters.registry import Registry
from ctloop.app import deploy
from tests.recording import kube_client

ROOT = Path(__file__).resolve().parents[2]
LIVE = yaml.safe_load((ROOT / "manifests" / "schemas" / "examples" / "valid-seldondeployment.yaml").read_text())


def test_deploy_seldon_resolves_aliases_to_versions_and_uris(registered, recorder):
    """Champion v1 and challenger v2 (canary 10 %): each predictor names its version and its run's serving folder."""
    settings = registered.settings.replace(
        deploy=replace(registered.settings.deploy, target="seldon", canary_percent=10)
    )
    registry = Registry(settings)
    registry.set_alias("challenger", "2")
    path = f"/apis/{kube.GROUP}/{kube.VERSION}/namespaces/ctloop/{kube.PLURAL}/flight-delay"
    recorder.on("GET", path, lambda _: (200, LIVE))
    recorder.on("PATCH", path, lambda seen: (200, seen.body))
    done = deploy.deploy_seldon(settings, kube.Kube("ctloop", kube_client(recorder.url)))
    body = recorder.requests[-1].body
    champion, challenger = body["spec"]["predictors"]
    assert done.version == registry.by_alias("champion").version == champion["labels"][VERSION_LABEL]
    assert challenger["labels"][VERSION_LABEL] == "2" and challenger["traffic"] == 10
    run_uri = MlflowClient(registry.uri).get_run(registry.get("2").run_id).info.artifact_uri
    assert challenger["graph"]["modelUri"] == f"{run_uri}/serving"
    assert {p["name"]: p["value"] for p in champion["graph"]["parameters"]}["feature_service"] == "flight_delay_v1"
