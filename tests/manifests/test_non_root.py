"""Nothing runs as root: both images end with a numeric non-root USER, every rendered container runs non-root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.manifests.test_manifests import OVERLAYS, ROOT, render

pytestmark = pytest.mark.slow
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
# the workload kinds the overlays render, and where each keeps its pod specs
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "SeldonDeployment"}
USER = re.compile(r"^USER\s+(\S+)\s*$", re.MULTILINE)


def final_user(dockerfile: Path) -> tuple[int, int]:
    """The last ``USER uid:gid`` of the Dockerfile (its final stage's), as numbers."""
    users = USER.findall(dockerfile.read_text())
    assert users, f"{dockerfile}: no USER: the image would run as root"
    last = users[-1]
    assert re.fullmatch(r"\d+:\d+", last), f"{dockerfile}: USER {last} is not numeric uid:gid (runAsNonRoot needs it)"
    uid, gid = (int(part) for part in last.split(":"))
    return uid, gid


def last_instructions(dockerfile: Path) -> list[str]:
    """The instructions of the final stage, in order (comments and continuations dropped)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    final = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return [line.split()[0].upper() for line in lines[final:]]


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs of a workload document."""
    spec = doc["spec"]
    if doc["kind"] == "SeldonDeployment":
        return [c["spec"] for p in spec["predictors"] for c in p.get("componentSpecs", [])]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return [spec["template"]["spec"]]


def effective(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The container's security settings after Kubernetes merges the pod's defaults under them."""
    return {**pod.get("securityContext", {}), **container.get("securityContext", {})}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[p.parent.name for p in DOCKERFILES])
def test_images_end_as_a_numeric_non_root_user(dockerfile):
    """The final stage switches to a numeric uid:gid other than 0 and no later instruction switches back."""
    uid, gid = final_user(dockerfile)
    assert uid > 0 and gid > 0
    steps = last_instructions(dockerfile)
    assert "USER" in steps, f"{dockerfile}: the final stage never sets USER"
    assert "RUN" not in steps[steps.index("USER") :], "commands after USER would run as that user: keep USER last"


def test_both_images_are_checked():
    """The platform and serving images are the two Dockerfiles."""
    assert [p.parent.name for p in DOCKERFILES] == ["platform", "serving"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_of_an_overlay_runs_as_non_root(overlay, tmp_path):
    """runAsNonRoot, a non-zero uid, no privilege escalation, all capabilities dropped, in every container."""
    docs = render(overlay, tmp_path)
    checked = 0
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            assert "template" not in doc.get("spec", {}), f"{doc['kind']} has a pod template the test does not know"
            continue
        for pod in pod_specs(doc):
            for container in pod.get("initContainers", []) + pod["containers"]:
                where = f"{overlay} {doc['kind']}/{doc['metadata']['name']} container {container['name']}"
                context = effective(pod, container)
                assert context.get("runAsNonRoot") is True, where
                assert context.get("runAsUser", 0) > 0, f"{where}: runAsUser must be a non-zero uid"
                assert context.get("allowPrivilegeEscalation") is False, where
                assert context.get("privileged", False) is False, where
                assert "ALL" in context.get("capabilities", {}).get("drop", []), where
                checked += 1
    assert checked >= 9, f"{overlay}: only {checked} containers found"


def test_our_images_run_as_the_uid_their_pods_declare(tmp_path):
    """The serving pods run as the serving image's USER, the platform CronJobs as the platform image's."""
    images = {p.parent.name: final_user(p)[0] for p in DOCKERFILES}
    uids: dict[str, set[int]] = {"platform": set(), "serving": set()}
    for doc in render("prod", tmp_path):
        if doc["kind"] not in WORKLOADS:
            continue
        for pod in pod_specs(doc):
            for container in pod["containers"]:
                for name, seen in uids.items():
                    if container["image"].startswith(f"ghcr.io/ctloop/{name}"):
                        seen.add(effective(pod, container)["runAsUser"])
    assert uids == {name: {uid} for name, uid in images.items()}
