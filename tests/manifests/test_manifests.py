"""`make validate` on the real manifests and images passes, and on deliberately broken copies fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import promtool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".venv-tools" / "bin" / "kubectl"
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
HADOLINT = Path(sys.executable).parent / "hadolint"
OVERLAYS = sorted(p.name for p in (ROOT / "manifests" / "overlays").iterdir() if p.is_dir())


def validate(manifests: Path, *overlays: str, config: Path = ROOT / "config") -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(ROOT / "manifests" / "validate.py"), "--manifests", str(manifests)]
    args += ["--config", str(config)]
    args += ["--kubectl", str(KUBECTL), "--checkov", str(CHECKOV), "--promtool", promtool(), *overlays]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def render(overlay: str, tmp_path: Path) -> list[dict]:
    copy = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", copy, ignore=shutil.ignore_patterns("*.env"))
    for example in copy.rglob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(copy / "overlays" / overlay)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_every_overlay_validates():
    """Each overlay renders and passes kubernetes-validate, the CRD schemas, checkov and promtool."""
    out = validate(ROOT / "manifests")
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(f"overlay {name}: ok" in out.stdout for name in OVERLAYS)


def _broken(tmp_path: Path, change) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(ROOT / "manifests", copy, ignore=shutil.ignore_patterns("*.env"))
    change(copy)
    return copy


def _edit(path: Path, edit) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        edit(doc)
    path.write_text(yaml.safe_dump_all(docs))


def _first(base: Path, kind: str) -> Path:
    for path in sorted(base.rglob("*.yaml")):
        if "schemas" in path.parts or path.name == "kustomization.yaml":
            continue
        if any(d and d.get("kind") == kind for d in yaml.safe_load_all(path.read_text())):
            return path
    raise AssertionError(f"no {kind} under {base}")


def test_an_unknown_field_fails(tmp_path):
    """A typo in a Deployment (an unknown field) fails kubernetes-validate --strict."""

    def typo(copy: Path) -> None:
        _edit(_first(copy / "base", "Deployment"), lambda d: d["spec"].__setitem__("replica", 2))

    out = validate(_broken(tmp_path, typo), "dev")
    assert out.returncode == 1 and "replica" in out.stdout, out.stdout


def test_a_container_without_limits_or_non_root_fails(tmp_path):
    """Dropping a container's securityContext and resources fails checkov."""

    def loosen(copy: Path) -> None:
        def strip(doc: dict) -> None:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container.pop("securityContext", None)
                container.pop("resources", None)

        _edit(_first(copy / "base", "Deployment"), strip)

    out = validate(_broken(tmp_path, loosen), "dev")
    assert out.returncode == 1 and "checkov" in out.stdout, out.stdout


def test_a_broken_seldondeployment_fails_its_crd_schema(tmp_path):
    """A SeldonDeployment whose traffic share is not a number fails the CRD schema."""

    def breaks(copy: Path) -> None:
        _edit(
            _first(copy / "base", "SeldonDeployment"),
            lambda d: d["spec"]["predictors"][0].__setitem__("traffic", "all"),
        )

    out = validate(_broken(tmp_path, breaks), "dev")
    assert out.returncode == 1 and "SeldonDeployment/flight-delay: spec/predictors/0/traffic" in out.stdout, out.stdout


def test_a_bad_alert_rule_fails_promtool(tmp_path):
    """A PrometheusRule with an unparseable expression fails promtool check rules."""

    def breaks(copy: Path) -> None:
        def bad(doc: dict) -> None:
            doc["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(ctloop_http_requests_total[5m]"

        _edit(_first(copy / "base", "PrometheusRule"), bad)

    out = validate(_broken(tmp_path, breaks), "dev")
    assert out.returncode == 1 and "promtool" in out.stdout, out.stdout


def test_overlays_set_tags_replicas_and_the_canary(tmp_path):
    """Tags and replicas come from the overlays: dev `dev`, staging a SHA; prod splits 90/10 to a challenger."""
    images = {
        overlay: {c["image"] for d in render(overlay, tmp_path / overlay) for c in _containers(d)}
        for overlay in OVERLAYS
    }
    assert any(i.startswith("ghcr.io/ctloop/serving:dev") for i in images["dev"])
    assert all(":" in i.rsplit("/", 1)[-1] for overlay in OVERLAYS for i in images[overlay])
    prod = next(d for d in render("prod", tmp_path / "p") if d["kind"] == "SeldonDeployment")
    assert sorted(p["traffic"] for p in prod["spec"]["predictors"]) == [10, 90]


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc["kind"] == "SeldonDeployment":
        return [c for p in spec["predictors"] for cs in p.get("componentSpecs", []) for c in cs["spec"]["containers"]]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template", {}).get("spec", {})
    return template.get("containers", []) + template.get("initContainers", [])


def test_images_pass_hadolint_and_a_broken_dockerfile_does_not(tmp_path):
    """Hadolint accepts both Dockerfiles; an unpinned pip install and root user fail it."""
    files = [str(p) for p in sorted((ROOT / "images").glob("*/Dockerfile"))]
    assert len(files) == 2
    ok = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", *files], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:3.12-slim\nRUN pip install requests\nUSER root\n")
    bad = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", str(broken)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and "DL3013" in bad.stdout


