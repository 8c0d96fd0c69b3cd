"""The PrometheusRule's groups pass `promtool test rules` (drift, delayed-label performance, errors, latency)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import promtool

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "manifests" / "base" / "monitoring" / "ctloop-prometheusrule.yaml"


def run_rule_tests(groups: list, folder: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of our test file against these rule groups."""
    (folder / "ctloop_rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copyfile(HERE / "ctloop_rules_test.yaml", folder / "ctloop_rules_test.yaml")
    args = [promtool(), "test", "rules", "ctloop_rules_test.yaml"]
    return subprocess.run(args, cwd=folder, capture_output=True, text=True, check=False)


def test_alert_rules_unit_tests_pass(tmp_path):
    """Each alert fires on its input series and stays quiet on the control series."""
    out = run_rule_tests(yaml.safe_load(RULES.read_text())["spec"]["groups"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_broken_threshold_fails_the_unit_tests(tmp_path):
    """Raising the drift threshold out of reach makes the drift test fail (the tests can fail)."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "CtloopFeatureDrift":
                rule["expr"] = rule["expr"].replace("> 0.25", "> 25")
    out = run_rule_tests(document["spec"]["groups"], tmp_path)
    assert out.returncode != 0 and "CtloopFeatureDrift" in out.stdout + out.stderr
