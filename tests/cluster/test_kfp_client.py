"""What the KFP adapter sends through the real kfp.Client: upload by SHA (idempotent), run, schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.adapters.kfp_client import Kfp, KfpError

PIPELINE = "flight-delay-training"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def kfp_server(recorder):
    """The recording server answering the KFP v2beta1 calls the adapter makes (one pipeline p1, version v1 = SHA)."""
    state = {"pipelines": [], "versions": [], "recurring": [], "created": 0}

    def named(items, seen):
        wanted = json.loads(seen.query.get("filter", '{"predicates": []}'))["predicates"]
        names = {p["stringValue"] for p in wanted if p["key"] == "display_name"}
        return [i for i in items if not names or i["display_name"] in names]

    recorder.on("GET", "/apis/v2beta1/healthz", lambda _: (200, {"multi_user": False}))
    recorder.on("GET", "/apis/v2beta1/pipelines", lambda s: (200, {"pipelines": named(state["pipelines"], s)}))

    def create_pipeline(seen):
        state["pipelines"].append({"pipeline_id": "p1", "display_name": seen.query["name"]})
        return 200, state["pipelines"][-1]

    def create_version(seen):
        state["versions"].append({"pipeline_id": "p1", "pipeline_version_id": "v1", "display_name": seen.query["name"]})
        return 200, state["versions"][-1]

    recorder.on("POST", "/apis/v2beta1/pipelines/upload", create_pipeline)
    recorder.on("POST", "/apis/v2beta1/pipelines/upload_version", create_version)
    recorder.on(
        "GET",
        "/apis/v2beta1/pipelines/p1/versions",
        lambda s: (200, {"pipeline_versions": named(state["versions"], s)}),
    )
    recorder.on(
        "GET",
        "/apis/v2beta1/experiments",
        lambda _: (200, {"experiments": [{"experiment_id": "e1", "display_name": "ctloop"}]}),
    )
    recorder.on("POST", "/apis/v2beta1/runs", lambda s: (200, {"run_id": "r1", "display_name": s.body["display_name"]}))

    def create_recurring(seen):
        state["created"] += 1
        run = {**seen.body, "recurring_run_id": f"rr{state['created']}"}
        state["recurring"].append(run)
        return 200, run

    def delete_recurring(seen):
        state["recurring"] = [r for r in state["recurring"] if not seen.path.endswith(r["recurring_run_id"])]
        return 200, {}

    recorder.on("GET", "/apis/v2beta1/recurringruns", lambda s: (200, {"recurringRuns": named(state["recurring"], s)}))
    recorder.on("POST", "/apis/v2beta1/recurringruns", create_recurring)
    recorder.on("DELETE", "/apis/v2beta1/recurringruns/", delete_recurring)
    return recorder


@pytest.fixture
def package(tmp_path) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text("pipelineInfo: {name: flight-delay-training}\n")
    return path


def posted(recorder, path):
    return [r for r in recorder.requests if r.method == "POST" and r.path == path]


def test_upload_creates_the_pipeline_then_the_version_named_by_the_sha(kfp_server, package):
    """First upload: pipeline created, then a version named by the SHA (multipart, the package inside)."""
    done = Kfp(kfp_server.url).upload(package, PIPELINE, SHA)
    assert done.created and (done.pipeline_id, done.version_id, done.version_name) == ("p1", "v1", SHA)
    (version,) = posted(kfp_server, "/apis/v2beta1/pipelines/upload_version")
    assert version.query == {"name": SHA, "pipelineid": "p1"}
    assert version.headers["Content-Type"].startswith("multipart/form-data")
    assert "pipelineInfo" in version.body


def test_uploading_the_same_sha_again_is_a_no_op(kfp_server, package):
    """A second upload of the same SHA finds the version and uploads nothing."""
    Kfp(kfp_server.url).upload(package, PIPELINE, SHA)
    before = len(kfp_server.requests)
    again = Kfp(kfp_server.url).upload(package, PIPELINE, SHA)
    assert not again.created and again.version_id == "v1"
    assert not [r for r in kfp_server.requests[before:] if r.method == "POST"]


def test_run_names_the_version_and_passes_parameters(kfp_server, package):
    """A run references the pipeline version by id, in the experiment, with the parameters given."""
    client = Kfp(kfp_server.url)
    client.upload(package, PIPELINE, SHA)
    run_id = client.run(PIPELINE, SHA, "ctloop", "train-2013-q1", {"start": "2013-01-01", "end": "2013-03-31"})
    (run,) = posted(kfp_server, "/apis/v2beta1/runs")
    assert run_id == "r1" and run.body["display_name"] == "train-2013-q1"
    assert run.body["pipeline_version_reference"] == {"pipeline_id": "p1", "pipeline_version_id": "v1"}
    assert run.body["runtime_config"]["parameters"] == {"start": "2013-01-01", "end": "2013-03-31"}
    assert run.body["experiment_id"] == "e1"


def test_schedule_is_created_kept_then_replaced(kfp_server, package):
    """Same version and cron: kept; a new cron: the old recurring run deleted, a new one created."""
    client = Kfp(kfp_server.url)
    client.upload(package, PIPELINE, SHA)
    first, changed = client.schedule(PIPELINE, SHA, "ctloop", "nightly", "0 0 3 * * *", {})
    assert changed and first == "rr1"
    (created,) = posted(kfp_server, "/apis/v2beta1/recurringruns")
    assert created.body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert int(created.body["max_concurrency"]) == 1 and created.body["no_catchup"] is True
    assert client.schedule(PIPELINE, SHA, "ctloop", "nightly", "0 0 3 * * *", {}) == ("rr1", False)
    second, changed = client.schedule(PIPELINE, SHA, "ctloop", "nightly", "0 30 4 * * *", {})
    assert changed and second == "rr2"
    assert [r.path for r in kfp_server.requests if r.method == "DELETE"] == ["/apis/v2beta1/recurringruns/rr1"]


def test_unknown_version_and_missing_package_are_clear_errors(kfp_server, package, tmp_path):
    """Running a SHA that was never uploaded, or uploading a file that is not there: KfpError saying what to do."""
    client = Kfp(kfp_server.url)
    with pytest.raises(KfpError, match="pipeline upload"):
        client.run(PIPELINE, SHA, "ctloop", "r", {})
    with pytest.raises(KfpError, match="compile it first"):
        client.upload(tmp_path / "missing.yaml", PIPELINE, SHA)


def test_cli_upload_compiles_for_the_sha_and_is_idempotent(kfp_server):
    """`ctloop pipeline upload` compiles for the platform image of the SHA and uploads; again: says it is there."""
    from typer.testing import CliRunner

    from ctloop.cli import app

    runner = CliRunner()
    args = ["pipeline", "upload", "--host", kfp_server.url, "--pipeline-version", SHA]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "uploaded" in first.output and "already" not in first.output
    (version,) = posted(kfp_server, "/apis/v2beta1/pipelines/upload_version")
    assert f"ghcr.io/ctloop/platform:{SHA}" in version.body  # the package names the image of this SHA
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "already uploaded" in " ".join(second.output.split())


def test_run_latest_starts_the_newest_version_sorted_by_creation(kfp_server, package):
    """The monitor's retrain asks for versions newest first and runs the first, with its parameters."""
    client = Kfp(kfp_server.url)
    client.upload(package, PIPELINE, SHA)
    assert client.run_latest(PIPELINE, "ctloop", "ct-run", {"start": "2013-04-01", "as_of": "2013-07-01"}) == "r1"
    listing = [r for r in kfp_server.requests if r.path == "/apis/v2beta1/pipelines/p1/versions"][-1]
    assert listing.query["sort_by"] == "created_at desc" and listing.query["page_size"] == "1"
    (run,) = posted(kfp_server, "/apis/v2beta1/runs")
    assert run.body["pipeline_version_reference"]["pipeline_version_id"] == "v1"
    assert run.body["runtime_config"]["parameters"]["as_of"] == "2013-07-01"
