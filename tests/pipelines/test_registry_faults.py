"""MLflow unreachable during register: the step fails with one clear line; a rerun registers exactly one version.

A real ``mlflow server`` (``reliability/registry_outage.py``) on a free loopback port, over a
SQLite store and an artifacts folder that survive its restarts; the registry talks to it over
HTTP (``[registry] tracking_uri``). The server is SIGKILLed as the pipeline's register task
starts, or from the registry's own log record between two MLflow calls: never by timing.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from ctloop.adapters.registry import CHALLENGER, HTTP_LIMITS, Registry, RegistryError
from ctloop.app import pipeline_steps
from reliability import registry_outage
from tests.cli.test_cli import ctloop
from tests.conftest import END, START, make_settings

pytestmark = pytest.mark.slow
RUNS_LEFT = {"run_started": 2, "run_logged": 2, "version_created": 1}
"""MLflow runs after the rerun: the failed attempt's (when it got as far as a run without a version) and the rerun's."""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One MLflow server for the module; tests kill and restart it on the same port and store."""
    server = registry_outage.MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def remote(tmp_path_factory, redis_server, server):
    """Settings whose registry is the server, over HTTP; a gate any real model passes."""
    base = make_settings(tmp_path_factory.mktemp("faults-data"), redis_server.port)
    return base.replace(
        registry=replace(base.registry, tracking_uri=server.uri),
        gate=replace(base.gate, min_auc=0.55, min_log_loss_skill=0.0, min_brier_skill=0.0),
    )


@pytest.fixture(scope="module")
def outage(remote, server):
    """The training pipeline under kfp.local, the server SIGKILLed as its register task starts."""
    return registry_outage.pipeline_with_outage_at(remote, server, START, END, task="register")


@pytest.fixture(scope="module")
def inputs(outage):
    """The failed register task's inputs: model folder, evaluation document, lineage (same run, same data hash)."""
    assert outage.job_dir is not None
    return registry_outage.register_inputs(outage.job_dir, START, END)


@pytest.fixture
def down(server):
    """The server is not running."""
    server.kill()
    return server


@pytest.fixture
def up(server):
    """The server is running (restarted on the same store if a test killed it)."""
    if not server.running:
        server.start()
    return server


def test_register_step_fails_in_seconds_with_one_line_naming_the_uri(outage, server):
    """Every task up to register ran against the live server; register fails with a RegistryError line naming it."""
    error = outage.error
    assert error is not None, "the pipeline run did not fail"
    assert error.task == "register"
    assert error.detail.startswith(f"RegistryError: MLflow at {server.uri} is unreachable (Connection refused;")
    assert "\n" not in error.detail
    # the task process starts (imports) and gives up after 2 retries; MLflow's defaults retry ~4 minutes
    assert outage.failed_s_after_kill < 30


def test_the_failed_run_registered_nothing(outage, up, remote):
    """After the restart the registry holds no version: the failed step left nothing half-registered."""
    assert outage.error is not None
    assert Registry(remote).versions() == []


@pytest.mark.parametrize(
    ("operator_retries", "shown"),
    [(None, HTTP_LIMITS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]), ("0", "0")],
    ids=["bounded", "operator-set"],
)
def test_register_with_the_server_down_fails_within_seconds(inputs, down, remote, monkeypatch, operator_retries, shown):
    """The register step raises RegistryError within 5 s; a retry count the operator set wins; env restored after."""
    if operator_retries is None:
        for key in HTTP_LIMITS:
            monkeypatch.delenv(key, raising=False)
    else:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", operator_retries)
    before = {key: os.environ.get(key) for key in HTTP_LIMITS}
    began = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        pipeline_steps.register(remote, *inputs, promote=False)
    took = time.monotonic() - began
    message = str(caught.value)
    assert message.startswith(
        f"MLflow at {down.uri} is unreachable (Connection refused; gave up after {shown} retries)"
    ), message
    assert "\n" not in message
    assert took < 5.0, f"{took:.1f} s"
    assert {key: os.environ.get(key) for key in HTTP_LIMITS} == before  # the process's other MLflow users keep theirs


def test_cli_shows_an_unreachable_registry_as_one_error_line(down, tmp_path):
    """`ctloop models` against a server that is down: exit 1, one `error:` line naming the URI, in seconds."""
    config = tmp_path / "config" / "local.toml"
    config.parent.mkdir()
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n\n[registry]\ntracking_uri = "{down.uri}"\n')
    began = time.monotonic()
    done = ctloop("models", "--config", str(config))
    took = time.monotonic() - began
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: MLflow at {down.uri} is unreachable (Connection refused;"), lines[0]
    assert "no versions" not in done.stdout  # an unreachable registry is not an empty one
    assert took < 20.0, f"{took:.1f} s"


@pytest.mark.parametrize("point", list(registry_outage.KILL_POINTS))
def test_a_rerun_after_an_outage_mid_register_registers_exactly_one_version(inputs, up, remote, point):
    """Server killed at `point`: one error line; restarted, the same register makes one version, a third returns it."""
    model_dir, document, lineage = inputs
    result = registry_outage.register_through_outage(remote, up, point, model_dir, document, lineage)
    assert result.error.startswith(f"MLflow at {up.uri} is unreachable ("), result.error
    assert "\n" not in result.error
    assert result.error_s_after_kill < 8.0  # at most two calls' bounded retries (a failed run is also ended)
    assert result.versions == ["1"]
    assert result.rerun_version == result.third_version == "1"
    assert result.runs == RUNS_LEFT[point]
    registry = Registry(registry_outage.settings_for_point(remote, point))
    version = registry.get("1")
    assert CHALLENGER in version.aliases
    assert {k: version.tags[k] for k in lineage} == lineage
