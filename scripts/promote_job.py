"""A Kubernetes Job that promotes a registry version to ``champion`` and deploys it, inside the cluster.

MLflow and the SeldonDeployment are reachable only from inside the environment's namespace
(ClusterIP services, default-deny NetworkPolicies), so promotion runs there, as the pipeline's
own register/deploy step would: the Job is derived from the live ``monitor`` CronJob of that
namespace (same platform image and tag, settings file, S3 credentials Secret with its
kustomize hash suffix, security context and resources), with three changes:

- the command: ``ctloop promote VERSION`` then ``ctloop deploy`` with the CronJob's ``--config``
  (``ctloop promote`` moves the alias; ``ctloop deploy`` applies it to the SeldonDeployment);
- the identity of a pipeline task: service account ``ctloop-pipeline`` (bound to the
  ``seldon-deployer`` Role) with its token mounted, and the label
  ``pipelines.kubeflow.org/v2_component: "true"`` that the ``pipeline`` and ``mlflow``
  NetworkPolicies admit (MLflow, MinIO, the Kubernetes API);
- no retries (``backoffLimit: 0``), a deadline, and clean-up an hour after it finishes.

Usage: ``kubectl -n NS get cronjob monitor -o json | python scripts/promote_job.py --name N --version 7``
prints the Job (JSON) for ``kubectl apply -f -``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from typing import Any

SERVICE_ACCOUNT = "ctloop-pipeline"
PIPELINE_LABEL = "pipelines.kubeflow.org/v2_component"
NAME_LABEL = "app.kubernetes.io/name"
REPLACED = {NAME_LABEL, "app.kubernetes.io/component"}  # the monitor's identity labels (its NetworkPolicy)
DEADLINE_S = 900


class JobError(ValueError):
    """The CronJob cannot serve as the template (the message says what is missing)."""


def _config_of(command: list[str]) -> str:
    """The ``--config`` value of the monitor's command."""
    for i, arg in enumerate(command):
        if arg == "--config" and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    raise JobError(f"the monitor's command {command} names no --config settings file")


def promote_job(cronjob: dict[str, Any], name: str, version: str, environment: str = "") -> dict[str, Any]:
    """The Job (a dict) promoting ``version``, built from the live monitor ``cronjob``.

    ``environment`` (the overlay's name), when not ``dev``, must not be served by the dev
    overlay's settings file (``config/cluster.toml`` names the ctloop-dev services).

    Raises:
        JobError: ``version`` is not a number, the CronJob lacks the container or settings, or
            its settings are the dev overlay's while promoting elsewhere.
    """
    if not re.fullmatch(r"[0-9]+", version):
        raise JobError(f"version must be a registry version number, got {version!r}")
    template = copy.deepcopy(cronjob.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template"))
    if not template or not template.get("spec", {}).get("containers"):
        raise JobError("the CronJob has no job template with a container")
    pod = template["spec"]
    container = pod["containers"][0]
    config = _config_of(list(container.get("command") or []) + list(container.get("args") or []))
    if environment not in {"", "dev"} and config.endswith("/cluster.toml"):
        raise JobError(
            f"the {environment} monitor reads {config}, the dev overlay's settings (ctloop-dev services): "
            f"give the {environment} overlay its own settings file (e.g. /app/config/{environment}.toml)"
        )
    container["name"] = "promote"
    container["command"] = [
        "/bin/sh",
        "-c",
        'ctloop promote "$MODEL_VERSION" --config "$CTLOOP_CONFIG" && ctloop deploy --config "$CTLOOP_CONFIG"',
    ]
    container.pop("args", None)
    env = [e for e in container.get("env") or [] if e.get("name") not in {"MODEL_VERSION", "CTLOOP_CONFIG"}]
    container["env"] = [*env, {"name": "MODEL_VERSION", "value": version}, {"name": "CTLOOP_CONFIG", "value": config}]
    labels = {NAME_LABEL: "ctloop-promote", "app.kubernetes.io/component": "promotion", PIPELINE_LABEL: "true"}
    template.setdefault("metadata", {})["labels"] = {
        **{
            k: v for k, v in (template["metadata"].get("labels") or {}).items() if k not in labels and k not in REPLACED
        },
        **labels,
    }
    pod["serviceAccountName"] = SERVICE_ACCOUNT
    pod["automountServiceAccountToken"] = True  # the deploy applies the SeldonDeployment through the API
    pod["restartPolicy"] = "Never"
    namespace = cronjob.get("metadata", {}).get("namespace")
    metadata: dict[str, Any] = {"name": name, "labels": {k: v for k, v in labels.items() if k != PIPELINE_LABEL}}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": DEADLINE_S,
            "ttlSecondsAfterFinished": 3600,
            "template": template,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: the CronJob (JSON) on stdin, the Job (JSON) on stdout; exit 1 with one error line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the Job's name")
    parser.add_argument("--version", required=True, help="the registry version to promote")
    parser.add_argument("--environment", default="", help="the overlay's name (dev, staging, prod)")
    args = parser.parse_args(argv)
    try:
        job = promote_job(json.load(sys.stdin), args.name, args.version, args.environment)
        print(json.dumps(job, indent=2))
    except (JobError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
