"""`ctloop serve`, `monitor` and `ui`: the serving stack, a monitoring pass, the MLflow UI."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ctloop.cli.shell import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    ReplayOption,
    UserError,
    app,
    console,
    friendly,
    git_sha,
    load_settings,
    print_json,
    scoped_settings,
)
from ctloop.config import Settings
from ctloop.contract.flight_request import EXAMPLE


def watch_for(settings: Settings) -> Any:
    """Where a monitoring pass reads and retrains, chosen once here.

    A cluster (``[monitor] prometheus_url``): Prometheus, the registry and the KFP server. This
    machine: serving's ``/metrics``, the serving folder, files and kfp.local.
    """
    from ctloop.app import monitor_pass

    if settings.monitor.prometheus_url:
        return monitor_pass.on_cluster(settings)
    from ctloop.pipelines.local import LocalRetrainer

    return monitor_pass.on_this_machine(settings, LocalRetrainer())


@app.command()
@friendly
def monitor(
    now: Annotated[str, typer.Option(help="The monitor's clock (ISO date or time; default: now, UTC).")] = "",
    dry_run: Annotated[bool, typer.Option(help="Decide and record, but start no retrain.")] = False,
    json: JsonOption = False,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """One monitoring pass: drift and delayed-label performance from serving's metrics, the policy, maybe a retrain."""
    from ctloop.app.monitor_pass import monitor_pass

    settings = load_settings(config)
    clock = datetime.fromisoformat(now) if now else datetime.now(tz=UTC).replace(tzinfo=None)
    result = monitor_pass(settings, clock, watch_for(settings), dry_run=dry_run)
    d = result.decision
    if json:
        print_json({**d.to_dict(), "outcome": result.outcome, "window": result.window})
        return
    table = Table(title=f"monitor at {d.at} — model v{d.model_version}", show_header=False)
    table.add_row("triggers", ", ".join(d.triggers) or "none")
    table.add_row("retrain", f"{'yes' if d.retrain else 'no'} ({result.outcome})")
    if result.window:
        table.add_row("training window", "..".join(result.window))
    for reason in d.reasons:
        table.add_row("reason", reason)
    for key, value in d.numbers.items():
        table.add_row(key, str(value))
    console.print(table)


@app.command()
@friendly
def serve(
    alias: Annotated[str, typer.Option(help="Registry alias to serve.")] = "champion",
    containers: Annotated[
        bool,
        typer.Option(
            "--containers",
            help="Run the feature server and the microservice in the images of this checkout "
            "(podman; `make images` builds them), as a cluster does.",
        ),
    ] = False,
    replay: Annotated[
        bool, typer.Option("--replay", help="Serve from the last replay's registry and feature store (make serve).")
    ] = False,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Serve ALIAS on loopback: Redis, the Feast feature server and the Seldon microservice, until Ctrl-C."""
    import signal
    import time

    from ctloop.adapters.registry import Registry
    from ctloop.app.stack import Containers, serving_stack

    settings = load_settings(config)
    if replay:
        # the replay's data folder; serving's own settings stay the environment's (the replay's are
        # tuned for a simulated clock)
        settings = scoped_settings(config, replay=True).replace(serving=settings.serving)
    if Registry(settings).by_alias(alias) is None:
        where = "the last replay's registry" if replay else f"the registry under {settings.data_dir}"
        after = (
            "run `make run` (or `ctloop replay --quick`) first"
            if replay
            else ("run `ctloop train`, or serve the last replay's with `ctloop serve --replay` (make serve)")
        )
        raise UserError(f"no version with alias {alias!r} in {where}: {after}")
    launcher = Containers(settings, settings.pipeline.image_tag or git_sha(settings.root)) if containers else None

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with ExitStack() as started:
        try:  # Ctrl-C (or SIGTERM) while starting stops what started, as it does later
            with console.status("starting Redis, feast serve and the Seldon microservice..."):
                stack = started.enter_context(serving_stack(settings, alias, launcher=launcher))
            print_stack(settings, alias, stack)
            while all(p.alive() for p in stack.processes):
                time.sleep(0.5)
            dead = next(p for p in stack.processes if not p.alive())
            raise UserError(f"{dead.name} stopped unexpectedly (log {dead.log_file}): {dead.tail(300)}")
        except KeyboardInterrupt:
            console.print("stopping...")
    console.print("stopped")


def print_stack(settings: Settings, alias: str, stack: Any) -> None:
    """Where the running stack answers, and a request to try."""
    import json

    body = json.dumps({"jsonData": {"flights": [EXAMPLE]}})
    table = Table(title=f"serving {settings.registry.model_name} v{stack.model_version} ({alias})", show_header=False)
    table.add_row("predictions", f"{stack.rest_url}/api/v1.0/predictions")
    table.add_row("feedback", f"{stack.rest_url}/api/v1.0/feedback")
    table.add_row("liveness / readiness", f"{stack.rest_url}/health/ping  {stack.rest_url}/health/status")
    table.add_row("metrics (ours / Seldon's)", f"{stack.metrics_url}  {stack.seldon_metrics_url}")
    table.add_row("feature server", stack.feature_server_url)
    table.add_row("Redis", f"127.0.0.1:{stack.redis.port}")
    console.print(table)
    console.print("try:")
    console.print(
        f"  curl -s {stack.rest_url}/api/v1.0/predictions -H 'Content-Type: application/json' -d '{body}'",
        soft_wrap=True,
        highlight=False,
    )
    console.print("`ctloop promote VERSION` swaps the served model live. Ctrl-C stops everything.")


@app.command()
@friendly
def ui(
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    replay: ReplayOption = False,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the local tracking store."""
    settings = scoped_settings(config, replay)
    chosen = port or settings.services.mlflow_ui_port
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).parent / "mlflow"
    args = [
        str(mlflow),
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(chosen),
        "--backend-store-uri",
        settings.tracking_uri,
        "--default-artifact-root",
        settings.artifact_root.as_uri(),
    ]
    console.print(f"MLflow UI on http://127.0.0.1:{chosen} (Ctrl-C stops it)")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.execv(args[0], args)  # noqa: S606
