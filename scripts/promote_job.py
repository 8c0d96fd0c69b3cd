"""A Kubernetes Job that promotes a registry version to ``champion`` and deploys it, inside the cluster.

MLflow and the SeldonDeployment are reachable only from inside the environment's namespace
(ClusterIP services, default-deny NetworkPolicies), so promotion runs there, as the pipeline's
own register/deploy step would: the Job is derived from the live ``monitor`` CronJob of that
namespace (same platform image and tag, settings -- the overlay's ConfigMap ``ctloop-settings``
mounted where ``CTLOOP_CONFIG`` points --, S3 credentials Secret with its kustomize hash suffix,
security context and resources), with three changes:

- the command: ``ctloop promote VERSION`` then ``ctloop deploy``, both reading the settings
  through ``CTLOOP_CONFIG`` (``ctloop promote`` moves the alias; ``ctloop deploy`` applies it to
  the SeldonDeployment);
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


def _check_settings(container: dict[str, Any]) -> None:
    """The monitor reads its settings through ``CTLOOP_CONFIG``, a path where a volume is mounted."""
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    path = env.get("CTLOOP_CONFIG")
    if not path:
        raise JobError("the monitor's container sets no CTLOOP_CONFIG (the environment's settings file)")
    if not any(m.get("mountPath") == path for m in container.get("volumeMounts") or []):
        raise JobError(f"the monitor's CTLOOP_CONFIG {path} is not a mounted file (the overlay's ctloop-settings)")


def promote_job(cronjob: dict[str, Any], name: str, version: str) -> dict[str, Any]:
    """The Job (a dict) promoting ``version``, built from the live monitor ``cronjob``.

    Raises:
        JobError: ``version`` is not a number, or the CronJob lacks the container or its
            mounted settings file.
    """
    if not re.fullmatch(r"[0-9]+", version):
        raise JobError(f"version must be a registry version number, got {version!r}")
    template = copy.deepcopy(cronjob.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template"))
    if not template or not template.get("spec", {}).get("containers"):
        raise JobError("the CronJob has no job template with a container")
    pod = template["spec"]
    container = pod["containers"][0]
    _check_settings(container)  # the Job keeps the container's env and mounts: the same settings
    container["name"] = "promote"
    container["command"] = [
        "/bin/sh",
        "-c",
        'ctloop promote "$MODEL_VERSION" && ctloop deploy',
    ]
    container.pop("args", None)
    env = [e for e in container.get("env") or [] if e.get("name") != "MODEL_VERSION"]
    container["env"] = [*env, {"name": "MODEL_VERSION", "value": version}]
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
    args = parser.parse_args(argv)
    try:
        job = promote_job(json.load(sys.stdin), args.name, args.version)
        print(json.dumps(job, indent=2))
    except (JobError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
