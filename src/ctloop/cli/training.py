"""`ctloop train`, `run` and `replay`: the training pipeline here, and the year replay."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ctloop.cli.shell import (
    DEFAULT_CONFIG,
    ConfigOption,
    EndOption,
    StartOption,
    UserError,
    _progress,
    app,
    console,
    friendly,
    git_sha,
    load_settings,
    online_store,
    quiet_warnings,
    task_bar,
)
from ctloop.config import FEATURE_PIPELINE, TRAINING_PIPELINE, Settings
from ctloop.core.text import cell


def run_training(settings: Settings, start: str, end: str, promote: bool) -> Any:
    """Run the pipeline locally with a progress display; return the finished run.

    The feature pipeline runs first for the window's days the offline store lacks (the training
    pipeline only reads them).
    """
    from ctloop.app.feature_steps import days_to_append
    from ctloop.core.data import Window
    from ctloop.pipelines import local

    Window.parse(start, end)  # a readable error before anything starts
    days = days_to_append(settings, start, end)
    with online_store(settings), _progress() as progress:
        if days:
            _, on_feature = task_bar(progress, f"{FEATURE_PIPELINE} {days}", len(local.FEATURE_TASKS))
            local.run_features(settings, days, git_sha=git_sha(settings.root), callback=on_feature)
        bar, on_event = task_bar(progress, TRAINING_PIPELINE, len(local.TASKS))
        run = local.run(settings, start, end, promote=promote, git_sha=git_sha(settings.root), callback=on_event)
        progress.update(bar, description=f"{TRAINING_PIPELINE}: done", completed=len(local.TASKS))
    return run


def summary_table(settings: Settings, run: Any) -> Table:
    """What a training run did, in one table."""
    from ctloop.adapters.registry import Registry

    ingest = run.artifact_metadata("ingest", "snapshot")
    doc = run.evaluation() or {}
    verdict = run.output("gate") or "—"
    version = run.output("register")
    table = Table(title=f"flight-delay-training ({run.job_name})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("window", str(ingest.get("window", "—")))
    table.add_row("data snapshot sha256", str(ingest.get("sha256", "—")))
    read = run.artifact_metadata("training-set", "dataset")
    table.add_row("feature partitions read", str(read.get("feature_partitions", "—")))
    table.add_row("feature data sha256", str(read.get("feature_data_sha256", "—")))
    table.add_row("flights (window)", cell(int(ingest["rows"]) if "rows" in ingest else None))
    table.add_row("cancelled (excluded)", cell(int(ingest["cancelled"]) if "cancelled" in ingest else None))
    table.add_row("evaluation window", str(doc.get("evaluation_window", "—")))
    for who in ("candidate", "baseline", "champion"):
        block = doc.get(who)
        if block:
            o = block["overall"]
            label = f"{who} (v{doc.get('champion_version')})" if who == "champion" else who
            table.add_row(
                f"{label} AUC / log-loss / Brier", f"{cell(o['auc'])} / {cell(o['log_loss'])} / {cell(o['brier'])}"
            )
    table.add_row("ONNX vs scikit-learn max |Δp|", f"{doc.get('onnx_max_abs_diff', float('nan')):.1e}")
    table.add_row("gate", verdict)
    if version:
        mv = Registry(settings).get(version)
        table.add_row("model version", f"{settings.registry.model_name} v{version}")
        table.add_row("aliases", ", ".join(mv.aliases) or "—")
    else:
        table.add_row("model version", "not registered (gate rejected the candidate)")
    table.add_row("pipeline time", f"{run.seconds:.1f} s")
    table.add_row("MLflow UI", f"ctloop ui → http://127.0.0.1:{settings.services.mlflow_ui_port}")
    return table


@app.command()
@friendly
def train(
    start: StartOption = "2013-01-01",
    end: EndOption = "2013-03-31",
    promote: Annotated[bool, typer.Option(help="Move `champion` to the new version when blessed.")] = True,
    runner: Annotated[
        str,
        typer.Option(
            help="subprocess: each task a process of the platform venv; container: each task in the "
            "platform image of this checkout (podman; `make images` builds it). Default: [pipeline] local_runner."
        ),
    ] = "",
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Run the KFP training pipeline locally (kfp.local) on a window and print a summary."""
    settings = load_settings(config)
    if runner:
        if runner not in ("subprocess", "container"):
            raise UserError(f"--runner must be subprocess or container, got {runner!r}")
        settings = settings.replace(pipeline=dataclasses.replace(settings.pipeline, local_runner=runner))
    run = run_training(settings, start, end, promote)
    console.print(summary_table(settings, run))


