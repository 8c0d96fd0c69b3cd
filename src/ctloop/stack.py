"""The local serving stack: Redis, the Feast feature server and the Seldon microservice, on loopback.

``serving_stack`` starts them in order, waits until each is ready (the microservice's readiness
includes a real online read through the feature server), and stops them all on exit, each in
its own process group so that gunicorn's and uvicorn's workers go with their master.

- Redis: ``services.start_redis`` (no persistence), loaded from the offline tables
  (``featurestore.load_online``).
- ``feast serve`` from the platform env: ``--workers N --max-requests 0`` (no worker recycling,
  which stalls and resets connections under load, NOTES.md), no access log.
- ``python -m serving.launch serving.model.FlightDelayModel`` from the serving env: Seldon's
  microservice bound to 127.0.0.1, gRPC off, our metrics in ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ctloop import services
from ctloop.config import Settings
from ctloop.services import ServiceError

log = logging.getLogger(__name__)

MODEL_CLASS = "serving.model.FlightDelayModel"


@dataclass
class Process:
    """A child process in its own session, with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_file: Path

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def tail(self, chars: int = 600) -> str:
        """The end of its log (for an error message)."""
        try:
            return self.log_file.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 3.0) -> None:
        """SIGINT the group (gunicorn's quick shutdown), then SIGKILL what is left after ``timeout_s``.

        Seldon 1.19's master never exits on its own once its workers are gone (a worker's exit hook
        waits on the metrics manager process that the same signal stopped), hence the short wait.
        Nothing is lost: serving holds no state, and our metrics live in the multiprocess files.
        """
        self.signal(signal.SIGINT)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait()
        with suppress(ProcessLookupError, PermissionError):  # workers that outlived their master
            os.killpg(self.popen.pid, signal.SIGKILL)


def spawn(name: str, args: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``args`` in a new session, output appended to ``<log_dir>/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}.log"
    with log_file.open("ab") as sink:
        popen = subprocess.Popen(
            list(args), stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=log_dir
        )
    return Process(name, popen, log_file)


def http_status(url: str, timeout_s: float = 1.0) -> int:
    """Status code of a GET on loopback, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URLs we built
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def wait_ready(process: Process, url: str, timeout_s: float) -> None:
    """Wait until ``url`` answers 200, failing early (with the log's tail) if the process dies."""

    def ready() -> bool:
        if not process.alive():
            raise ServiceError(f"{process.name} exited on start (log {process.log_file}):\n{process.tail()}")
        return http_status(url) == 200

    try:
        services.wait_until(ready, process.name, timeout_s, interval_s=0.25)
    except ServiceError as exc:
        if process.alive():
            raise ServiceError(f"{exc} ({url}; log {process.log_file}):\n{process.tail()}") from None
        raise


def require_free(ports: Sequence[int], what: str) -> None:
    """Refuse to start ``what`` on a loopback port something already answers on."""
    for port in ports:
        if services.port_open(port):
            raise ServiceError(f"port {port} ({what}) is taken: stop what runs there or change [serving]")


def launch(
    name: str, args: Sequence[str], log_dir: Path, env: dict[str, str], ready_url: str, timeout_s: float
) -> Process:
    """:func:`spawn`, then :func:`wait_ready`; the process is stopped if it never gets ready."""
    process = spawn(name, args, log_dir, env)
    try:
        wait_ready(process, ready_url, timeout_s)
    except BaseException:
        process.stop()
        raise
    return process


def start_feature_server(settings: Settings, port: int, workers: int, log_dir: Path) -> Process:
    """``feast serve`` over the rendered local config, ready when ``/health`` is 200."""
    from ctloop import featurestore as fs

    require_free((port,), "feature server")
    folder = fs.write_rendered_yaml(settings)
    feast = Path(sys.executable).parent / "feast"
    args = [str(feast), "-c", str(folder), "serve", "-h", "127.0.0.1", "-p", str(port)]
    args += ["--workers", str(workers), "--max-requests", "0", "--no-access-log"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(settings.root).resolve() / "src")])}
    ready = f"http://127.0.0.1:{port}/health"
    return launch("feature-server", args, log_dir, env, ready, settings.serving.ready_timeout_s)