def _settings_readers(docs: list[dict]) -> list[tuple[dict, dict]]:
    """(pod spec, container) of every container whose command is ``ctloop ...``."""
    readers = []
    for doc in docs:
        if doc["kind"] not in {"CronJob", "Deployment", "StatefulSet", "Job"}:
            continue
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        pod = spec["template"]["spec"]
        readers += [(pod, c) for c in pod["containers"] if c.get("command", [""])[0] == "ctloop"]
    return readers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_mounts_its_own_settings_where_ctloop_config_points(tmp_path, overlay):
    """Every pod running ctloop reads CTLOOP_CONFIG, the file mounted from a ConfigMap holding config/<overlay>.toml."""
    docs = render(overlay, tmp_path)
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    readers = _settings_readers(docs)
    assert sorted(c["name"] for _, c in readers) == ["materialize", "monitor"]
    source = (ROOT / "config" / f"{overlay}.toml").read_text()
    for pod, container in readers:
        assert not any(arg.startswith("--config") for arg in container["command"] + container.get("args", []))
        path = {e["name"]: e.get("value") for e in container["env"]}["CTLOOP_CONFIG"]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == path)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        settings_map = maps[volume["configMap"]["name"]]
        assert settings_map["metadata"]["name"].startswith("ctloop-settings-")  # the generator's content hash
        assert settings_map["data"][mount["subPath"]] == source
        assert tomllib.loads(source)["deploy"]["namespace"] == settings_map["metadata"]["namespace"]
        assert Path(path).parent.name == "config"  # the settings' root is the folder above: the image's /app


def _break_settings(copy: Path, how: str) -> None:
    """Break the dev overlay's settings channel in one way."""
    overlay = copy / "overlays" / "dev"
    if how == "stale copy":
        settings = overlay / "settings.toml"
        settings.write_text(settings.read_text().replace("ctloop-dev.svc", "ctloop-old.svc"))
    elif how == "no generator":
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        del kustomization["configMapGenerator"]
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    else:

        def edit(doc: dict) -> None:
            container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            if how == "command line":
                container["env"] = [e for e in container["env"] if e["name"] != "CTLOOP_CONFIG"]
                container["command"] += ["--config", "/app/config/dev.toml"]
            else:  # "unmounted path"
                next(e for e in container["env"] if e["name"] == "CTLOOP_CONFIG")["value"] = "/app/config/dev.toml"

        _edit(copy / "base" / "monitor" / "monitor-cronjob.yaml", edit)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("stale copy", "ConfigMap/ctloop-settings-"),
        ("no generator", "no ConfigMap ctloop-settings"),
        ("command line", "CronJob/monitor container monitor: no CTLOOP_CONFIG"),
        ("unmounted path", "CTLOOP_CONFIG /app/config/dev.toml is not the settings.toml"),
    ],
)
def test_a_broken_settings_channel_fails(tmp_path, how, message):
    """A stale overlay copy, no ConfigMap, --config instead of CTLOOP_CONFIG, or an unmounted path fails validation."""
    out = validate(_broken(tmp_path, lambda copy: _break_settings(copy, how)), "dev")
    assert out.returncode == 1 and message in out.stdout, out.stdout
    if how == "stale copy":
        assert "differs from dev.toml (run `make overlay-settings`)" in out.stdout
    if how == "command line":
        assert "names a settings file on its command line" in out.stdout


def test_an_overlay_running_another_environments_settings_fails(tmp_path):
    """The prod overlay carrying dev's settings (ctloop-dev services), even as config/prod.toml, fails."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "prod.toml").write_text((ROOT / "config" / "dev.toml").read_text())

    def swap(copy: Path) -> None:
        shutil.copyfile(config / "prod.toml", copy / "overlays" / "prod" / "settings.toml")

    out = validate(_broken(tmp_path, swap), "prod", config=config)
    assert out.returncode == 1, out.stdout
    assert "[deploy] namespace is 'ctloop-dev', the overlay's is 'ctloop-prod'" in out.stdout
