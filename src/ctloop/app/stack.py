"""The local serving stack: Redis, the Feast feature server and the Seldon microservice, on loopback.

``serving_stack`` starts them in order, waits until each is ready (the microservice's readiness
includes a real online read through the feature server), and stops them all on exit, each in
its own process group so that gunicorn's and uvicorn's workers go with their master.

- Redis: ``services.start_redis`` (no persistence), loaded from the offline tables
  (``featurestore.load_online``).
- ``feast serve`` from the platform env: ``--workers N --max-requests 0`` (no worker recycling,
  which stalls and resets connections under load), no access log.
- ``python -m serving.launch serving.model.FlightDelayModel`` from the serving env: Seldon's
  microservice bound to 127.0.0.1, gRPC off, our metrics in ``PROMETHEUS_MULTIPROC_DIR``.

How the feature server and the microservice run is chosen once, by the caller: as processes of
the two venvs (:class:`Processes`, the default) or in the images of this checkout
(:class:`Containers`: ``ctloop serve --containers``), as a cluster runs them.
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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ctloop.adapters import services
from ctloop.adapters.services import ServiceError
from ctloop.config import Settings

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
    from ctloop.adapters import featurestore as fs

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
    root = Path(__file__).resolve().parents[3]
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


class Launcher(Protocol):
    """Starts the feature server and the microservice of a stack."""

    def feature_server(self, settings: Settings, port: int, workers: int, log_dir: Path) -> Process:
        """``feast serve`` on loopback ``port``, ready."""

    def microservice(
        self, settings: Settings, model_dir: Path, feature_url: str, ports: tuple[int, int], log_dir: Path
    ) -> Process:
        """The model's Seldon microservice on loopback ``ports`` (REST, metrics), ready."""


class Processes:
    """Both as processes: ``feast serve`` of the platform venv, Seldon of the serving venv."""

    def feature_server(self, settings: Settings, port: int, workers: int, log_dir: Path) -> Process:
        """:func:`start_feature_server`."""
        return start_feature_server(settings, port, workers, log_dir)

    def microservice(
        self, settings: Settings, model_dir: Path, feature_url: str, ports: tuple[int, int], log_dir: Path
    ) -> Process:
        """:func:`start_microservice`."""
        return start_microservice(settings, model_dir, feature_url, ports, log_dir)


