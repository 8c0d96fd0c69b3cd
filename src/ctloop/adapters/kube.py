"""Kubernetes adapter: the only module that imports ``kubernetes``.

The SeldonDeployment is created by the manifests (``kubectl apply -k manifests/overlays/<env>``):
they own its environment (namespace, image tag, resources, replicas). The deploy step owns the
model: it reads the live object, sets each predictor's model (URI, registry version label and
serving parameters) and, with a challenger, a canary predictor with its traffic share, and
server-side applies only ``spec.predictors`` and the version label with field manager
``ctloop-deploy``. ``spec.predictors`` is one list to Kubernetes: re-applying the overlay over
it would put the bootstrap model back, so the object is labelled
``ctloop.dev/model-owner: deploy-step`` and later applies skip it
(``kubectl apply -k ... -l 'ctloop.dev/model-owner!=deploy-step'``), then run ``ctloop deploy``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

GROUP, VERSION, PLURAL, KIND = "machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment"
FIELD_MANAGER = "ctloop-deploy"
VERSION_LABEL = "ctloop.dev/model-version"
CHAMPION, CHALLENGER = "champion", "challenger"
CARD_PARAMETERS = ("model_name", "model_version", "model_alias", "feature_service")


class KubeError(RuntimeError):
    """The cluster refused, or the object to update is missing."""


@dataclass(frozen=True)
class ServedModel:
    """A registry version as a predictor serves it."""

    name: str
    version: str
    alias: str
    uri: str
    feature_service: str

    def parameters(self) -> dict[str, str]:
        """What the model class reports in ``meta.tags`` (the cluster has no exported ``model.json``)."""
        return {
            "model_name": self.name,
            "model_version": self.version,
            "model_alias": self.alias,
            "feature_service": self.feature_service,
        }


def _predictor(base: dict[str, Any], name: str, model: ServedModel, traffic: int) -> dict[str, Any]:
    predictor = copy.deepcopy(base)
    predictor["name"] = name
    predictor["traffic"] = traffic
    predictor["labels"] = {**predictor.get("labels", {}), VERSION_LABEL: model.version}
    for spec in predictor.get("componentSpecs", []):
        meta = spec.setdefault("metadata", {})
        meta["labels"] = {**meta.get("labels", {}), VERSION_LABEL: model.version}
    graph = predictor["graph"]
    graph["modelUri"] = model.uri
    kept = [p for p in graph.get("parameters", []) if p.get("name") not in CARD_PARAMETERS]
    graph["parameters"] = kept + [{"name": k, "value": v, "type": "STRING"} for k, v in model.parameters().items()]
    return predictor


def render_predictors(
    live: dict[str, Any], champion: ServedModel, challenger: ServedModel | None, canary_percent: int
) -> dict[str, Any]:
    """The server-side-apply body: the live object's identity and its predictors set to these models.

    The champion predictor (the one named ``champion``, else the first) is the template for
    both; the challenger gets ``canary_percent`` of the traffic when it is a different version.
    """
    predictors = live.get("spec", {}).get("predictors") or []
    if not predictors:
        raise KubeError(f"SeldonDeployment {live.get('metadata', {}).get('name')} has no predictor to update")
    if not 0 <= canary_percent < 100:
        raise KubeError(f"canary_percent must be in [0, 100), got {canary_percent}")
    base = next((p for p in predictors if p.get("name") == CHAMPION), predictors[0])
    canary = challenger is not None and challenger.version != champion.version and canary_percent > 0
    rendered = [_predictor(base, CHAMPION, champion, 100 - canary_percent if canary else 100)]
    if canary and challenger is not None:
        # the overlay's challenger predictor (its replicas, resources) if it has one; else one replica
        live_challenger = next((p for p in predictors if p.get("name") == CHALLENGER), None)
        template = live_challenger or {**base, "replicas": 1}
        rendered.append(_predictor(template, CHALLENGER, challenger, canary_percent))
    metadata = live["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": {VERSION_LABEL: champion.version},
        },
        "spec": {"predictors": rendered},
    }


class Kube:
    """SeldonDeployments in one namespace, through the cluster's API (in-cluster or kubeconfig)."""

    def __init__(self, namespace: str, api_client: Any = None) -> None:
        """Use ``api_client``, else the pod's service account, else the local kubeconfig."""
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.namespace = namespace
        self.api_client = api_client
        self._objects = client.CustomObjectsApi(api_client)

    def get_seldon_deployment(self, name: str) -> dict[str, Any]:
        """The live object, or :class:`KubeError` saying how to create it."""
        from kubernetes.client.exceptions import ApiException

        try:
            found: dict[str, Any] = self._objects.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise KubeError(
                    f"SeldonDeployment {name} not found in {self.namespace}: apply the overlay first "
                    "(kubectl apply -k manifests/overlays/<env>)"
                ) from None
            raise KubeError(f"reading SeldonDeployment {name}: {exc.status} {exc.reason}") from None
        return found

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (``application/apply-patch+yaml``, force, field manager ``ctloop-deploy``)."""
        from kubernetes.client.exceptions import ApiException

        name = body["metadata"]["name"]
        try:
            result: dict[str, Any] = self.api_client.call_api(
                f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}",
                "PATCH",
                path_params={"namespace": self.namespace, "name": name},
                query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                body=body,  # the client serializes apply-patch+yaml bodies as JSON (JSON is YAML)
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=True,
            )
        except ApiException as exc:
            raise KubeError(f"applying SeldonDeployment {name}: {exc.status} {exc.reason}: {exc.body}") from None
        return result
