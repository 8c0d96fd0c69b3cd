"""What every command shares: the Typer apps, consoles, settings, errors as one line, progress."""

from __future__ import annotations

import logging
import subprocess
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ctloop.config import ConfigError, Settings

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
