"""Secret scan of the tracked files against the audited baseline (`make secrets`, part of `make check`).

detect-secrets finds candidate secrets (keywords, high-entropy strings, known token formats);
``.secrets.baseline`` lists the candidates a person has audited as false positives (``is_secret:
false``: secret *names* in manifests, fixed test values). This fails when

- a tracked file holds a candidate the baseline does not list (a new secret, or a new false
  positive to audit: ``detect-secrets scan --baseline .secrets.baseline`` adds it, then
  ``detect-secrets audit .secrets.baseline`` labels it), or
- the baseline holds an entry not audited as a false positive (unaudited, or a real secret).

It runs detect-secrets' own pre-commit comparison (``detect-secrets-hook``, which reads the plugin
and filter settings from the baseline) on a temporary copy of the baseline: the hook rewrites the
baseline it is given when only line numbers moved, and a check must not edit the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

NEW_SECRETS = 1  # detect-secrets-hook's exit codes: 0 clean, 1 new secrets, 3 baseline line numbers updated
BASELINE_UPDATED = 3


def tracked_files(root: Path, baseline: Path) -> list[str]:
    """Every file git tracks under ``root`` that exists in the work tree, but the baseline itself."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)  # noqa: S607
    names = [n for n in out.stdout.decode().split("\0") if n]
    skip = baseline.resolve()
    return [n for n in names if (root / n).is_file() and (root / n).resolve() != skip]


def new_candidates(hook: Path, root: Path, baseline: Path, files: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Candidates in ``files`` that the baseline does not list, by file (detect-secrets' own comparison)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "baseline.json"
        shutil.copyfile(baseline, copy)
        args = [str(hook), "--baseline", str(copy), "--json", *files]
        out = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    if out.returncode in (0, BASELINE_UPDATED):
        return {}
    if out.returncode != NEW_SECRETS:
        raise SystemExit(f"error: detect-secrets-hook failed ({out.returncode}): {(out.stderr or out.stdout)[-500:]}")
    results: dict[str, list[dict[str, Any]]] = json.loads(out.stdout)["results"]
    return results


def unaudited(baseline: Path) -> list[str]:
    """Baseline entries not labelled as false positives, as ``file:line type``."""
    results: dict[str, list[dict[str, Any]]] = json.loads(baseline.read_text())["results"]
    return [
        f"{name}:{entry.get('line_number')} {entry.get('type')}"
        for name, entries in results.items()
        for entry in entries
        if entry.get("is_secret") is not False
    ]


def main(argv: list[str] | None = None) -> int:
    """Scan, compare, print what is wrong; exit 1 on a new candidate or an unaudited entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hook", type=Path, required=True, help="the detect-secrets-hook executable")
    parser.add_argument("--root", type=Path, default=Path())
    parser.add_argument("--baseline", type=Path, default=Path(".secrets.baseline"))
    args = parser.parse_args(argv)
    root: Path = args.root
    baseline = root / args.baseline
    if not baseline.is_file():
        print(f"error: no baseline {baseline}: create it with `detect-secrets scan > {args.baseline}`", file=sys.stderr)
        return 1
    files = tracked_files(root, baseline)
    found = new_candidates(args.hook, root, baseline, files)
    failed = False
    for name, entries in sorted(found.items()):
        for entry in entries:
            failed = True
            print(f"{name}:{entry.get('line_number')}: potential secret ({entry.get('type')}) not in {args.baseline}")
    if failed:
        print(
            "A real secret must leave the repository (and be rotated). A false positive: add it with "
            f"`detect-secrets scan --baseline {args.baseline}`, label it with `detect-secrets audit {args.baseline}`, "
            "or mark the line `# pragma: allowlist secret`.",
            file=sys.stderr,
        )
    for entry_text in unaudited(baseline):
        failed = True
        print(f"{entry_text}: in {args.baseline} but not audited as a false positive (is_secret must be false)")
    if not failed:
        print(f"secrets: {len(files)} tracked files, no candidate outside the audited baseline")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
