"""flight-features under kfp.local with real Feast and Redis: append, rerun, refuse.

A run appends each of its days as a partition of the offline store and loads it online; a rerun
replaces its own day and nothing else; every refusal names its rule and leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from ctloop.adapters import featurestore as fs
from ctloop.adapters import services
from ctloop.adapters.offline_store import OfflineStore
from ctloop.config import Settings
from ctloop.core import partitions
from ctloop.pipelines import local
from tests.conftest import ROOT, make_settings
from tests.features import raw_truth
from tests.online_store import online_features

pytestmark = pytest.mark.slow

DAYS = "2013-03-01..2013-03-03"


def store_state(settings) -> dict[str, object]:
    """The offline store as files: the manifest and each file's bytes hash and modification time."""
    root = Path(fs.offline_uri(settings))
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts)
    return {
        "manifest": json.loads((root / "_partitions.json").read_text()),
        "files": {
            str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files
        },
    }


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Iterator[Settings]:
    """A data dir (offline store, Feast registry, pipeline root) and a Redis of this module's own.

    The session's Redis holds later days (Feast's Redis store keeps the newest event per key).
    """
    port = services.free_port()
    with services.redis_running(port, tmp_path_factory.mktemp("features-redis")):
        yield make_settings(tmp_path_factory.mktemp("features-data"), port)


@pytest.fixture(scope="module")
def appended(settings):
    """One run of the pipeline over three days."""
    return local.run_features(settings, DAYS, git_sha="0" * 40)


def test_a_run_appends_each_day_as_a_partition_and_loads_it_online(appended, settings):
    """Three partitions per table, their manifest, each task's peak memory, and the online store fed."""
    assert appended.tasks == list(local.FEATURE_TASKS)
    assert set(appended.peak_mib) == set(local.FEATURE_TASKS) and all(v > 0 for v in appended.peak_mib.values())
    store = OfflineStore(fs.offline_uri(settings))
    assert [d.isoformat() for d in store.days()] == ["2013-03-01", "2013-03-02", "2013-03-03"]
    for table in partitions.PARTITIONED_TABLES:
        folders = sorted(p.name for p in (Path(store.root) / table).iterdir())
        assert folders == ["day=2013-03-01", "day=2013-03-02", "day=2013-03-03"], table
    meta = appended.artifact_metadata("append-offline", "appended")
    assert meta["days"] == DAYS and meta["reruns"] == ""
    # the last partition holds the rates of the day after it, stamped at its closing midnight: served online
    rates = store.read("carrier_delay", [partitions.parse_days("2013-03-03")[0]])
    assert set(rates["event_timestamp"].astype(str)) == {"2013-03-04 05:00:00+00:00"}
    ua = rates.loc[rates["carrier"] == "UA"].iloc[0]
    row = {"origin": "EWR", "carrier": "UA", "route": "EWR-ORD", "tailnum": "N14228"}
    online = online_features(
        fs.open_store(settings),
        settings.features.feature_service,
        [{**row, "sched_dep_local": "2013-03-04T08:00:00", "distance": 719.0}],
    )
    assert float(online.loc[0, "carrier_flights_28d"]) == float(ua["carrier_flights_28d"]) > 0


def test_a_rerun_replaces_its_day_and_nothing_else(appended, settings):
    """Rerunning 2013-03-02: its files are rewritten with the same bytes; every other file is untouched."""
    before = store_state(settings)
    rerun = local.run_features(settings, "2013-03-02", git_sha="0" * 40)
    after = store_state(settings)
    assert rerun.artifact_metadata("append-offline", "appended")["reruns"] == "2013-03-02"
    assert set(after["files"]) == set(before["files"])
    for name, (sha, mtime) in before["files"].items():
        if "day=2013-03-02" in name:
            assert after["files"][name][0] == sha, name  # same data, same partition
            assert after["files"][name][1] != mtime, name  # ... written again
        elif name.startswith(tuple(partitions.PARTITIONED_TABLES)):
            assert after["files"][name] == (sha, mtime), name
    days_before, days_after = before["manifest"]["days"], after["manifest"]["days"]
    assert days_after.keys() == days_before.keys()
    assert days_after["2013-03-02"]["sha256"] == days_before["2013-03-02"]["sha256"]
    assert days_after["2013-03-02"]["run"] == rerun.job_name != days_before["2013-03-02"]["run"]
    assert days_after["2013-03-01"] == days_before["2013-03-01"]


REFUSALS = [
    ("day-format", "2013-03-32"),
    ("no-duplicate-day", "2013-03-04,2013-03-04"),
    ("days-in-order", "2013-03-05,2013-03-04"),
    ("not-before-last", "2013-02-27"),
    ("no-gap", "2013-03-06"),
]


@pytest.mark.parametrize(("rule", "days"), REFUSALS, ids=[r for r, _ in REFUSALS])
def test_each_refusal_names_its_rule_and_appends_nothing(appended, settings, rule, days):
    """The run stops at its first step with the rule's name; the store's files and manifest are unchanged."""
    before = store_state(settings)
    with pytest.raises(local.PipelineStepError) as failed:
        local.run_features(settings, days)
    assert failed.value.task == "ingest-days"
    assert f"rule {rule!r} refused the run" in failed.value.detail
    assert "nothing was appended" in failed.value.detail
    assert store_state(settings) == before


def _corrupt_source(folder: Path, day: str) -> Path:
    """The raw CSVs with one flight landing on ``day`` given an impossible arrival delay."""
    source = raw_truth.raw_folder()
    raw = pd.read_csv(source / "flights.csv.zip")
    month, dom = int(day[5:7]), int(day[8:10])
    rows = raw.index[(raw["month"] == month) & (raw["day"] == dom) & (raw["hour"] == 9) & raw["arr_delay"].notna()]
    raw.loc[rows[:1], "arr_delay"] = 1999.5  # lands a day later: still on the day after, out of range
    raw.loc[rows[1:2], "arr_delay"] = -500.0
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("flights.csv", raw.to_csv(index=False))
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        (folder / name).write_bytes((source / name).read_bytes())
    return folder


def test_malformed_data_fails_validation_naming_column_and_rule_and_appends_nothing(appended, settings, tmp_path):
    """A day whose flights break the schema stops at validate, naming column and rule; nothing is appended."""
    before = store_state(settings)
    broken = settings.replace(
        paths=replace(settings.paths, source_dir=str(_corrupt_source(tmp_path / "raw", "2013-03-03")))
    )
    with pytest.raises(local.PipelineStepError) as failed:
        local.run_features(broken, "2013-03-04")
    assert failed.value.task == "validate-days"
    assert "arr_delay" in failed.value.detail and "in_range" in failed.value.detail
    assert store_state(settings) == before


BAD_DAYS = [("2013-02-30", "day-format"), ("2013-03-04,2013-03-04", "no-duplicate-day")]


@pytest.mark.parametrize(("days", "rule"), BAD_DAYS)
def test_the_cli_refuses_bad_days_in_one_line_before_anything_runs(days, rule):
    """`ctloop features run` with bad days: exit 1, one `error:` line naming the rule, no traceback."""
    ctloop = Path(sys.executable).parent / "ctloop"
    done = subprocess.run(
        [str(ctloop), "features", "run", "--days", days], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert f"rule {rule!r}" in lines[0] and "Traceback" not in done.stderr
