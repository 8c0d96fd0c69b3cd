"""``ctloop``: the command line. Errors a user can act on end as one line and a non-zero exit."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ctloop.config import TRAINING_PIPELINE, ConfigError, Settings
from ctloop.core.text import cell

app = typer.Typer(
    help="Level-2 continuous training for flight-delay prediction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
pipeline_app = typer.Typer(
    help="Compile the training pipeline (and, on a cluster, upload and run it).", no_args_is_help=True
)
features_app = typer.Typer(help="Feast: apply definitions, materialize the online store.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(features_app, name="features")

console = Console()
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("ctloop")

DEFAULT_CONFIG = "config/local.toml"
ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Settings file.", envvar="CTLOOP_CONFIG", show_default=True)
]
StartOption = Annotated[str, typer.Option(help="First scheduled-departure date (local, inclusive).")]
EndOption = Annotated[str, typer.Option(help="Last scheduled-departure date (local, inclusive).")]


class UserError(Exception):
    """A mistake or an environment problem the user can fix; printed as one line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    # imported only when an error is being handled: module imports here stay cheap
    from ctloop.adapters.containers import ContainerError
    from ctloop.adapters.kfp_client import KfpError
    from ctloop.adapters.kube import KubeError
    from ctloop.adapters.metrics_source import MetricsSourceError
    from ctloop.adapters.registry import RegistryError
    from ctloop.adapters.services import ServiceError
    from ctloop.core.data import DataSourceError
    from ctloop.core.schema import DataValidationError
    from ctloop.core.train import TrainingError

    return (
        UserError,
        ConfigError,
        ContainerError,
        DataSourceError,
        DataValidationError,
        KfpError,
        KubeError,
        MetricsSourceError,
        RegistryError,
        ServiceError,
        TrainingError,
        ValueError,
    )


def friendly[F: Callable[..., Any]](func: F) -> F:
    """Turn expected errors into ``error: ...`` on stderr and exit code 1 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipelines.local import PipelineStepError

        try:
            return func(*args, **kwargs)
        except PipelineStepError as exc:
            err.print(f"[red]error:[/] step {escape(repr(exc.task))} failed: {escape(exc.detail)}", highlight=False)
            err.print(f"full log: {exc.log_path}", highlight=False)
            raise typer.Exit(1) from None
        except _user_errors() as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)  # "[registry]" is text, not markup
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def load_settings(config: Path) -> Settings:
    """Settings from a file; the project root is the folder above ``config/``."""
    return Settings.load(config)


ReplayOption = Annotated[bool, typer.Option("--replay", help="The last replay's registry (`ctloop replay`).")]


def scoped_settings(config: Path, replay: bool) -> Settings:
    """Settings, or the last replay's (its own data folder) with ``--replay``."""
    settings = load_settings(config)
    if not replay:
        return settings
    from ctloop.app.replay import replay_settings

    return replay_settings(settings)