@app.command()
@friendly
def run(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """The main job: the continuous-training replay of 2013 (`ctloop replay`)."""
    run_replay(load_settings(config), quick=False)


@app.command()
@friendly
def replay(
    quick: Annotated[bool, typer.Option(help="A few weeks with a sample of the flights ([replay] quick_*).")] = False,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Train a first champion, serve it, replay the year hour by hour, feedback nightly; the monitor retrains alone."""
    run_replay(load_settings(config), quick)


def run_replay(settings: Settings, quick: bool) -> None:
    """Run the replay with a progress display, then print its summary and where the report is."""
    import pandas as pd

    from ctloop.adapters import featurestore  # noqa: F401 - imported before quiet_warnings(): see there

    quiet_warnings()
    from ctloop.app import replay as rp
    from ctloop.core.clock import LOCAL_TZ

    plan = rp.Plan.from_settings(settings, quick)
    hours = int((plan.ends - plan.begins) / rp.STEP)
    with _progress() as progress:
        bar = progress.add_task("replay: preparing", total=hours)

        def on_stage(text: str) -> None:
            quiet_warnings()  # again: each stage may have imported another library that reset them
            progress.update(bar, description=f"replay: {text}")

        def on_step(now: pd.Timestamp, loop: rp.Loop) -> None:
            if now.hour % 6 == 0:
                local = now.tz_convert(LOCAL_TZ)
                progress.update(
                    bar,
                    completed=int((now - plan.begins) / rp.STEP) + 1,
                    description=f"{local:%Y-%m-%d %H:00} serving v{loop.serving_version} | {loop.last_decision}",
                )

        from ctloop.pipelines.local import LocalFeatures, LocalRetrainer

        sha = git_sha(settings.root)
        retrain, features = LocalRetrainer(git_sha=sha), LocalFeatures(git_sha=sha)
        outcome = rp.run(settings, retrain, features, quick=quick, on_stage=on_stage, on_step=on_step)
        progress.update(bar, completed=hours, description="replay: done")
    console.print(replay_table(outcome.summary))
    console.print(f"report: {outcome.report_dir / 'index.html'} (ctloop report serves it)")
    console.print(f"the report is also in the replay's MLflow run {outcome.summary['mlflow_run']} (ctloop ui --replay)")
    console.print(
        "next: ctloop serve --replay (make serve) serves its champion; ctloop models --replay lists its versions"
    )


@app.command()
@friendly
def report(
    port: Annotated[int | None, typer.Option(help="Loopback port (default: [services] report_port).")] = None,
    serve: Annotated[bool, typer.Option(help="Serve the report over HTTP; --no-serve prints its path only.")] = True,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """The last replay's report: print its path and serve it on http://127.0.0.1 until Ctrl-C."""
    import signal

    settings = load_settings(config)
    folder = Path(settings.root) / settings.replay.report_dir
    page = folder / "index.html"
    if not page.is_file():
        raise UserError(f"no report at {page}: run `make run` (the year) or `ctloop replay --quick` first")
    console.print(f"report: {page}", soft_wrap=True, highlight=False)
    if not serve:
        return
    chosen = port or settings.services.report_port
    server = report_server(folder, chosen)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    console.print(f"serving it on http://127.0.0.1:{chosen}/ (Ctrl-C stops)", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()


def report_server(folder: Path, port: int) -> Any:
    """A static file server for ``folder`` on 127.0.0.1 ``port``; a taken port is a :class:`UserError`."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No access log on the terminal."""

    try:
        return ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(folder)))
    except OSError as exc:
        raise UserError(f"cannot serve on 127.0.0.1:{port} ({exc.strerror}): pass --port with a free port") from None


def replay_table(figures: dict[str, Any]) -> Table:
    """A replay's figures in one table."""
    table = Table(title=f"ctloop replay {figures['period']} (sample {figures['sample']:.0%})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key in (
        "flights",
        "prediction_requests",
        "outcomes_sent",
        "monitor_passes",
        "triggers",
        "retrains",
        "promotions",
        "not_blessed",
        "failed",
    ):
        table.add_row(key.replace("_", " "), cell(figures[key]))
    table.add_row("versions served", ", ".join(f"v{v}" for v in figures["versions_served"]))
    for q in figures["quarters"]:
        table.add_row(
            f"{q['quarter']} AUC / Brier",
            f"CT {cell(q['ct_auc'])} / {cell(q['ct_brier'])}   static {cell(q['static_auc'])} / "
            f"{cell(q['static_brier'])}   ({q['flights']:,} flights)",
        )
    latency = figures["latency_ms"]
    table.add_row("request latency", f"p50 {latency['p50']} ms, p99 {latency['p99']} ms (one request per hour)")
    stages = ", ".join(f"{k} {v}" for k, v in figures["stages_s"].items())
    table.add_row("wall time", f"{figures['wall_s']} s: {stages}")
    return table
