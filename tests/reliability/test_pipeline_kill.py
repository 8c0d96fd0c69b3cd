"""The training pipeline SIGKILLed during train: nothing survives it, a rerun completes and registers one version.

Runs in `make test` and in `make reliability` (which also writes the figures under
``pipeline_kill`` in bench/results/reliability.json).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from ctloop.adapters.registry import CHAMPION, Registry
from ctloop.app import feature_steps
from ctloop.pipelines import local
from reliability import load, pipeline_kill
from tests.conftest import END, START, make_settings
from tests.reliability.conftest import FULL

pytestmark = pytest.mark.slow
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "reliability.json"


def test_a_run_killed_during_train_leaves_nothing_and_a_rerun_registers_one_version(tmp_path, redis_server, capsys):
    """SIGKILL of the run and its task process during train; the rerun completes and registers exactly one version."""
    base = make_settings(tmp_path / "data", redis_server.port)
    settings = base.replace(gate=replace(base.gate, min_auc=0.55, min_log_loss_skill=0.0, min_brier_skill=0.0))
    feature_steps.run_in_process(settings, feature_steps.window_days(START, END), tmp_path / "features", online=False)
    killed = pipeline_kill.kill_during(settings, START, END, task="train", after_s=0.2)
    assert killed.tasks[-1] == "train" and "register" not in killed.tasks
    assert killed.survivors == []  # no orphaned task process goes on working (or registering) after the kill
    # what the killed processes could not remove (the warm-task zygote's socket folder among it) was in the
    # session's own temporary folder, removed since
    assert any(name.startswith("ctloop-warm-") for name in killed.left_behind), killed.left_behind
    registry = Registry(settings)
    assert registry.versions() == []  # the killed run registered nothing
    (job,) = (settings.data_dir / "kfp").iterdir()
    assert (job / "training-set" / "executor_output.json").exists()
    assert not (job / "train" / "executor_output.json").exists()  # killed while train ran
    began = time.monotonic()
    rerun = local.run(settings, START, END, git_sha="0" * 40)
    rerun_s = time.monotonic() - began
    assert rerun.tasks == list(local.TASKS)
    versions = registry.versions()
    assert [v.version for v in versions] == [rerun.output("register")] == ["1"]
    assert versions[0].tags["pipeline_run"] == rerun.job_name
    champion = registry.by_alias(CHAMPION)
    assert champion is not None and champion.version == "1"
    figures = {
        "killed_during": "train",
        "tasks_started_before_kill": killed.tasks,
        "killed_after_s": round(killed.seconds, 1),
        "processes_surviving_the_kill": len(killed.survivors),
        "versions_registered_by_the_killed_run": 0,
        "rerun_completed": True,
        "rerun_s": round(rerun_s, 1),
        "versions_registered_by_the_rerun": len(versions),
    }
    if FULL:
        load.write(RESULTS, "pipeline_kill", figures)
    with capsys.disabled():
        print(
            f"\npipeline killed during train after {figures['killed_after_s']} s "
            f"(tasks started: {', '.join(killed.tasks)}): {len(killed.survivors)} processes survived, "
            f"0 versions registered; rerun completed in {figures['rerun_s']} s and registered {len(versions)} version"
        )