def git_sha(root: str) -> str:
    """The checkout's commit, ``unknown`` outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)  # noqa: S607
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


@contextmanager
def online_store(settings: Settings) -> Iterator[None]:
    """Redis on loopback for the duration of a command (reused if one already answers)."""
    from ctloop.adapters.services import redis_running

    with redis_running(settings.services.redis_port, settings.data_dir / "redis"):
        yield


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_training(settings: Settings, start: str, end: str, promote: bool) -> Any:
    """Run the pipeline locally with a progress display; return the finished run."""
    from ctloop.core.data import Window
    from pipelines import local

    Window.parse(start, end)  # a readable error before anything starts
    with online_store(settings), _progress() as progress:
        bar = progress.add_task(TRAINING_PIPELINE, total=len(local.TASKS))

        def on_event(task: str, event: str) -> None:
            if event == "started":
                progress.update(bar, description=f"flight-delay-training: {task}")
            else:
                progress.advance(bar)

        run = local.run(settings, start, end, promote=promote, git_sha=git_sha(settings.root), callback=on_event)
        progress.update(bar, description="flight-delay-training: done", completed=len(local.TASKS))
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


@app.callback()
def main_callback(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False) -> None:
    """ctloop: Kubeflow Pipelines + Feast + MLflow + Seldon, closed into a continuous-training loop."""
    global QUIET  # noqa: PLW0603 - set once per process, from the command line
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    QUIET = not verbose
    quiet_warnings()


QUIET = True


def quiet_warnings() -> None:
    """Hide third-party deprecation notices (the ones pytest's config lists) unless ``--verbose``.

    Call again after importing Feast in this process: its modules put ``simplefilter("once", ...)``
    in front of these at import time.
    """
    if not QUIET:
        return
    for category in (DeprecationWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(feast|ibis|mlflow|sqlalchemy)\b")
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
    # pandas' own Timedelta arithmetic under numpy 2.5 (pyproject's pytest filters list it too)
    warnings.filterwarnings("ignore", message="The 'generic' unit for NumPy timedelta is deprecated")


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
    """Train a first champion, serve it, replay the year hour by hour with feedback; the monitor retrains alone."""
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

        from pipelines.local import LocalRetrainer

        retrain = LocalRetrainer(git_sha=git_sha(settings.root))
        outcome = rp.run(settings, retrain, quick=quick, on_stage=on_stage, on_step=on_step)
        progress.update(bar, completed=hours, description="replay: done")
    console.print(replay_table(outcome.summary))
    console.print(f"report: {outcome.report_dir / 'index.html'}")
    console.print("the replay's registry: ctloop models --replay; MLflow UI: ctloop ui --replay")


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


@app.command()
@friendly
def models(replay: ReplayOption = False, config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Registered versions with aliases and lineage tags."""
    from ctloop.adapters.registry import Registry

    settings = scoped_settings(config, replay)
    registry = Registry(settings)
    versions = registry.versions()
    if not versions:
        console.print(f"no versions of {settings.registry.model_name} yet: run `ctloop train`")
        return
    table = Table(title=f"{settings.registry.model_name} ({settings.tracking_uri})")
    for column in (
        "version",
        "aliases",
        "created",
        "window",
        "data sha256",
        "git sha",
        "feature service",
        "pipeline run",
    ):
        table.add_column(column)
    for v in versions:
        created = datetime.fromtimestamp(v.created_ms / 1000, tz=UTC).strftime("%m-%d %H:%M")
        table.add_row(
            v.version,
            ", ".join(v.aliases) or "—",
            created,
            v.tags.get("window", "—"),
            v.tags.get("data_sha256", "—")[:12],
            v.tags.get("git_sha", "—")[:12],
            v.tags.get("feature_service", "—"),
            v.tags.get("pipeline_run", "—"),
        )
    console.print(table)


@app.command()
@friendly
def promote(version: str, config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Point the `champion` alias at VERSION (the previous champion stays a version) and deploy it."""
    from ctloop.adapters.registry import Registry
    from ctloop.app.deploy import deploy

    settings = load_settings(config)
    previous = Registry(settings).promote(version)
    console.print(f"champion: v{version} (was {'v' + previous.version if previous else 'none'})")
    done = deploy(settings)  # locally a running `ctloop serve` swaps within swap_check_s; on a cluster: Seldon
    console.print(f"serving {'switched to' if done.switched else 'already at'} v{done.version}")


@app.command()
@friendly
def rollback(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Move `champion` back to the version the current champion was promoted from, and deploy it.

    The version left is marked rolled back and is never a rollback target again: a second
    rollback goes one promotion further back. `ctloop promote` of it lifts the mark.
    """
    from ctloop.app.deploy import rollback as roll_back

    done = roll_back(load_settings(config))
    console.print(f"champion: v{done.version} (rolled back from v{done.left})")
    state = "switched to" if done.deployed.switched else "already at"
    console.print(f"serving {state} v{done.deployed.version}")


@app.command()
@friendly
def deploy(
    alias: Annotated[str, typer.Option(help="Registry alias to serve.")] = "champion",
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Resolve ALIAS to a version and deploy it: the local serving link, or the cluster's SeldonDeployment."""
    from ctloop.app.deploy import deploy as deploy_to

    done = deploy_to(load_settings(config), alias)
    state = "switched to" if done.switched else "already at"
    console.print(f"serving {state} v{done.version} ({alias}): {done.path}")


def watch_for(settings: Settings) -> Any:
    """Where a monitoring pass reads and retrains, chosen once here.

    A cluster (``[monitor] prometheus_url``): Prometheus, the registry and the KFP server. This
    machine: serving's ``/metrics``, the serving folder, files and kfp.local.
    """
    from ctloop.app import monitor_pass

    if settings.monitor.prometheus_url:
        return monitor_pass.on_cluster(settings)
    from pipelines.local import LocalRetrainer

    return monitor_pass.on_this_machine(settings, LocalRetrainer())


@app.command()
@friendly
def monitor(
    now: Annotated[str, typer.Option(help="The monitor's clock (ISO date or time; default: now, UTC).")] = "",
    dry_run: Annotated[bool, typer.Option(help="Decide and record, but start no retrain.")] = False,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """One monitoring pass: drift and delayed-label performance from serving's metrics, the policy, maybe a retrain."""
    from ctloop.app.monitor_pass import monitor_pass

    settings = load_settings(config)
    clock = datetime.fromisoformat(now) if now else datetime.now(tz=UTC).replace(tzinfo=None)
    result = monitor_pass(settings, clock, watch_for(settings), dry_run=dry_run)
    d = result.decision
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


EXAMPLE_FLIGHT = {
    "origin": "JFK",
    "carrier": "B6",
    "tailnum": "N503JB",
    "dest": "BOS",
    "sched_dep": "2013-04-02T08:30:00",
    "distance": 187,
}


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
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Serve ALIAS on loopback: Redis, the Feast feature server and the Seldon microservice, until Ctrl-C."""
    import json
    import signal
    import time

    from ctloop.app.stack import Containers, serving_stack

    settings = load_settings(config)
    launcher = Containers(settings, settings.pipeline.image_tag or git_sha(settings.root)) if containers else None

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with ExitStack() as started:
        with console.status("starting Redis, feast serve and the Seldon microservice..."):
            stack = started.enter_context(serving_stack(settings, alias, launcher=launcher))
        body = json.dumps({"jsonData": {"flights": [EXAMPLE_FLIGHT]}})
        table = Table(
            title=f"serving {settings.registry.model_name} v{stack.model_version} ({alias})", show_header=False
        )
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
        try:
            while all(p.alive() for p in stack.processes):
                time.sleep(0.5)
            dead = next(p for p in stack.processes if not p.alive())
            raise UserError(f"{dead.name} stopped unexpectedly (log {dead.log_file}): {dead.tail(300)}")
        except KeyboardInterrupt:
            console.print("stopping...")
    console.print("stopped")


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


@pipeline_app.command("compile")
@friendly
def pipeline_compile(
    output: Annotated[Path, typer.Option(help="Where to write the KFP IR YAML.")],
    image_tag: Annotated[str, typer.Option(help="Platform image tag (default: settings, else git SHA).")] = "",
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Compile flight-delay-training to KFP IR YAML naming the platform image by tag."""
    settings = load_settings(config)
    sha = git_sha(settings.root)
    tag = image_tag or settings.pipeline.image_tag or sha
    image = f"{settings.pipeline.platform_image}:{tag}"
    os.environ["CTLOOP_PLATFORM_IMAGE"] = image  # read once by components/image.py at import
    if "components.image" in sys.modules:
        raise UserError("components were imported before the image was set; run compile in a fresh process")
    from kfp import compiler

    from pipelines.training import build

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build(settings, git_sha=sha, pipeline_version=sha), str(output))
    console.print(f"wrote {output} (image {image})")


HostOption = Annotated[
    str,
    typer.Option(
        help="KFP API, e.g. http://localhost:8080 (kubectl port-forward svc/ml-pipeline-ui -n kubeflow 8080:80)."
    ),
]
ShaOption = Annotated[str, typer.Option("--version", help="Pipeline version name (default: the checkout's git SHA).")]


@pipeline_app.command("upload")
@friendly
def pipeline_upload(
    host: HostOption,
    version: ShaOption = "",
    config: ConfigOption = Path("config/cluster.toml"),
) -> None:
    """Compile the pipeline for the platform image of VERSION (git SHA) and upload it as that version."""
    import tempfile

    from ctloop.adapters.kfp_client import Kfp

    settings = load_settings(config)
    sha = version or git_sha(settings.root)
    package = Path(tempfile.mkdtemp(prefix="ctloop-upload-")) / "pipeline.yaml"
    # compile in a fresh process: the image is read once by components/image.py at import
    cli = Path(sys.executable).parent / "ctloop"
    args = [str(cli), "pipeline", "compile", "--output", str(package), "--image-tag", sha, "--config", str(config)]
    compiled = subprocess.run(args, check=False, capture_output=True, text=True)
    if compiled.returncode:
        raise UserError(f"compiling the pipeline failed: {compiled.stderr.strip()[-300:]}")
    done = Kfp(host).upload(package, TRAINING_PIPELINE, sha, description=f"ctloop {sha[:12]}")
    state = "uploaded" if done.created else "already uploaded (nothing to do)"
    console.print(
        f"{TRAINING_PIPELINE} version {sha}: {state} (pipeline {done.pipeline_id}, version {done.version_id})"
    )


@pipeline_app.command("run")
@friendly
def pipeline_run(
    host: HostOption,
    version: ShaOption = "",
    start: StartOption = "2013-01-01",
    end: EndOption = "2013-03-31",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "ctloop",
    config: ConfigOption = Path("config/cluster.toml"),
) -> None:
    """Start a run of an uploaded pipeline version on a window."""
    from ctloop.adapters.kfp_client import Kfp

    settings = load_settings(config)
    sha = version or git_sha(settings.root)
    # this environment's settings, portable: the run resolves its paths in its pods
    params = {"start": start, "end": end, "settings_json": settings.to_json(portable=True)}
    run_id = Kfp(host).run(TRAINING_PIPELINE, sha, experiment, f"train-{start}-{end}", params)
    console.print(f"started run {run_id} of {TRAINING_PIPELINE} {sha[:12]} ({start}..{end})")


@pipeline_app.command("schedule")
@friendly
def pipeline_schedule(
    host: HostOption,
    cron: Annotated[str, typer.Option(help="KFP cron (6 fields, with seconds), e.g. '0 0 3 * * *'.")],
    version: ShaOption = "",
    start: StartOption = "2013-01-01",
    end: EndOption = "2013-03-31",
    name: Annotated[str, typer.Option(help="Recurring run name (one per name).")] = "flight-delay-nightly",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "ctloop",
    config: ConfigOption = Path("config/cluster.toml"),
) -> None:
    """Create or update the recurring run NAME for a pipeline version (the CT loop's fallback trigger)."""
    from ctloop.adapters.kfp_client import Kfp

    settings = load_settings(config)
    sha = version or git_sha(settings.root)
    params = {"start": start, "end": end, "settings_json": settings.to_json(portable=True)}
    run_id, changed = Kfp(host).schedule(TRAINING_PIPELINE, sha, experiment, name, cron, params)
    console.print(f"recurring run {name} ({run_id}): {'created' if changed else 'unchanged'}, cron {cron!r}")


@features_app.command("apply")
@friendly
def features_apply(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Register the Feast definitions of feature_repo/ in this environment's registry."""
    from ctloop.adapters import featurestore as fs

    settings = load_settings(config)
    names = fs.apply(fs.open_store(settings), fs.definitions(settings))
    console.print(f"applied {len(names)} objects: {', '.join(names)}")


@features_app.command("materialize")
@friendly
def features_materialize(
    start: StartOption = "2013-01-01", end: EndOption = "2013-03-31", config: ConfigOption = Path(DEFAULT_CONFIG)
) -> None:
    """Ingest a window, compute its feature tables and load the online store up to END."""
    from ctloop.app import pipeline_steps
    from ctloop.core import data

    settings = load_settings(config)
    window = data.Window.parse(start, end)
    folder = settings.data_dir / "snapshots" / f"{window.start}_{window.end}"
    result = data.ingest(window, settings.features.history_days, folder)
    with online_store(settings):
        counts = pipeline_steps.materialize(settings, folder, start, end)
    console.print(f"snapshot {result.sha256[:12]}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@features_app.command("load-online")
@friendly
def features_load_online(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Load the online store with the offline feature tables' whole span (the cluster's materialize CronJob)."""
    from ctloop.adapters import featurestore as fs

    settings = load_settings(config)
    start, end = fs.load_online(settings)
    console.print(f"online store loaded: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")


def main() -> None:
    """Console entry point."""
    app()
