"""``make bench``: each figure next to its baseline measured in the same run, with the ratio.

Scenario ``pipeline`` (``pipeline_full_year.json``, ``features_day.json``): the feature pipeline
appends 2013 to an empty offline store, then the training pipeline reads the whole of 2013
(336,776 flights) ingest → register, once through ``kfp.local`` (each step its own process, as on
a cluster) and once as the same step functions called directly in one process (the baseline);
then one more day of the feature pipeline, both ways. Each kfp.local task's peak memory is
reported.

Scenario ``serving`` (``bench/serving.py``): the champion the direct run registered, served by
our Seldon model class against Seldon's own ceiling, a bare Flask app, Seldon + scikit-learn,
with and without Feast enrichment and in batches.

Scenario ``replay`` (``bench/replay.py``): the full continuous-training replay, against the
240 s goal, with the time split by stage, the AUC and Brier per quarter (loop vs static
champion) and every gate decision.

Scenario ``containers`` (``bench/containers.py``): image builds and sizes, the pipeline in its
containers against subprocesses, the serving container's memory. Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ctloop.adapters import services
from ctloop.app import feature_steps, pipeline_steps
from ctloop.config import Settings
from ctloop.core import data

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START, END = "2013-01-01", "2013-12-31"
GOAL_S, LIMIT_S, OVERHEAD_GOAL = 20.0, 60.0, 1.3
DAY_GOAL_S = 5.0
PEAK_LIMIT_MIB = 2048
BACKFILL = "2012-12-31..2013-12-30"
"""The partitions the full-year window reads (``start - 1 .. end``) but its last: one more day is measured alone."""
ONE_DAY = "2013-12-31"
MACHINE = {"cpus": os.cpu_count(), "python": platform.python_version()}


def _settings(data_dir: Path, port: int) -> Settings:
    base = Settings.load(ROOT / "config" / "local.toml")
    return base.replace(
        paths=replace(base.paths, data_dir=str(data_dir)), services=replace(base.services, redis_port=port)
    )


def direct(settings: Settings) -> tuple[dict[str, float], dict[str, Any]]:
    """The pipeline's steps called in one process; seconds per step and the evaluation document."""
    times: dict[str, float] = {}
    lineage_features: dict[str, str] = {}
    lineage = {
        "git_sha": "bench",
        "pipeline_version": "bench",
        "pipeline_run": "bench-direct",
        "window": f"{START}..{END}",
    }

    def step(name: str, func, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        began = time.perf_counter()
        out = func(*args, **kwargs)
        times[name] = time.perf_counter() - began
        return out

    work = settings.data_dir / "direct"
    window = data.Window.parse(START, END)
    result = step(
        "ingest", data.ingest, window, settings.features.history_days, work / "snapshot", None, settings.parse_cache
    )
    step("validate", pipeline_steps.validate, Path(result.path), result.sha256, START, END)

    def read_features() -> Any:  # what the training set task does: the rows, the lineage, the retrieval
        rows = pipeline_steps.training_rows(Path(result.path), START, END)
        lineage_features.update(feature_steps.read_lineage(settings, *pipeline_steps.departure_days(rows, START, END)))
        return pipeline_steps.features_for(settings, rows)

    ts = step("training-set", read_features)
    ts.save(work / "training_set")
    from ctloop.core import train as core
    from ctloop.core import tune

    end = window.end
    tuned = step("tune", tune.search, ts, end, settings.train, settings.tune)
    bundle, _ = step("train", core.train, ts, end, tuned.params, settings.monitor.window_s, tuned.to_dict())
    bundle.save(work / "model")
    evaluation = step(
        "evaluate",
        pipeline_steps.evaluate,
        settings,
        work / "training_set",
        work / "model",
        END,
    )
    decision = step("gate", pipeline_steps.gate, evaluation.document, settings.gate)
    if decision.blessed:
        step(
            "register",
            pipeline_steps.register,
            settings,
            work / "model",
            evaluation.document,
            {**lineage, "data_sha256": result.sha256, **lineage_features},
            True,
        )
    return times, evaluation.document


def features_direct(settings: Settings, days: str) -> float:
    """The feature pipeline's steps for ``days`` called in one process (online store included); seconds."""
    began = time.perf_counter()
    feature_steps.run_in_process(settings, days, settings.data_dir / "direct-features" / days.replace("..", "_"))
    return time.perf_counter() - began


Timed = tuple[float, dict[str, float], dict[str, int]]
"""Seconds, seconds per task, peak MiB per task."""


def timed_run(start_run: Any) -> Timed:
    """Run a kfp.local pipeline (``start_run(callback)``); total seconds, seconds and peak memory per task."""
    marks: dict[str, float] = {}
    per_task: dict[str, float] = {}

    def on_event(task: str, event: str) -> None:
        now = time.perf_counter()
        if event == "started":
            marks[task] = now
        else:
            per_task[task] = now - marks.get(task, now)

    run = start_run(on_event)
    return run.seconds, per_task, dict(run.peak_mib)


def pipeline(settings: Settings) -> dict[str, Timed]:
    """Through kfp.local: the year's features appended, the training pipeline on the year, one more day."""
    from ctloop.pipelines import local

    return {
        "features_year": timed_run(lambda cb: local.run_features(settings, BACKFILL, git_sha="bench", callback=cb)),
        "features_day": timed_run(lambda cb: local.run_features(settings, ONE_DAY, git_sha="bench", callback=cb)),
        "training": timed_run(lambda cb: local.run(settings, START, END, git_sha="bench", callback=cb)),
    }


def features_report(runs: dict[str, Timed], direct_s: dict[str, float]) -> None:
    """Print the feature pipeline's figures and write ``features_day.json``."""
    day_s, day_tasks, day_peaks = runs["features_day"]
    year_s, _, year_peaks = runs["features_year"]
    rows = [
        (f"one day ({ONE_DAY}) of flight-features, kfp.local (s)", day_s, direct_s["day"], day_s / direct_s["day"]),
        (f"one day of flight-features (s) vs goal {DAY_GOAL_S:.0f} s", day_s, DAY_GOAL_S, day_s / DAY_GOAL_S),
        (f"{BACKFILL} backfill, kfp.local (s)", year_s, direct_s["year"], year_s / direct_s["year"]),
    ]
    table(rows)
    print(f"\n{'task':22} {'one day (s)':>12} {'peak MiB day':>13} {'peak MiB year':>14}")
    for name in day_tasks:
        print(f"{name:22} {day_tasks[name]:12.1f} {day_peaks.get(name, 0):13} {year_peaks.get(name, 0):14}")
    out = {
        "scenario": "features_day",
        "machine": MACHINE,
        "day": ONE_DAY,
        "kfp_local_s": round(day_s, 2),
        "direct_s": round(direct_s["day"], 2),
        "ratio": round(day_s / direct_s["day"], 3),
        "goal_s": DAY_GOAL_S,
        "steps_kfp_local_s": {k: round(v, 2) for k, v in day_tasks.items()},
        "peak_mib_day": day_peaks,
        "backfill": BACKFILL,
        "backfill_kfp_local_s": round(year_s, 2),
        "backfill_direct_s": round(direct_s["year"], 2),
        "peak_mib_backfill": year_peaks,
        "peak_limit_mib": PEAK_LIMIT_MIB,
        "measured_at": utc_now(),
    }
    write("features_day.json", out)


def pipeline_report(steps: dict[str, float], document: dict[str, Any], training: Timed) -> None:
    """Print the pipeline figures and write ``pipeline_full_year.json``."""
    total, tasks, peaks = training
    total_direct = sum(steps.values())
    ratio = total / total_direct
    model, baseline = document["candidate"]["overall"], document["baseline"]["overall"]
    rows = [
        ("full year ingest → register, kfp.local (s)", total, total_direct, ratio),
        (f"full year training pipeline (s) vs goal {GOAL_S:.0f} s", total, GOAL_S, total / GOAL_S),
        (
            f"largest task peak memory (MiB) vs {PEAK_LIMIT_MIB}",
            max(peaks.values(), default=0),
            PEAK_LIMIT_MIB,
            max(peaks.values(), default=0) / PEAK_LIMIT_MIB,
        ),
        ("AUC held-out Dec 2013: model vs LR baseline", model["auc"], baseline["auc"], model["auc"] / baseline["auc"]),
        (
            "Brier held-out Dec 2013: model vs baseline",
            model["brier"],
            baseline["brier"],
            model["brier"] / baseline["brier"],
        ),
    ]
    table(rows)
    print(f"  pipeline goal ≤ {GOAL_S:.0f} s (limit {LIMIT_S:.0f} s), orchestration overhead ≤ {OVERHEAD_GOAL}×")
    print(f"  ONNX vs scikit-learn max |Δp| on the evaluation rows: {document['onnx_max_abs_diff']:.1e}")
    print(f"\n{'step':16} {'kfp.local (s)':>14} {'direct (s)':>11} {'peak MiB':>9}")
    for name in tasks.keys() | steps.keys():
        print(
            f"{name:16} {tasks.get(name, float('nan')):14.1f} {steps.get(name, float('nan')):11.1f}"
            f" {peaks.get(name, 0):9}"
        )
    out = {
        "scenario": "pipeline_full_year",
        "window": f"{START}..{END}",
        "machine": MACHINE,
        "kfp_local_s": round(total, 2),
        "direct_s": round(total_direct, 2),
        "ratio": round(ratio, 3),
        "goal_s": GOAL_S,
        "limit_s": LIMIT_S,
        "overhead_goal": OVERHEAD_GOAL,
        "model_auc": round(model["auc"], 4),
        "baseline_auc": round(baseline["auc"], 4),
        "model_brier": round(model["brier"], 4),
        "baseline_brier": round(baseline["brier"], 4),
        "onnx_max_abs_diff": document["onnx_max_abs_diff"],
        "steps_direct_s": {k: round(v, 2) for k, v in steps.items()},
        "steps_kfp_local_s": {k: round(v, 2) for k, v in tasks.items()},
        "peak_mib": peaks,
        "peak_limit_mib": PEAK_LIMIT_MIB,
        "measured_at": utc_now(),
    }
    write("pipeline_full_year.json", out)


def serving_report(results: dict[str, Any], settings: Settings) -> None:
    """Print the serving figures and write ``serving.json``."""
    from bench import serving

    cache_ttl_s = settings.serving.feature_cache_ttl_s
    table(serving.rows(results, cache_ttl_s))
    print(
        f"  wrk -t{serving.THREADS} -c{serving.CONNECTIONS}, {serving.WORKERS} workers per server, all on this machine"
    )
    out = {
        "scenario": "serving",
        "machine": MACHINE,
        "load": {"threads": serving.THREADS, "connections": serving.CONNECTIONS, "workers": serving.WORKERS},
        "feature_cache_ttl_s": cache_ttl_s,
        "results": results,
        "figures": figure_list(serving.rows(results, cache_ttl_s)),
        "measured_at": utc_now(),
    }
    write("serving.json", out)


def replay_report(work: Path) -> None:
    """The full continuous-training replay: figures, the time split by stage, ``replay.json``."""
    from bench import replay

    summary = replay.run(Settings.load(ROOT / "config" / "local.toml"), work)
    table(replay.rows(summary))
    print(replay.stages(summary))
    keep = ("period", "flights", "retrains", "promotions", "not_blessed", "failed", "versions_served", "quarters")
    keep += ("overall", "offline_online", "staleness")
    decisions = [
        {
            "at": e["at"],
            "triggers": e["triggers"],
            "window": e["window"],
            "outcome": e["outcome"],
            "new_version": e["new_version"],
            "gate_reasons": e["gate_reasons"],
        }
        for e in summary["events"]
    ]
    out = {
        "scenario": "replay",
        "machine": MACHINE,
        "wall_s": summary["wall_s"],
        "stages_s": summary["stages_s"],
        "monitor_pass_s": summary["monitor_pass_s"],
        "latency_ms": summary["latency_ms"],
        **{k: summary[k] for k in keep},
        "features_every_days": summary.get("features_every_days"),
        "feature_pipeline_background_s": summary.get("feature_pipeline_background_s"),
        "gate_decisions": decisions,
        "figures": figure_list(replay.rows(summary)),
        "measured_at": utc_now(),
    }
    write("replay.json", out)


def model_report(work: Path) -> None:
    """The candidate against the logistic baseline on every month of 2013: ``model.json``."""
    from bench import model

    result = model.run(Settings.load(ROOT / "config" / "local.toml"), work)
    table(model.rows(result))
    print(
        f"\nmonths where the candidate beats the baseline in AUC and Brier: {result['months_beating_baseline']}"
        f" of {len(result['months'])}"
    )
    out = {
        "scenario": "model",
        "machine": MACHINE,
        **result,
        "figures": figure_list(model.rows(result)),
        "measured_at": utc_now(),
    }
    write("model.json", out)


def containers_report(work: Path) -> None:
    """Builds, sizes, the containerized pipeline and serving memory: ``containers.json``."""
    from bench import containers

    work.mkdir(parents=True)
    work.parent.chmod(0o711)  # mkdtemp's folder is private: the containers' user must reach the data inside
    result = containers.run(ROOT, _settings(work / "data", 0), work)
    table(containers.rows(result))
    out = {
        "scenario": "containers",
        "machine": MACHINE,
        **result,
        "figures": figure_list(containers.rows(result)),
        "measured_at": utc_now(),
    }
    write("containers.json", out)


def figure_list(rows: list[tuple[str, float, float, float]]) -> list[dict[str, Any]]:
    """The figures as a result file keeps them (a ratio that is not a number is null)."""
    return [
        {"figure": name, "value": value, "baseline": base, "ratio": None if math.isnan(ratio) else ratio}
        for name, value, base, ratio in rows
    ]


def utc_now() -> str:
    """When a result was measured, as the result files say it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def table(rows: list[tuple[str, float, float, float]]) -> None:
    """Each figure next to its baseline and the ratio."""
    print(f"\n{'figure':52} {'value':>9} {'baseline':>9} {'ratio':>7}")
    for name, value, base, r in rows:
        print(f"{name:52} {value:9.4g} {base:9.4g} {r:7.3f}")


def write(name: str, out: dict[str, Any]) -> None:
    """One JSON per scenario under ``bench/results/``."""
    (RESULTS / name).write_text(json.dumps(out, indent=2, allow_nan=False, default=str) + "\n")
    print(f"wrote {RESULTS / name}")


def main() -> None:
    """Run the scenarios, print the tables, write the JSON."""
    if not sys.flags.optimize:
        # the pipeline's tasks run with PYTHONOPTIMIZE=1; the direct baseline runs the same way
        os.execv(sys.executable, [sys.executable, "-O", "-m", "bench.run", *sys.argv[1:]])  # noqa: S606
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    parser.add_argument(
        "--only",
        choices=["pipeline", "serving", "replay", "model", "containers"],
        help="one scenario (serving still trains first)",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-"))
    try:
        scenarios(args.only, tmp)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def scenarios(only: str | None, tmp: Path) -> None:
    """Run ``only`` (every scenario when None) with its data under ``tmp``."""
    if only in (None, "replay"):
        replay_report(tmp / "replay")
        if only == "replay":
            return
    if only in (None, "model"):
        model_report(tmp / "model")
        if only == "model":
            return
    if only in (None, "containers"):
        containers_report(tmp / "containers")
        if only == "containers":
            return
    # each pipeline task tunes its collector so (pipeline_steps.task_process); the direct baseline does
    # the same. After the replay scenario, which runs as `ctloop replay` does.
    pipeline_steps.task_process()
    port = services.free_port()
    redis = services.start_redis(port, tmp / "redis")
    try:
        direct_settings = _settings(tmp / "direct", port)
        # the year's partitions: what the training pipeline reads (timed for the feature pipeline's figures)
        features_s = {"year": features_direct(direct_settings, BACKFILL)}
        features_s["day"] = features_direct(direct_settings, ONE_DAY)
        steps, document = direct(direct_settings)
        if only != "serving":
            runs = pipeline(_settings(tmp / "pipeline", port))
            pipeline_report(steps, document, runs["training"])
            features_report(runs, features_s)
        if only != "pipeline":
            from bench import serving

            work = direct_settings.data_dir / "direct"
            results = serving.run(direct_settings, work / "training_set", work / "model", END)
            serving_report(results, direct_settings)
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
