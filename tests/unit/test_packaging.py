"""The wheel users install: only the ctloop package, dependencies that cover what it imports, a license."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from this checkout by its build backend (hatchling, as the platform image builds it)."""
    out = tmp_path_factory.mktemp("dist")
    code = f"import hatchling.build as b; print(b.build_wheel({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return zipfile.ZipFile(out / done.stdout.strip().splitlines()[-1])


def metadata(wheel: zipfile.ZipFile):
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode())


def requirements(wheel: zipfile.ZipFile) -> set[str]:
    """Names the wheel requires whatever extras are asked for."""
    found = set()
    for line in metadata(wheel).get_all("Requires-Dist") or []:
        if "extra ==" not in line:
            found.add(canonical(re.match(r"[A-Za-z0-9._-]+", line).group(0)))
    return found


def imported_modules() -> dict[str, str]:
    """Every top-level module src/ctloop imports (other than itself and the standard library), with one importer."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "ctloop").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "ctloop" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_the_wheel_installs_only_ctloop(wheel):
    """Top-level entries: the ctloop package and its dist-info, nothing named components, pipelines or tests."""
    tops = {name.split("/")[0] for name in wheel.namelist()}
    (info,) = [t for t in tops if t.endswith(".dist-info")]
    assert tops == {"ctloop", info}
    assert "ctloop/components/train.py" in wheel.namelist() and "ctloop/cli/shell.py" in wheel.namelist()


def test_declared_dependencies_cover_every_import_of_the_platform_code(wheel):
    """Each third-party module src/ctloop imports comes from a distribution the wheel requires by name."""
    declared = requirements(wheel)
    providers = packages_distributions()
    missing = {}
    for module, where in imported_modules().items():
        dists = {canonical(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported by {where}) is not installed: declare it and run make lock"
        if not dists & declared:
            missing[module] = f"{where}: one of {sorted(dists)}"
    assert not missing, f"imported but not in [project] dependencies: {missing}"


def test_declared_dependencies_are_locked_for_the_platform(wheel):
    """Every runtime requirement has a hashed pin in requirements/platform.txt (`make lock` ran after the change)."""
    lock = (ROOT / "requirements" / "platform.txt").read_text()
    pinned = {canonical(m) for m in re.findall(r"^([A-Za-z0-9._-]+)==", lock, re.MULTILINE)}
    assert requirements(wheel) <= pinned, requirements(wheel) - pinned
    assert "--hash=sha256:" in lock


def test_license_version_and_changelog_agree(wheel):
    """The wheel carries the Apache-2.0 text; its version is pyproject's and has a CHANGELOG entry."""
    meta = metadata(wheel)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert meta["Version"] == version and meta["License-Expression"] == "Apache-2.0"
    (license_file,) = [n for n in wheel.namelist() if n.endswith("licenses/LICENSE")]
    assert "Apache License" in wheel.read(license_file).decode() and "Version 2.0" in wheel.read(license_file).decode()
    assert f"## [{version}] - " in (ROOT / "CHANGELOG.md").read_text()
