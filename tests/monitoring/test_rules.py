"""The PrometheusRule's groups pass `promtool test rules` (drift, delayed-label performance, errors, latency)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "manifests" / "base" / "monitoring" / "ctloop-prometheusrule.yaml"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool missing: `make setup` installs Debian's prometheus"
    return found


def test_alert_rules_unit_tests_pass(tmp_path):
    """Each alert fires on its input series and stays quiet on the control series."""
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    (tmp_path / "ctloop_rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copyfile(HERE / "ctloop_rules_test.yaml", tmp_path / "ctloop_rules_test.yaml")
    out = subprocess.run(
        [promtool(), "test", "rules", "ctloop_rules_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_broken_threshold_fails_the_unit_tests(tmp_path):
    """Raising the drift threshold out of reach makes the drift test fail (the tests can fail)."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "CtloopFeatureDrift":
                rule["expr"] = rule["expr"].replace("> 0.25", "> 25")
    (tmp_path / "ctloop_rules.yaml").write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}))
    shutil.copyfile(HERE / "ctloop_rules_test.yaml", tmp_path / "ctloop_rules_test.yaml")
    out = subprocess.run(
        [promtool(), "test", "rules", "ctloop_rules_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0 and "CtloopFeatureDrift" in out.stdout + out.stderr
