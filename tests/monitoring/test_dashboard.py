"""The Grafana dashboard charts only series that exist: serving's metrics and the PrometheusRule's records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

MONITORING = Path(__file__).resolve().parents[2] / "manifests" / "base" / "monitoring"


def test_every_panel_queries_a_known_series():
    """Each metric in a panel is a recording rule of the PrometheusRule or a ctloop_ metric serving exports."""
    dashboard = json.loads((MONITORING / "ctloop-dashboard.json").read_text())
    rules = yaml.safe_load((MONITORING / "ctloop-prometheusrule.yaml").read_text())["spec"]["groups"]
    recorded = {r["record"] for g in rules for r in g["rules"] if "record" in r}
    exported = set(re.findall(r'"(ctloop_[a-z_]+)"', (MONITORING.parents[2] / "serving" / "metrics.py").read_text()))
    known = recorded | {f"{m}_total" for m in exported} | exported
    assert len(dashboard["panels"]) >= 8
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"\b(ctloop[:_][a-z0-9_:]+)", target["expr"]))
            assert names and names <= known, (panel["title"], names - known)
