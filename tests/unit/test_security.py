"""`make security`: bandit with the project's skips, the secret scan against its audited baseline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BANDIT = Path(sys.executable).parent / "bandit"
TOOLS = ROOT / ".venv-tools" / "bin"
SCAN = [sys.executable, str(ROOT / "scripts" / "secret_scan.py"), "--hook", str(TOOLS / "detect-secrets-hook")]
# a made-up AWS access key in AWS's documented format, split so this file holds no candidate itself
FAKE_KEY = "AKIA" + "Q3EGRP5K7ZLW2XNM"
GIT = shutil.which("git") or "git"


def bandit(*targets: str) -> subprocess.CompletedProcess[str]:
    args = [str(BANDIT), "-c", str(ROOT / "pyproject.toml"), "-q", "-f", "custom", "--msg-template", "{test_id}"]
    return subprocess.run([*args, "-r", *targets], capture_output=True, text=True, check=False, cwd=ROOT)


def test_bandit_passes_on_our_code():
    """The project's code has no bandit finding beyond the justified skips and inline nosec lines."""
    out = bandit("src/ctloop", "serving", "components", "pipelines", "scripts", "feature_repo", "reliability")
    assert out.returncode == 0, out.stdout + out.stderr


def test_bandit_still_flags_what_the_skips_do_not_cover(tmp_path):
    """A shell=True call, a bare assert and pickle loading fail the scan: the skips are narrow."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport subprocess\n\n\n"
        "def run(name: str, blob: bytes) -> object:\n"
        "    assert name\n"
        "    subprocess.run('ls ' + name, shell=True)\n"
        "    return pickle.loads(blob)\n"
    )
    out = bandit(str(tmp_path))
    assert out.returncode == 1
    assert {"B101", "B602", "B301"} <= set(out.stdout.split()), out.stdout


def git_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([GIT, "init", "-q", str(repo)], check=True)
    for name, text in files.items():
        (repo / name).write_text(text)
    subprocess.run([GIT, "add", *files], cwd=repo, check=True)
    return repo


def write_baseline(repo: Path, *, audited: bool) -> None:
    """What a developer does: scan, then label every candidate (here all: false positives)."""
    scan = subprocess.run([str(TOOLS / "detect-secrets"), "scan"], cwd=repo, capture_output=True, text=True, check=True)
    baseline = json.loads(scan.stdout)
    for entries in baseline["results"].values():
        for entry in entries:
            if audited:
                entry["is_secret"] = False
    (repo / ".secrets.baseline").write_text(json.dumps(baseline, indent=2))


def scan(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCAN, "--root", str(repo)], capture_output=True, text=True, check=False)


def test_secret_scan_passes_an_audited_baseline_and_fails_on_a_new_secret(tmp_path):
    """Audited candidates pass; a key committed later fails, naming the file; the baseline is left as it was."""
    repo = git_repo(tmp_path, {"settings.toml": 'db_password = "correct-horse-battery-staple"\n'})
    write_baseline(repo, audited=True)
    baseline = (repo / ".secrets.baseline").read_text()
    assert "settings.toml" in baseline  # the keyword was a candidate, audited as a false positive
    ok = scan(repo)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    (repo / "deploy.py").write_text(f'ACCESS_KEY_ID = "{FAKE_KEY}"\n')
    subprocess.run([GIT, "add", "deploy.py"], cwd=repo, check=True)
    new = scan(repo)
    assert new.returncode == 1
    assert "deploy.py:1: potential secret (AWS Access Key)" in new.stdout, new.stdout
    assert (repo / ".secrets.baseline").read_text() == baseline


def test_secret_scan_fails_on_an_unaudited_baseline_entry(tmp_path):
    """A candidate in the baseline that nobody labelled a false positive is not accepted."""
    repo = git_repo(tmp_path, {"settings.toml": 'db_password = "correct-horse-battery-staple"\n'})
    write_baseline(repo, audited=False)
    out = scan(repo)
    assert out.returncode == 1
    assert "settings.toml:1 Secret Keyword: in .secrets.baseline but not audited" in out.stdout, out.stdout


def test_the_repository_baseline_is_fully_audited():
    """Every entry of the committed .secrets.baseline is labelled a false positive."""
    results = json.loads((ROOT / ".secrets.baseline").read_text())["results"]
    entries = [e for es in results.values() for e in es]
    assert entries and all(e.get("is_secret") is False for e in entries)
