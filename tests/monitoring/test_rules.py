"""The PrometheusRule is generated from the monitor's settings and passes `promtool test rules`.

Three kinds of proof that the alerts and ``ctloop monitor`` judge alike: the committed rule file is
what ``ctloop.app.alert_rules`` writes from ``[monitor]`` (every environment's settings file
gives the same file); hand-written promtool cases for each alert; and real flights (an unchanged
week of the fit days and each injected shift, ``tests/drift_scenarios.py``) fed as the same
bucket counts to the monitor and to promtool, which must agree on every feature's PSI above its
normal and on which features the drift alert names.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.app import alert_rules
from ctloop.config import MonitorSettings, Settings
from ctloop.contract import buckets
from ctloop.core.monitor import Policy, State, decide, drift
from tests.conftest import END, EVAL_DAYS, promtool
from tests.drift_scenarios import SCENARIOS, Reference, Scenario, reference_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RULES = ROOT / alert_rules.RULE_FILE
HOURS = 170
"""Series length: a 7-day window plus the alerts' hour of ``for`` and one evaluation."""
LABELS = 'namespace="ctloop-dev",pod="flight-delay-0",model_version="1"'
NOW = datetime(2013, 3, 16)


def run_rule_tests(groups: list[Any], folder: Path, tests: str | dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of a test file (one of ours by name, or a generated one) against these rule groups."""
    (folder / "ctloop_rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    if isinstance(tests, str):
        shutil.copyfile(HERE / tests, folder / "tests.yaml")
    else:
        (folder / "tests.yaml").write_text(yaml.safe_dump(tests, width=4096))
    args = [promtool(), "test", "rules", "tests.yaml"]
    return subprocess.run(args, cwd=folder, capture_output=True, text=True, check=False)


def committed_groups() -> list[Any]:
    return list(yaml.safe_load(RULES.read_text())["spec"]["groups"])


@pytest.mark.parametrize("settings_file", sorted((ROOT / "config").glob("*.toml")), ids=lambda p: p.name)
def test_the_committed_rules_are_generated_from_every_environments_settings(settings_file):
    """The rule file is what `make rules` writes from [monitor]: edit the settings, not the rules."""
    monitor = Settings.load(settings_file, ROOT).monitor
    assert alert_rules.render(monitor) == RULES.read_text(), "run `make rules` and commit the result"


def test_the_rules_carry_the_monitors_thresholds_window_and_ignored_features():
    """Another policy gives other rules: threshold, window, minimum traffic and ignored features all reach them."""
    policy = MonitorSettings(
        window="3d", max_feature_psi_above_normal=0.4, min_rows=5000, drift_ignore=("sched_month",)
    )
    alerts = {
        r["alert"]: r["expr"]
        for g in alert_rules.prometheus_rule(policy)["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert 'ctloop:feature_psi_above_normal:3d{feature!~"sched_month"} > 0.4' in alerts["CtloopFeatureDrift"]
    assert "ctloop:predictions:3d >= 5000" in alerts["CtloopFeatureDrift"]
    two = alert_rules.prometheus_rule(replace(policy, min_drifted_features=2))["spec"]["groups"][-1]["rules"][0]["expr"]
    assert ">= 2" in two and "count by (namespace, model_version)" in two


@pytest.mark.parametrize("tests", ["ctloop_rules_test.yaml", "ctloop_model_quality_test.yaml"])
def test_alert_rules_unit_tests_pass(tmp_path, tests):
    """Each alert fires on its input series and stays quiet on the control series."""
    out = run_rule_tests(committed_groups(), tmp_path, tests)
    assert out.returncode == 0, out.stdout + out.stderr


def _series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def _promql_round(value: float) -> float:
    """PromQL's ``round(v, 0.001)``."""
    return math.floor(value * 1000.0 + 0.5) / 1000.0


def scenario_case(reference: Reference, scenario: Scenario, policy: Policy) -> dict[str, Any]:
    """A promtool test group for one scenario; its expectations are what the monitor computes.

    The scenario's week as hourly counter increments, the model's reference shares and normals
    as gauges.
    """
    counts = reference.counts(scenario.change(reference.week()))
    series = [_series("ctloop_predictions_total", LABELS, f"0+{counts.rows():.0f}x{HOURS}")]
    profile = reference.profile
    for feature, found in counts.features.items():
        for bucket, n in found.items():
            labels = f'{LABELS},feature="{feature}",bucket="{bucket}"'
            series.append(_series("ctloop_feature_bucket_total", labels, f"0+{n:.0f}x{HOURS}"))
    for feature, shares in profile["features"].items():
        for bucket, share in shares.items():
            labels = f'{LABELS},feature="{feature}",bucket="{bucket}"'
            series.append(_series("ctloop_feature_reference_share", labels, f"{share!r}x{HOURS}"))
    for feature, normal in profile[buckets.NORMAL]["features"].items():
        series.append(_series("ctloop_feature_normal_psi", f'{LABELS},feature="{feature}"', f"{normal!r}x{HOURS}"))
    window = drift(counts, profile)
    named = decide(NOW, "1", None, window, None, policy, State()).numbers["drifted_features"]
    short = 'namespace="ctloop-dev",model_version="1"'
    above = [
        {"labels": f'{{{short},feature="{f}"}}', "value": _promql_round(v)} for f, v in window.above_normal().items()
    ]
    alerts = [
        {
            "labels": f'{{__name__="ALERTS",alertname="CtloopFeatureDrift",alertstate="firing",{short},'
            f'feature="{f}",severity="warning"}}',
            "value": 1,
        }
        for f in named
    ]
    return {
        "name": f"real flights, {scenario.name}: the monitor names {named or 'nothing'}",
        "interval": "1h",
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": "round(ctloop:feature_psi_above_normal:7d, 0.001)",
                "eval_time": f"{HOURS}h",
                "exp_samples": above,
            },
            {
                "expr": 'ALERTS{alertname="CtloopFeatureDrift",alertstate="firing"}',
                "eval_time": f"{HOURS}h",
                "exp_samples": alerts,
            },
        ],
    }