@dataclass
class ContainerProcess(Process):
    """``podman run`` in the foreground: signals reach the container; stopping also removes it."""

    remove: Sequence[str] = ()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop as a process, then remove the container if it outlived its client."""
        super().stop(timeout_s)
        subprocess.run(list(self.remove), capture_output=True, check=False, timeout=30)


class Containers:
    """Both in the images of this checkout (``make images``), as a cluster runs them.

    The feature server runs in the platform image, the microservice in the serving image with a
    read-only root file system (``/tmp`` in memory, as the pod's emptyDir); each as its image's
    non-root user, on the host's network bound to loopback. The model folder is mounted
    read-only at its own path, so a promotion (a new ``current`` link) swaps the served model.
    """

    def __init__(self, settings: Settings, tag: str) -> None:
        """The images ``<platform_image>:tag`` and its serving sibling; refuse absent ones."""
        from ctloop.adapters import containers

        self.podman = containers.Podman(Path(settings.root))
        base = settings.pipeline.platform_image
        self.platform = f"{base}:{tag}"
        self.serving = f"{base.rsplit('/', 1)[0]}/serving:{tag}"
        for image in (self.platform, self.serving):
            self.podman.require_image(image)
        self.run_id = containers.new_run_id()

    def _start(
        self, name: str, image: str, uid: int, argv: list[str], mounts: dict[Path, str], extra: list[str], log_dir: Path
    ) -> ContainerProcess:
        from ctloop.adapters import containers

        container = f"ctloop-{name}-{self.run_id}"
        args = [self.podman.binary, "run", "--rm", "--name", container, "--network", "host"]
        args += [f"--label={k}={v}" for k, v in containers.labels(self.run_id).items()]
        args += self.podman.user_args(uid) + extra
        args += [arg for path, mode in mounts.items() for arg in ("-v", f"{path}:{path}:{mode}")]
        process = spawn(name, [*args, image, *argv], log_dir, self.podman.env)
        return ContainerProcess(
            process.name, process.popen, process.log_file, [self.podman.binary, "rm", "-f", "-t", "2", container]
        )

    def feature_server(self, settings: Settings, port: int, workers: int, log_dir: Path) -> Process:
        """``feast serve`` in the platform image over the rendered config (registry mounted read-only)."""
        from ctloop.adapters import containers
        from ctloop.adapters import featurestore as fs
        from ctloop.adapters.offline_store import feast_dir

        require_free((port,), "feature server")
        folder = fs.write_rendered_yaml(settings)
        argv = ["feast", "-c", str(folder), "serve", "-h", "127.0.0.1", "-p", str(port)]
        argv += ["--workers", str(workers), "--max-requests", "0", "--no-access-log"]
        mounts = {feast_dir(settings): "ro"}
        process = self._start("feature-server", self.platform, containers.PLATFORM_UID, argv, mounts, [], log_dir)
        return _ready_or_stopped(process, f"http://127.0.0.1:{port}/health", settings.serving.ready_timeout_s)

    def microservice(
        self, settings: Settings, model_dir: Path, feature_url: str, ports: tuple[int, int], log_dir: Path
    ) -> Process:
        """Seldon's microservice in the serving image, root file system read-only."""
        from ctloop.adapters import containers

        rest_port, metrics_port = ports
        require_free(ports, "Seldon microservice")
        cfg = settings.serving
        argv = ["python", "-m", "serving.launch", MODEL_CLASS, "--service-type", "MODEL"]
        argv += ["--http-port", str(rest_port), "--metrics-port", str(metrics_port), "--grpc-workers", "0"]
        argv += [
            "--workers",
            str(cfg.workers),
            "--parameters",
            json.dumps(cfg.model_parameters(str(model_dir), feature_url)),
        ]
        # the container's own /tmp, in memory (the pod's emptyDir), not the host's
        extra = ["--read-only", "--tmpfs", "/tmp:rw,size=256m"]  # noqa: S108  # nosec B108 - not a host path
        extra += ["-e", "CTLOOP_BIND_HOST=127.0.0.1", "-e", f"GUNICORN_WORKERS={cfg.workers}"]
        mounts = {model_dir.parent.resolve(): "ro"}
        process = self._start("seldon", self.serving, containers.SERVING_UID, argv, mounts, extra, log_dir)
        return _ready_or_stopped(process, f"http://127.0.0.1:{rest_port}/health/status", cfg.ready_timeout_s)


def _ready_or_stopped(process: ContainerProcess, url: str, timeout_s: float) -> Process:
    try:
        wait_ready(process, url, timeout_s)
    except BaseException:
        process.stop()
        raise
    return process


def _started(starting: list[Future[Process]], stack: ExitStack, quiet: bool = False) -> list[Process]:
    """Wait for every start; each server that started stops with ``stack``; then the first failure is raised."""
    processes: list[Process] = []
    failure: BaseException | None = None
    for future in starting:
        try:
            process = future.result()
        except BaseException as exc:
            failure = failure or exc
            continue
        stack.callback(process.stop)
        processes.append(process)
    if failure is not None and not quiet:
        raise failure
    return processes


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
def serving_stack(
    settings: Settings,
    alias: str = "champion",
    online_until: datetime | None = None,
    launcher: Launcher | None = None,
) -> Iterator[Stack]:
    """Deploy ``alias``, start Redis, load it, start the feature server and the microservice; stop all after.

    ``online_until``: load the online store only with feature rows up to then (a replay's now).
    ``launcher``: how the two servers run (default :class:`Processes`).
    """
    servers = launcher or Processes()
    from ctloop.adapters import featurestore as fs
    from ctloop.app.deploy import deploy_alias
    from ctloop.contract.layout import CURRENT, serving_dir

    deployed = deploy_alias(settings, alias)
    cfg = settings.serving
    log_dir = settings.data_dir / "logs" / "serving"
    feature_url = f"http://127.0.0.1:{cfg.feature_server_port}"
    with ExitStack() as stack:
        redis = services.start_redis(settings.services.redis_port, settings.data_dir / "redis")
        stack.callback(redis.stop)
        # the two servers start side by side while Redis is loaded (the microservice is ready once the
        # feature server answers a real online read, which needs no row in the store)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="start") as pool:
            starting = [
                pool.submit(
                    servers.feature_server, settings, cfg.feature_server_port, cfg.feature_server_workers, log_dir
                ),
                pool.submit(
                    servers.microservice,
                    settings,
                    serving_dir(settings.data_dir) / CURRENT,
                    feature_url,
                    (cfg.rest_port, cfg.metrics_port),
                    log_dir,
                ),
            ]
            try:
                fs.load_online(settings, online_until)
            except BaseException:
                _started(starting, stack, quiet=True)
                raise
            feast, seldon = _started(starting, stack)
        yield Stack(
            rest_url=f"http://127.0.0.1:{cfg.rest_port}",
            metrics_url=f"http://127.0.0.1:{cfg.rest_port}/metrics",
            seldon_metrics_url=f"http://127.0.0.1:{cfg.metrics_port}/metrics",
            feature_server_url=feature_url,
            redis=redis,
            model_version=deployed.version,
            processes=(feast, seldon),
        )
