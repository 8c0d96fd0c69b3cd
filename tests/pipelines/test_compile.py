"""Both pipelines compile to KFP IR YAML for a cluster: the platform image, no run-time installs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctloop.pipelines.local import FEATURE_TASKS, TASKS
from tests.conftest import ROOT

CTLOOP = str(Path(sys.executable).parent / "ctloop")


PIPELINES = {"training": TASKS, "features": FEATURE_TASKS}


def compile_ir(folder: Path, *args: str) -> dict:
    """``ctloop pipeline compile`` with ``args``; the IR's first document."""
    out = folder / "pipeline.yaml"
    done = subprocess.run(
        [CTLOOP, "pipeline", "compile", "--output", str(out), "--image-tag", "abc123", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return next(yaml.safe_load_all(out.read_text()))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    return compile_ir(tmp_path_factory.mktemp("ir"))


@pytest.fixture(scope="module")
def features_ir(tmp_path_factory):
    return compile_ir(tmp_path_factory.mktemp("ir-features"), "--pipeline", "features")


def test_ir_has_every_task_and_the_gate_condition(compiled):
    """All seven steps are in the DAG, none materializes, and `register` sits under the gate's `blessed` condition."""
    root = compiled["root"]["dag"]["tasks"]
    tasks = set(root)
    assert {"ingest", "validate", "training-set", "tune", "train", "evaluate", "gate"} <= tasks
    assert not any("materialize" in name for name in tasks)  # the training pipeline only reads features
    condition = next(t for name, t in root.items() if name.startswith("condition"))
    assert "blessed" in condition["triggerPolicy"]["condition"]
    inner = compiled["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert "register" in inner
    assert len(tasks) + len(inner) - 1 == len(TASKS)
    assert compiled["pipelineInfo"]["name"] == "flight-delay-training"


def test_the_feature_pipeline_runs_its_five_steps_in_order(features_ir):
    """flight-features: ingest → validate → compute → append → materialize, each fed by the one before."""
    assert features_ir["pipelineInfo"]["name"] == "flight-features"
    tasks = features_ir["root"]["dag"]["tasks"]
    assert set(tasks) == set(FEATURE_TASKS)
    upstream = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    assert upstream["validate-days"] == {"ingest-days"}
    assert {"ingest-days", "validate-days"} <= upstream["compute-features"]
    assert upstream["append-offline"] == {"ingest-days", "compute-features"}
    assert upstream["materialize-online"] == {"ingest-days", "append-offline"}
    # the days every later step takes are the ones ingest checked (or took from the schedule time)
    days = tasks["compute-features"]["inputs"]["parameters"]["days"]["taskOutputParameter"]
    assert days == {"outputParameterKey": "days", "producerTask": "ingest-days"}
    scheduled = tasks["ingest-days"]["inputs"]["parameters"]["scheduled_at"]["runtimeValue"]["constant"]
    assert scheduled == "{{$.pipeline_job_schedule_time_utc}}"
    for name in ("ingest-days", "append-offline", "materialize-online"):
        assert tasks[name]["cachingOptions"] == {}, name  # reads or writes the stores: never cached
    assert set(features_ir["root"]["inputDefinitions"]["parameters"]) == {"settings_json", "days"}


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_every_executor_runs_the_platform_image_and_installs_nothing(pipeline, tmp_path):
    """Each container is the platform image tagged as asked, with no pip install at run time."""
    ir = compile_ir(tmp_path, "--pipeline", pipeline)
    executors = ir["deploymentSpec"]["executors"]
    assert len(executors) == len(PIPELINES[pipeline])
    for name, spec in executors.items():
        container = spec["container"]
        assert container["image"] == "ghcr.io/ctloop/platform:abc123", name
        command = " ".join(container["command"] + container.get("args", []))
        assert "pip install" not in command and "packages_to_install" not in command, name


def test_caching_is_off_where_a_step_reads_or_writes_outside_state(compiled):
    """Ingest, the training set (it reads the offline store), evaluate and register never reuse a cached result."""
    tasks = compiled["root"]["dag"]["tasks"]
    for name in ("ingest", "training-set", "evaluate"):
        assert tasks[name]["cachingOptions"] == {}, name  # KFP writes {} for enable_cache=False
    assert tasks["validate"]["cachingOptions"] == {"enableCache": True}


def test_compile_defaults_to_the_git_sha(tmp_path):
    """Without --image-tag the image tag is the checkout's commit."""
    out = tmp_path / "p.yaml"
    done = subprocess.run(
        [CTLOOP, "pipeline", "compile", "--output", str(out)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as the CLI finds it
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    images = {e["container"]["image"] for e in yaml.safe_load(out.read_text())["deploymentSpec"]["executors"].values()}
    assert images == {f"ghcr.io/ctloop/platform:{sha or 'unknown'}"}


@pytest.mark.parametrize("kind", sorted(PIPELINES))
def test_cluster_compile_gives_tasks_the_object_store_and_its_secret(tmp_path, kind):
    """With config/dev.toml every task gets the MinIO endpoint and the credentials Secret as env."""
    out = tmp_path / "pipeline.yaml"
    args = [CTLOOP, "pipeline", "compile", "--output", str(out), "--image-tag", "abc123", "--pipeline", kind]
    done = subprocess.run([*args, "--config", "config/dev.toml"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    documents = list(yaml.safe_load_all(out.read_text()))
    pipeline, platform = documents[0], documents[1]
    for name, spec in pipeline["deploymentSpec"]["executors"].items():
        env = {e["name"]: e["value"] for e in spec["container"].get("env", [])}
        assert env["AWS_ENDPOINT_URL"] == "http://minio.ctloop-dev.svc.cluster.local:9000", name
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(secrets) == len(PIPELINES[kind])
    for spec in secrets.values():
        (secret,) = spec["secretAsEnv"]
        assert {k["envVar"] for k in secret["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    defaults = pipeline["root"]["inputDefinitions"]["parameters"]["settings_json"]["defaultValue"]
    assert "mlflow.ctloop-dev.svc.cluster.local" in defaults


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "config").glob("*.toml")))
def test_compiled_pipeline_holds_no_path_of_the_compiling_machine(tmp_path, config, pipeline):
    """Compiled with any settings file, the IR names no folder of this machine: a pod resolves its own.

    The checkout, the home folder and the Python environment compiling it would not exist in a
    pod; the settings travel without a root and resolve against the image's working directory.
    """
    out = tmp_path / "p.yaml"
    args = ["--output", str(out), "--image-tag", "t", "--config", f"config/{config}", "--pipeline", pipeline]
    done = subprocess.run(
        [CTLOOP, "pipeline", "compile", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    for folder in {ROOT.resolve(), Path.home(), Path(sys.prefix), Path(sys.base_prefix), Path.cwd()}:
        assert str(folder) not in text, f"{config}: the IR holds {folder}"
    defaults = next(yaml.safe_load_all(text))["root"]["inputDefinitions"]["parameters"]
    settings = json.loads(defaults["settings_json"]["defaultValue"])
    assert "root" not in settings


def test_settings_reach_the_run_through_one_parameter(compiled):
    """The run's parameters: the settings once, the window and the run's own facts; nothing restated."""
    parameters = set(compiled["root"]["inputDefinitions"]["parameters"])
    assert parameters == {"settings_json", "start", "end", "as_of", "promote", "git_sha", "pipeline_version"}


def test_the_model_lineage_takes_the_partitions_the_training_set_read(compiled):
    """The register step gets the training set's output (partitions read and their hash) as its lineage input."""
    condition = next(t for name, t in compiled["root"]["dag"]["tasks"].items() if name.startswith("condition"))
    register = compiled["components"][condition["componentRef"]["name"]]["dag"]["tasks"]["register"]
    lineage = register["inputs"]["parameters"]["feature_lineage"]
    assert lineage == {"componentInputParameter": "pipelinechannel--training-set-Output"}


def test_an_unknown_pipeline_is_refused_with_the_choices(tmp_path):
    """--pipeline names one of the two; anything else is one error line naming them."""
    done = subprocess.run(
        [CTLOOP, "pipeline", "compile", "--output", str(tmp_path / "p.yaml"), "--pipeline", "serving"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "--pipeline must be one of training, features" in done.stderr
    assert "Traceback" not in done.stderr