def scenario_tests(training_set: Any, policy: Policy) -> tuple[dict[str, Any], list[set[str]]]:
    """The promtool test file of every scenario, and the features each alert case expects."""
    reference = reference_of(training_set, END, EVAL_DAYS)
    cases = [scenario_case(reference, scenario, policy) for scenario in SCENARIOS]
    named = [
        {sample["labels"].split('feature="')[1].split('"')[0] for sample in case["promql_expr_test"][1]["exp_samples"]}
        for case in cases
    ]
    order = [group["name"] for group in committed_groups()]  # records before the alerts that read them
    document = {"rule_files": ["ctloop_rules.yaml"], "evaluation_interval": "1h", "group_eval_order": order}
    return {**document, "tests": cases}, named


def test_real_flights_the_alerts_fire_where_the_monitor_does_naming_each_feature(training_set, tmp_path):
    """Unchanged week: no alert; each injected shift: an alert per feature the monitor names.

    Weather, distances and hours, a carrier's mix, a broken feature; promtool's PSI above normal
    equals the monitor's for every feature.
    """
    document, named = scenario_tests(training_set, Policy())
    assert named == [set(s.fires) for s in SCENARIOS]
    out = run_rule_tests(committed_groups(), tmp_path, document)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_a_broken_threshold_fails_the_unit_tests(training_set, tmp_path):
    """Rules generated with the drift threshold out of reach fail the weather case (the tests can fail)."""
    document, _ = scenario_tests(training_set, Policy())
    document["tests"] = [case for case in document["tests"] if case["name"].startswith("real flights, weather")]
    groups = alert_rules.prometheus_rule(MonitorSettings(max_feature_psi_above_normal=25.0))["spec"]["groups"]
    out = run_rule_tests(groups, tmp_path, document)
    assert out.returncode != 0 and "CtloopFeatureDrift" in out.stdout + out.stderr


def test_serving_exports_every_series_the_rules_read():
    """Each ``ctloop_`` metric a rule reads is one serving defines (counters read as ``_total``, histograms by part)."""
    exported = set(re.findall(r'"(ctloop_[a-z_]+)"', (ROOT / "serving" / "metrics.py").read_text()))
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    known = {f"{name}{suffix}" for name in exported for suffix in suffixes}
    read = {
        name
        for group in committed_groups()
        for rule in group["rules"]
        for name in re.findall(r"\b(ctloop_[a-z_]+)", rule["expr"])
    }
    assert {"ctloop_feature_normal_psi", "ctloop_prediction_normal_psi", "ctloop_feature_reference_share"} <= read
    assert read <= known, read - known
