"""``make validate``: render every overlay with a real kustomize and validate what comes out.

Per overlay, in a temporary copy of ``manifests/`` (each git-ignored ``*.env`` made from its
``*.env.example``, so no real secret is needed):

1. ``kubectl kustomize`` (kubectl v1.35, kustomize v5.7) renders it;
2. core kinds pass ``kubernetes-validate --strict`` (unknown fields are errors);
3. custom resources (SeldonDeployment, ServiceMonitor, PrometheusRule, ...) pass their CRD
   schemas in ``manifests/schemas/`` (``jsonschema``);
4. ``checkov`` finds no failed check (skips are annotated, with their reason, on the resource);
5. every PrometheusRule's groups pass ``promtool check rules``;
6. the environment's settings: the ConfigMap ``ctloop-settings`` holds ``config/<overlay>.toml``
   as it is (the overlay's ``settings.toml`` is a copy: ``make overlay-settings``), loads as
   ``ctloop.config.Settings`` and names the overlay's namespace; every container that runs
   ``ctloop`` reads it through ``CTLOOP_CONFIG``, the path where that ConfigMap is mounted.

Exit 0 when all pass; otherwise one line per problem and exit 1.

Usage: ``python manifests/validate.py --kubectl PATH --checkov PATH [--manifests DIR] [--config DIR] [OVERLAY ...]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
SETTINGS = "ctloop-settings"
"""The ConfigMap each overlay generates from its ``settings.toml`` (name before kustomize's hash suffix)."""
SETTINGS_KEY = "settings.toml"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
KUBERNETES_VERSION = "1.32.0"
SCHEMAS = {
    ("machinelearning.seldon.io/v1", "SeldonDeployment"): "seldondeployment-machinelearning.seldon.io-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
    ("kubeflow.org/v1beta1", "ScheduledWorkflow"): "scheduledworkflow-kubeflow.org-v1beta1.json",
}


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a validator; its output is kept for the report."""
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=cwd)


def prepare(manifests: Path, work: Path) -> Path:
    """A copy of the manifests with every ``*.env`` made from its ``*.env.example``."""
    copy = work / "manifests"
    shutil.copytree(manifests, copy, ignore=shutil.ignore_patterns("*.env", "__pycache__"))
    for example in copy.rglob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    return copy


def render(kubectl: str, overlay: Path) -> list[dict[str, Any]]:
    """The overlay's documents, rendered by kubectl's kustomize."""
    out = run([kubectl, "kustomize", str(overlay)])
    if out.returncode:
        raise ValueError(f"kustomize failed: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def name_of(doc: dict[str, Any]) -> str:
    """``Kind/name`` for messages."""
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def check_core(docs: list[dict[str, Any]], work: Path, kubernetes_validate: str) -> list[str]:
    """Core kinds against the Kubernetes API schemas, strictly."""
    files = []
    for i, doc in enumerate(docs):
        if (doc.get("apiVersion"), doc.get("kind")) in SCHEMAS:
            continue
        path = work / f"{i:03d}-{doc.get('kind')}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    out = run([kubernetes_validate, "--strict", "--quiet", "-k", KUBERNETES_VERSION, *files])
    if out.returncode == 0:
        return []
    return [line for line in (out.stdout + out.stderr).splitlines() if line.strip()] or ["kubernetes-validate failed"]


def check_custom(docs: list[dict[str, Any]]) -> list[str]:
    """Custom resources against their CRD schemas; an unknown custom kind is a problem too."""
    problems = []
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in SCHEMAS:
            continue
        schema = json.loads((HERE / "schemas" / SCHEMAS[key]).read_text())  # type: ignore[index]
        validator = jsonschema.Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{name_of(doc)}: {where}: {error.message[:200]}")
    return problems


def check_checkov(docs: list[dict[str, Any]], work: Path, checkov: str) -> list[str]:
    """Checkov's Kubernetes checks on the rendered overlay: no failed check."""
    rendered = work / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    out = run([checkov, "--skip-download", "--framework", "kubernetes", "-f", str(rendered), "--compact", "--quiet"])
    if out.returncode == 0:
        return []
    return [f"checkov: {line.strip()}" for line in out.stdout.splitlines() if "FAILED" in line or "Check:" in line] or [
        f"checkov failed: {out.stdout[-500:]}{out.stderr[-500:]}"
    ]


def check_rules(docs: list[dict[str, Any]], work: Path, promtool: str) -> list[str]:
    """Each PrometheusRule's groups through ``promtool check rules``."""
    problems = []
    for doc in docs:
        if doc.get("kind") != "PrometheusRule":
            continue
        rules = work / f"{doc['metadata']['name']}.rules.yaml"
        rules.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
        out = run([promtool, "check", "rules", str(rules)])
        if out.returncode:
            problems.append(f"{name_of(doc)}: promtool: {(out.stdout + out.stderr).strip()[-400:]}")
    return problems


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec", {})
    if doc.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod: dict[str, Any] = spec.get("template", {}).get("spec", {})
    return pod


def _settings_map(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The generated ``ctloop-settings-<hash>`` ConfigMap, if the overlay has exactly one."""
    maps = [
        d
        for d in docs
        if d.get("kind") == "ConfigMap" and d.get("metadata", {}).get("name", "").startswith(f"{SETTINGS}-")
    ]
    return maps[0] if len(maps) == 1 else None


def check_settings(docs: list[dict[str, Any]], overlay: str, config: Path) -> list[str]:
    """The overlay's settings are ``config/<overlay>.toml`` and every ``ctloop`` container reads them."""
    from ctloop.config import ConfigError, Settings  # the platform venv runs this script

    source = config / f"{overlay}.toml"
    settings_map = _settings_map(docs)
    if settings_map is None:
        return [f"no ConfigMap {SETTINGS} (a configMapGenerator of the overlay's {SETTINGS_KEY})"]
    text = settings_map.get("data", {}).get(SETTINGS_KEY)
    if text is None:
        return [f"{name_of(settings_map)}: no key {SETTINGS_KEY}"]
    problems = []
    if not source.is_file():
        problems.append(f"{source.name}: not found in {config} (the settings of overlay {overlay})")
    elif text != source.read_text():
        problems.append(f"{name_of(settings_map)}: differs from {source.name} (run `make overlay-settings`)")
    namespace = settings_map.get("metadata", {}).get("namespace")
    try:
        settings = Settings.from_mapping(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        problems.append(f"{name_of(settings_map)}: {exc}")
    else:
        if settings.deploy.namespace != namespace:
            problems.append(
                f"{name_of(settings_map)}: [deploy] namespace is {settings.deploy.namespace!r}, "
                f"the overlay's is {namespace!r}"
            )
    return problems + _settings_readers(docs, settings_map["metadata"]["name"])


def _settings_readers(docs: list[dict[str, Any]], map_name: str) -> list[str]:
    """Each container whose command is ``ctloop ...``: ``CTLOOP_CONFIG`` is the mounted settings file."""
    problems = []
    readers = 0
    for doc in docs:
        if doc.get("kind") not in WORKLOADS:
            continue
        pod = _pod_spec(doc)
        volumes = {v.get("name"): v for v in pod.get("volumes", []) if v.get("configMap", {}).get("name") == map_name}
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            command = list(container.get("command") or []) + list(container.get("args") or [])
            if not command or Path(command[0]).name != "ctloop":
                continue
            readers += 1
            where = f"{name_of(doc)} container {container.get('name')}"
            if any(arg in {"--config", "-c"} or arg.startswith("--config=") for arg in command):
                problems.append(f"{where}: names a settings file on its command line (use CTLOOP_CONFIG)")
            env = {e.get("name"): e.get("value") for e in container.get("env", [])}
            path = env.get("CTLOOP_CONFIG")
            mounts = [
                m
                for m in container.get("volumeMounts", [])
                if m.get("mountPath") == path and m.get("name") in volumes and m.get("subPath") == SETTINGS_KEY
            ]
            if not path:
                problems.append(f"{where}: no CTLOOP_CONFIG")
            elif not mounts:
                problems.append(f"{where}: CTLOOP_CONFIG {path} is not the {SETTINGS_KEY} of ConfigMap {map_name}")
    if not readers:
        problems.append("no container runs ctloop (expected the materialize and monitor CronJobs)")
    return problems


def validate(overlay: str, manifests: Path, tools: dict[str, str], config: Path) -> list[str]:
    """Every problem of one overlay (empty: it passes)."""
    with tempfile.TemporaryDirectory(prefix=f"ctloop-validate-{overlay}-") as tmp:
        work = Path(tmp)
        copy = prepare(manifests, work)
        try:
            docs = render(tools["kubectl"], copy / "overlays" / overlay)
        except ValueError as exc:
            return [str(exc)]
        problems = check_core(docs, work, tools["kubernetes_validate"])
        problems += check_custom(docs)
        problems += check_checkov(docs, work, tools["checkov"])
        problems += check_rules(docs, work, tools["promtool"])
        problems += check_settings(docs, overlay, config)
    return problems


def main() -> None:
    """Validate the overlays named (default: every overlay); print a line per problem."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overlays", nargs="*", help="overlay names (default: all under manifests/overlays)")
    parser.add_argument("--manifests", type=Path, default=HERE, help="the manifests folder to validate")
    parser.add_argument(
        "--config", type=Path, default=HERE.parent / "config", help="the folder of the environments' settings files"
    )
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--checkov", required=True)
    parser.add_argument("--kubernetes-validate", default=str(Path(sys.executable).parent / "kubernetes-validate"))
    parser.add_argument("--promtool", default=shutil.which("promtool") or str(Path(sys.executable).parent / "promtool"))
    args = parser.parse_args()
    tools = {
        "kubectl": args.kubectl,
        "checkov": args.checkov,
        "kubernetes_validate": args.kubernetes_validate,
        "promtool": args.promtool,
    }
    overlays = args.overlays or sorted(p.name for p in (args.manifests / "overlays").iterdir() if p.is_dir())
    failed = False
    for overlay in overlays:
        problems = validate(overlay, args.manifests.resolve(), tools, args.config.resolve())
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        sys.stdout.write(f"overlay {overlay}: {status}\n")
        for problem in problems:
            sys.stdout.write(f"  - {problem}\n")
        failed = failed or bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
