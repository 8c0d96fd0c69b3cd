"""`make reliability`: MLflow unreachable during register, measured (key `registry_outage` in bench/results).

`make test` runs the same scenarios with their assertions in tests/pipelines/test_registry_faults.py;
this file runs them once more against a server of its own and records what they took.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ctloop.adapters.registry import HTTP_LIMITS, RegistryError
from ctloop.app import pipeline_steps
from reliability import load, registry_outage
from tests.conftest import END, START, make_settings

pytestmark = pytest.mark.slow
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "reliability.json"


def test_registry_outage_figures(tmp_path, redis_server, capsys):
    """Register fails in seconds with the server down or killed mid-register; every rerun registers one version."""
    server = registry_outage.MlflowServer(tmp_path / "mlflow-server")
    server.start()
    try:
        base = make_settings(tmp_path / "data", redis_server.port)
        settings = base.replace(
            registry=replace(base.registry, tracking_uri=server.uri),
            gate=replace(base.gate, min_auc=0.55, min_log_loss_skill=0.0, min_brier_skill=0.0),
        )
        outage = registry_outage.pipeline_with_outage_at(settings, server, START, END, task="register")
        assert outage.error is not None and outage.error.task == "register" and outage.job_dir is not None
        inputs = registry_outage.register_inputs(outage.job_dir, START, END)
        began = time.monotonic()
        with pytest.raises(RegistryError, match="is unreachable"):
            pipeline_steps.register(settings, *inputs, promote=False)
        down_s = time.monotonic() - began
        points = {
            point: registry_outage.register_through_outage(settings, server, point, *inputs)
            for point in registry_outage.KILL_POINTS
        }
    finally:
        server.kill()
    for result in points.values():
        assert result.versions == [result.rerun_version] == [result.third_version] == ["1"], result
    figures = {
        "http_limits": HTTP_LIMITS,
        "pipeline_register_failed_s_after_kill": round(outage.failed_s_after_kill, 1),
        "pipeline_error": outage.error.detail,
        "register_with_server_down_failed_s": round(down_s, 2),
        "kill_points": {
            point: {
                "failed_s_after_kill": round(result.error_s_after_kill, 2),
                "versions_after_rerun_and_third_call": len(result.versions),
                "third_call_same_version": result.third_version == result.rerun_version,
                "runs_left": result.runs,
            }
            for point, result in points.items()
        },
        "server_start_s_median": round(statistics.median(server.starts), 1),
        "server_starts": len(server.starts),
    }
    load.write(RESULTS, "registry_outage", figures)
    with capsys.disabled():
        kills = ", ".join(f"{p} {r.error_s_after_kill:.1f} s" for p, r in points.items())
        print(
            f"\nMLflow outage during register: pipeline step failed {outage.failed_s_after_kill:.1f} s after the kill, "
            f"register with the server down {down_s:.2f} s, killed mid-register ({kills}); "
            f"every rerun registered 1 version and a third call returned it"
        )