def serving_python(settings: Settings) -> Path:
    """The serving env's interpreter (``make setup`` creates it)."""
    python = Path(settings.root).resolve() / settings.paths.serving_venv / "bin" / "python"
    if not python.exists():
        raise ServiceError(f"serving env missing ({python}): run `make setup`")
    return python


def start_seldon(
    python: Path,
    model_class: str,
    parameters: list[dict[str, str]],
    ports: tuple[int, int],
    workers: int,
    log_dir: Path,
    ready_timeout_s: float,
    extra_env: dict[str, str] | None = None,
) -> Process:
    """Seldon's microservice (``serving.launch``: bound to 127.0.0.1, gRPC off) for ``model_class``.

    Ready when ``/health/status`` answers 200; our metrics go to a fresh multiprocess folder.
    """
    rest_port, metrics_port = ports
    require_free(ports, "Seldon microservice")
    root = Path(__file__).resolve().parents[2]
    name = model_class.rsplit(".", 1)[-1]
    # one folder per microservice (by port): a second stack over the same data dir must not wipe this one's
    metrics_dir = log_dir / f"prometheus-multiproc-{name}-{rest_port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))},
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "src")]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "CTLOOP_BIND_HOST": "127.0.0.1",
        "GUNICORN_WORKERS": str(workers),
        "INCLUDE_METRICS_IN_CLIENT_RESPONSE": "false",
        "SELDON_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    args = [str(python), "-m", "serving.launch", model_class, "--service-type", "MODEL"]
    args += ["--http-port", str(rest_port), "--metrics-port", str(metrics_port), "--grpc-workers", "0"]
    args += ["--workers", str(workers), "--parameters", json.dumps(parameters)]
    return launch(f"seldon-{name}", args, log_dir, env, f"http://127.0.0.1:{rest_port}/health/status", ready_timeout_s)


def start_microservice(
    settings: Settings, model_dir: Path, feature_url: str, ports: tuple[int, int], log_dir: Path
) -> Process:
    """Our model class in the serving env, with the parameters of ``settings.serving``."""
    cfg = settings.serving
    return start_seldon(
        serving_python(settings),
        MODEL_CLASS,
        cfg.model_parameters(str(model_dir), feature_url),
        ports,
        cfg.workers,
        log_dir,
        cfg.ready_timeout_s,
    )


@dataclass(frozen=True)
class Stack:
    """Where the running stack answers."""

    rest_url: str
    metrics_url: str
    seldon_metrics_url: str
    feature_server_url: str
    redis: services.Redis
    model_version: str
    processes: tuple[Process, ...]


@contextmanager
def serving_stack(settings: Settings, alias: str = "champion", online_until: datetime | None = None) -> Iterator[Stack]:
    """Deploy ``alias``, start Redis, load it, start the feature server and the microservice; stop all after.

    ``online_until``: load the online store only with feature rows up to then (a replay's now).
    """
    from ctloop import featurestore as fs
    from ctloop.deploy import CURRENT, deploy_alias, serving_dir

    deployed = deploy_alias(settings, alias)
    cfg = settings.serving
    log_dir = settings.data_dir / "logs" / "serving"
    with ExitStack() as stack:
        redis = services.start_redis(settings.services.redis_port, settings.data_dir / "redis")
        stack.callback(redis.stop)
        fs.load_online(settings, online_until)
        feast = start_feature_server(settings, cfg.feature_server_port, cfg.feature_server_workers, log_dir)
        stack.callback(feast.stop)
        feature_url = f"http://127.0.0.1:{cfg.feature_server_port}"
        seldon = start_microservice(
            settings, serving_dir(settings) / CURRENT, feature_url, (cfg.rest_port, cfg.metrics_port), log_dir
        )
        stack.callback(seldon.stop)
        yield Stack(
            rest_url=f"http://127.0.0.1:{cfg.rest_port}",
            metrics_url=f"http://127.0.0.1:{cfg.rest_port}/metrics",
            seldon_metrics_url=f"http://127.0.0.1:{cfg.metrics_port}/metrics",
            feature_server_url=feature_url,
            redis=redis,
            model_version=deployed.version,
            processes=(feast, seldon),
        )
