"""The data-scientist guide's worked examples run as written.

Every ``diff`` block of docs/data-scientist-guide.md is applied, in order, to a copy of the code
(``src/``, ``feature_repo/``, ``config/``) with ``git apply``; every ``python`` block then runs, in
order and in one process, inside that copy: the pipeline's real ingest, Feast offline tables and
point-in-time retrieval on six weeks of 2013. A guide step that no longer applies, or no longer
does what the guide says, fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctloop.core import evaluate, features

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "data-scientist-guide.md"
GIT = shutil.which("git") or "git"
FENCE = re.compile(r"^```(diff|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)

# What the guide's examples add, and what the test checks once its blocks have run.
CHECKS = """
import json, pathlib
from dataclasses import replace
from datetime import date

import ctloop
from ctloop.core import train as core_train

assert pathlib.Path(ctloop.__file__).resolve().is_relative_to(pathlib.Path.cwd().resolve()), ctloop.__file__
column = training_set.frame["wind_dir"]
bundle, _ = core_train.train(training_set, date.fromisoformat(end), replace(settings.train, max_iter=20))
print("CHECKS " + json.dumps({
    "feature_names": training_set.feature_names,
    "rows": len(column),
    "present": float(column.notna().mean()),
    "in_range": bool(column.dropna().between(0, 360).all()),
    "layout": training_set.layout,
    "model_features": bundle.feature_names,
    "reference_quantiles": sorted(bundle.metadata["reference_quantiles"]),
    "slice_kinds": sorted(kinds),
    "route_slices": len(kinds["route"]),
}))
"""


def guide_blocks(kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(GUIDE.read_text()) if lang == kind]


def test_the_guide_has_its_examples():
    """Two diffs (a feature, a slice) and two Python blocks; each adds what the code lacks today."""
    assert len(guide_blocks("diff")) == 2 and len(guide_blocks("python")) == 2
    assert "wind_dir" not in features.WEATHER_FEATURES
    assert "route" not in evaluate.SLICE_COLUMNS


@pytest.mark.slow
def test_the_guides_feature_reaches_the_training_set_the_model_and_its_slices(tmp_path):
    """After the guide's diffs, its Python blocks give `wind_dir` in the training set and model, and route slices."""
    work = tmp_path / "copy"
    for folder in ("src", "feature_repo", "config"):
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for i, diff in enumerate(guide_blocks("diff")):
        patch = tmp_path / f"guide-{i}.diff"
        patch.write_text(diff)
        applied = subprocess.run([GIT, "apply", str(patch)], cwd=work, capture_output=True, text=True, check=False)
        assert applied.returncode == 0, f"the guide's diff {i + 1} does not apply: {applied.stderr}"
    program = "\n".join([*guide_blocks("python"), CHECKS])
    env = {**os.environ, "PYTHONPATH": str(work / "src"), "PYTHONWARNINGS": "ignore"}
    run = subprocess.run(
        [sys.executable, "-c", program], cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("CHECKS "))
    got = json.loads(line.removeprefix("CHECKS "))
    assert "wind_dir" in got["feature_names"]
    assert "wind_dir" in got["layout"]["views"]["origin_weather"]["features"]
    assert got["rows"] > 10_000 and got["present"] > 0.9 and got["in_range"]
    assert got["model_features"] == got["feature_names"]
    assert "wind_dir" in got["reference_quantiles"]  # drift monitoring covers it with no other change
    assert got["slice_kinds"] == ["carrier", "origin", "route", "time_of_day"] and got["route_slices"] > 50
    assert "wind_dir" in run.stdout  # what the guide tells the reader to look at is printed
