"""The house's import contracts hold, and each one fails on a copy broken on purpose.

`make check` runs import-linter over ``[tool.importlinter]`` in ``pyproject.toml``. Here the
packages are copied, one import that a contract forbids is added, and ``lint-imports`` must
report exactly that contract broken; on the untouched copy every contract is kept. The contract
floor is also checked to import only the standard library (what the serving image can hold).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT = str(Path(sys.executable).parent / "lint-imports")
BREAKS = {
    "floors": ("src/ctloop/core/gate.py", "from ctloop.app import deploy"),
    "no-cycles": ("src/ctloop/app/deploy.py", "from ctloop.app import stack"),
    "entry-points-on-top": ("src/ctloop/app/deploy.py", "import ctloop.pipelines.local"),
    "core-is-pure": ("src/ctloop/core/gate.py", "import redis"),
    "serving-is-apart": ("serving/errors.py", "import pandas"),
    "mlflow-in-registry": ("src/ctloop/app/deploy.py", "import mlflow"),
    "feast-in-featurestore": ("src/ctloop/app/replay.py", "import feast"),
    "kubernetes-in-kube": ("src/ctloop/adapters/registry.py", "import kubernetes"),
}
"""One forbidden import per contract id: (file, line appended to it)."""


@pytest.fixture
def house(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts."""
    for folder in ("src/ctloop", "serving"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the copy (its packages first on the path)."""
    args = [LINT, "--no-cache", *(arg for c in contracts for arg in ("--contract", c))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_the_untouched_house_keeps_every_contract(house):
    """The copy as it is: every contract kept (the contracts are not vacuous about the real tree)."""
    done = lint(house)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"Contracts: {len(BREAKS)} kept, 0 broken." in done.stdout


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_each_contract_fails_on_a_broken_copy(house, contract):
    """One forbidden import added: that contract is reported broken and the command fails."""
    path, line = BREAKS[contract]
    target = house / path
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = lint(house, contract)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "BROKEN" in done.stdout and "0 kept, 1 broken" in done.stdout


def test_the_contract_floor_imports_only_the_standard_library():
    """Every import in ctloop.contract is of the standard library or of ctloop.contract itself."""
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted((ROOT / "src" / "ctloop" / "contract").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or name.startswith("ctloop.contract"), f"{path.name} imports {name}"


def test_the_serving_image_copies_the_whole_contract_floor():
    """The serving Dockerfile copies the package, not hand-picked files of it."""
    text = (ROOT / "images" / "serving" / "Dockerfile").read_text()
    assert "COPY src/ctloop/contract src/ctloop/contract" in text
    assert "src/ctloop/contract/" not in text.replace("COPY src/ctloop/contract src/ctloop/contract", "")
