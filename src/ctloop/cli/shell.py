"""What every command shares: the Typer apps, consoles, settings, errors as one line, progress."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from ctloop.config import ConfigError, Settings

# Help is plain text (rich_markup_mode=None): settings sections such as "[replay]" in a help
# line are text, not console markup. Shell completion: `ctloop --install-completion`.
app = typer.Typer(
    help="Level-2 continuous training for flight-delay prediction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
pipeline_app = typer.Typer(
    help="Compile the training pipeline (and, on a cluster, upload it, submit runs and schedule them).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
features_app = typer.Typer(
    help="Feast: apply definitions, materialize the online store.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(features_app, name="features")

# Piped or redirected, stdout is as wide as its longest line: tables keep full values (no "…"),
# so `ctloop models | grep champion` finds them. A terminal wraps to its own width.
console = Console(width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("ctloop")

CONFIG_ENV = "CTLOOP_CONFIG"
DEFAULT_CONFIG = "config/local.toml"
ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="Settings file. A relative path missing from the working directory is looked for in the folders "
        "above it, as git finds its repository.",
        envvar=CONFIG_ENV,
        show_default=True,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (one document on stdout) instead of a table.")]
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
        from ctloop.pipelines.local import PipelineStepError

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


def find_config(config: Path, cwd: Path | None = None) -> Path:
    """The settings file: ``config`` as given, or, relative and missing here, the nearest one above.

    ``ctloop`` run from any folder of the project finds ``config/local.toml`` at its root.
    """
    here = (cwd or Path.cwd()).resolve()
    if (here / config).is_file():
        return config
    if config.is_absolute():
        raise ConfigError(
            f"settings file not found: {config}: pass --config (or set {CONFIG_ENV}) with an existing file"
        )
    for folder in here.parents:
        if (folder / config).is_file():
            return folder / config
    raise ConfigError(
        f"settings file not found: {config} (looked in {here} and every folder above it); run ctloop inside "
        f"the project, or pass --config FILE or set {CONFIG_ENV}"
    )


def load_settings(config: Path) -> Settings:
    """Settings from a file; the project root is the folder above ``config/``. Errors name the file."""
    path = find_config(config)
    try:
        return Settings.load(path)
    except ConfigError as exc:
        if str(path) in str(exc):
            raise
        raise ConfigError(f"{path}: {exc}") from None


def print_json(document: Any) -> None:
    """One JSON document on stdout, whole (no console wrapping, no markup)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def package_version() -> str:
    """The installed ``ctloop`` distribution's version (pyproject's ``[project] version``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ctloop")
    except PackageNotFoundError:
        return "unknown (not installed)"


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
    """Redis on loopback for the duration of a command (reused if ctloop already runs one there)."""
    from ctloop.adapters.services import redis_running

    with redis_running(settings.services.redis_port, settings.data_dir / "redis"):
        yield


def run_cli(args: list[str] | None = None) -> int:
    """Run the command line; a usage mistake (unknown option, bad value) is one ``error:`` line and 1.

    Click would print a usage block and exit 2; ``ctloop`` alone, or a group alone, prints its help.
    """
    # Typer vendors Click: its usage errors are public only as the base class TyperException
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    try:
        code = app(args=args, standalone_mode=False, prog_name="ctloop")
    except NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 0
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "ctloop"
        err.print(f"error: {exc.format_message()} (see `{where} --help`)", markup=False, highlight=False)
        return 1
    except typer.TyperException as exc:
        err.print(f"error: {exc.format_message()}", markup=False, highlight=False)
        return 1
    except typer.Abort:
        err.print("aborted", markup=False, highlight=False)
        return 130
    return code if isinstance(code, int) else 0


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


def task_bar(progress: Progress, label: str, tasks: int) -> tuple[TaskID, Callable[[str, str], None]]:
    """A bar of ``tasks`` steps named ``label``: its id, and the callback a local pipeline run reports its tasks to."""
    bar = progress.add_task(label, total=tasks)

    def on_event(task: str, event: str) -> None:
        if event == "started":
            progress.update(bar, description=f"{label}: {task}")
        else:
            progress.advance(bar)

    return bar, on_event


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"ctloop {package_version()}\n")
        raise typer.Exit


@app.callback()
def main_callback(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
    _version: Annotated[
        bool,
        typer.Option("--version", help="Print ctloop's version and exit.", callback=_show_version, is_eager=True),
    ] = False,
) -> None:
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
