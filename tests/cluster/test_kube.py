"""Rendering the SeldonDeployment for registry versions, and the server-side apply the adapter sends."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from ctloop.adapters import kube
from ctloop.adapters.kube import CHALLENGER, CHAMPION, VERSION_LABEL, Kube, KubeError, ServedModel, render_predictors
from ctloop.adapters.registry import RegistryError, serving_uri_for
from tests.recording import kube_client

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "manifests" / "schemas" / "seldondeployment-machinelearning.seldon.io-v1.json").read_text())
LIVE = yaml.safe_load((ROOT / "manifests" / "schemas" / "examples" / "valid-seldondeployment.yaml").read_text())
LIVE["metadata"]["namespace"] = "ctloop-dev"
V3 = ServedModel("flight-delay", "3", "champion", "s3://mlflow/1/abc/artifacts/serving", "flight_delay_v1")
V4 = ServedModel("flight-delay", "4", "challenger", "s3://mlflow/1/def/artifacts/serving", "flight_delay_v1")


def params(predictor: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in predictor["graph"]["parameters"]}


def test_champion_only_gets_all_traffic_and_its_version_everywhere():
    """One predictor: the champion's URI, version label on the object, predictor and pods, tags as parameters."""
    body = render_predictors(LIVE, V3, None, 10)
    (champion,) = body["spec"]["predictors"]
    assert champion["name"] == CHAMPION and champion["traffic"] == 100
    assert champion["graph"]["modelUri"] == V3.uri
    assert body["metadata"]["labels"][VERSION_LABEL] == "3" and champion["labels"][VERSION_LABEL] == "3"
    assert all(c["metadata"]["labels"][VERSION_LABEL] == "3" for c in champion["componentSpecs"])
    assert params(champion)["model_version"] == "3" and params(champion)["model_alias"] == CHAMPION
    assert body["metadata"]["namespace"] == LIVE["metadata"]["namespace"]
    assert set(body) == {"apiVersion", "kind", "metadata", "spec"}


def test_challenger_is_a_canary_with_its_share():
    """With a challenger and a canary share: two predictors, traffic 90/10, each its own model."""
    body = render_predictors(LIVE, V3, V4, 10)
    champion, challenger = body["spec"]["predictors"]
    assert (champion["traffic"], challenger["traffic"]) == (90, 10)
    assert challenger["name"] == CHALLENGER and challenger["graph"]["modelUri"] == V4.uri
    assert params(challenger)["model_version"] == "4" and challenger["labels"][VERSION_LABEL] == "4"
    assert champion["componentSpecs"] == [
        {**c, "metadata": {**c.get("metadata", {}), "labels": {**c["metadata"]["labels"], VERSION_LABEL: "3"}}}
        for c in challenger["componentSpecs"]
    ]


@pytest.mark.parametrize(("challenger", "share"), [(V4, 0), (V3, 10), (None, 10)])
def test_no_canary_without_a_share_or_a_different_version(challenger, share):
    """Share 0, the challenger being the champion, or no challenger: the champion alone."""
    assert len(render_predictors(LIVE, V3, challenger, share)["spec"]["predictors"]) == 1


def test_rendering_is_idempotent_and_keeps_other_parameters():
    """Rendering the rendered object again changes nothing; parameters that are not the model's stay."""
    once = render_predictors(LIVE, V3, V4, 10)
    live_again = {**LIVE, "spec": {**LIVE["spec"], "predictors": once["spec"]["predictors"]}}
    assert render_predictors(live_again, V3, V4, 10) == once
    kept = {p["name"] for p in LIVE["spec"]["predictors"][0]["graph"].get("parameters", [])}
    assert kept <= set(params(once["spec"]["predictors"][0]))


def test_rendered_object_is_a_valid_seldondeployment():
    """The live object with the rendered predictors validates against the SeldonDeployment CRD schema."""
    body = render_predictors(LIVE, V3, V4, 10)
    merged = {**LIVE, "metadata": {**LIVE["metadata"], **body["metadata"]}, "spec": {**LIVE["spec"], **body["spec"]}}
    jsonschema.Draft202012Validator(SCHEMA).validate(merged)


@pytest.mark.parametrize(("live", "share"), [({**LIVE, "spec": {"predictors": []}}, 0), (LIVE, 100)])
def test_bad_inputs_are_clear_errors(live, share):
    """No predictor to update, or a share that would starve the champion: KubeError."""
    with pytest.raises(KubeError):
        render_predictors(live, V3, V4, share)


def test_proxied_artifact_uris_map_onto_the_artifact_store():
    """mlflow-artifacts:/ paths become URIs under the server's --artifacts-destination; others stay."""
    assert serving_uri_for("mlflow-artifacts:/1/abc/artifacts", "s3://mlflow") == "s3://mlflow/1/abc/artifacts/serving"
    assert serving_uri_for("s3://bucket/1/abc/artifacts/", "") == "s3://bucket/1/abc/artifacts/serving"
    with pytest.raises(RegistryError, match="artifacts_destination"):
        serving_uri_for("mlflow-artifacts:/1/abc/artifacts", "")


def test_apply_is_a_forced_server_side_apply_by_ctloop_deploy(recorder):
    """The real kubernetes client sends PATCH apply-patch+yaml with fieldManager=ctloop-deploy&force=true."""
    path = f"/apis/{kube.GROUP}/{kube.VERSION}/namespaces/ctloop-dev/{kube.PLURAL}/{LIVE['metadata']['name']}"
    recorder.on("GET", path, lambda _: (200, LIVE))
    recorder.on("PATCH", path, lambda seen: (200, seen.body))
    cluster = Kube("ctloop-dev", kube_client(recorder.url))
    body = render_predictors(cluster.get_seldon_deployment(LIVE["metadata"]["name"]), V3, None, 0)
    answered = cluster.apply(body)
    get, patch = recorder.requests
    assert (get.method, get.path) == ("GET", path)
    assert (patch.method, patch.path) == ("PATCH", path)
    assert patch.query == {"fieldManager": "ctloop-deploy", "force": "true"}
    assert patch.headers["Content-Type"] == "application/apply-patch+yaml"
    assert patch.headers["authorization"] == "Bearer test-token"
    assert patch.body == body and answered == body


def test_missing_seldondeployment_says_to_apply_the_overlay(recorder):
    """A 404 becomes a one-line error naming the overlay to apply."""
    cluster = Kube("ctloop-dev", kube_client(recorder.url))
    with pytest.raises(KubeError, match="kubectl apply -k manifests/overlays"):
        cluster.get_seldon_deployment("flight-delay")


def test_challenger_takes_the_overlays_challenger_or_one_replica():
    """The canary copies the overlay's challenger predictor when there is one, else runs one replica."""
    alone = render_predictors(LIVE, V3, V4, 10)["spec"]["predictors"][1]
    assert alone.get("replicas", 1) == 1
    overlay_challenger = {**LIVE["spec"]["predictors"][0], "name": CHALLENGER, "replicas": 2}
    live = {**LIVE, "spec": {**LIVE["spec"], "predictors": [*LIVE["spec"]["predictors"], overlay_challenger]}}
    assert render_predictors(live, V3, V4, 10)["spec"]["predictors"][1]["replicas"] == 2
