"""kfp.local adapter: run a KFP pipeline function on this machine, its tasks as processes or containers.

Two runners, chosen by the caller (``[pipeline] local_runner`` or ``--runner``):

- ``subprocess``: each task is a process of the platform venv (``SubprocessRunner(use_venv=False)``),
  fast, what the tests use. With ``[pipeline] warm_tasks`` (the default) each task's process is
  forked from a zygote that has already imported the libraries the tasks use (``preload``), instead
  of importing them anew (:mod:`ctloop.adapters.warm_tasks`); one zygote serves every run of the
  process that started it;
- ``container``: each task runs in the platform image of this checkout (``make images``) through
  kfp.local's ``DockerRunner`` over podman's Docker-compatible API, as the image's non-root
  user, on the host's network (Redis on loopback, as a pod reaches its Service). The data
  folder (the offline store, the MLflow store, the pipeline root) is mounted at its own path.

Task output goes to a log file; a callback sees each task start and finish (for a progress
display), and each task's peak memory is read from the line it prints at exit. The pipeline
itself is the caller's (``ctloop.pipelines``): this module knows kfp.local, not ctloop's pipelines.
At module level only the standard library and the settings are imported (a task process reads
``PEAK_MEMORY_MARK``).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctloop.config import Settings

if TYPE_CHECKING:
    from ctloop.adapters import warm_tasks

RUNNERS = ("subprocess", "container")
IMAGE_WORKDIR = "/app"
"""The platform image's working directory: its ``config/`` and ``feature_repo/`` (the settings' root)."""
PEAK_MEMORY_MARK = "ctloop task peak memory (MiB):"
"""What a task prints at exit, followed by its peak resident memory."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EVENT = re.compile(
    r"(Executing task '(?P<start>[\w-]+)')|(Task '(?P<done>[\w-]+)' finished with status (?P<status>\w+))"
)
_ERROR = re.compile(r"^\s*(?:[\w.]+\.)?(?P<kind>\w*(?:Error|Exception)): (?P<msg>.*)$")
_PEAK = re.compile(re.escape(PEAK_MEMORY_MARK) + r"\s*(?P<mib>\d+)")

Callback = Callable[[str, str], None]
"""Called with (task, event) where event is ``started``, ``SUCCESS`` or ``FAILURE``."""


class PipelineStepError(RuntimeError):
    """A task failed; the message is the task's own error, readable."""

    def __init__(self, task: str, detail: str, log_path: Path) -> None:
        """Record the failed task, its error and the log holding the rest."""
        self.task, self.detail, self.log_path = task, detail, log_path
        super().__init__(f"step {task!r} failed: {detail}")


@dataclass
class LocalRun:
    """A finished local run: where its artifacts are and what they say."""

    job_dir: Path
    log_path: Path
    seconds: float
    tasks: list[str] = field(default_factory=list)
    peak_mib: dict[str, int] = field(default_factory=dict)
    """Each task's peak resident memory, MiB (as the task printed it at exit)."""

    def _read(self, task: str, name: str) -> str | None:
        path = self.job_dir / task / name
        return path.read_text() if path.is_file() else None

    @property
    def job_name(self) -> str:
        """KFP's name for the run (also the ``pipeline_run`` lineage tag)."""
        return self.job_dir.name

    def output(self, task: str) -> str | None:
        """A task's returned value (``Output``), if it ran."""
        value = self.executor_output(task).get("parameterValues", {}).get("Output")
        return None if value is None else str(value)

    def evaluation(self) -> dict[str, Any] | None:
        """The evaluation document."""
        text = self._read("evaluate", "evaluation")
        return json.loads(text) if text else None

    def executor_output(self, task: str) -> dict[str, Any]:
        """A task's executor output (artifact metadata, metrics)."""
        text = self._read(task, "executor_output.json")
        return json.loads(text) if text else {}

    def artifact_metadata(self, task: str, name: str) -> dict[str, Any]:
        """Metadata a task recorded on an output artifact."""
        artifacts = self.executor_output(task).get("artifacts", {}).get(name, {}).get("artifacts", [])
        return dict(artifacts[0].get("metadata", {})) if artifacts else {}


class TaskLog(io.TextIOBase):
    """A stdout stand-in: appends to the log file, reports task events and each task's peak memory."""

    def __init__(
        self, file: io.TextIOBase, callback: Callback | None, seen: list[str], peaks: dict[str, int] | None = None
    ) -> None:
        """Write to ``file``; ``seen`` gets each started task, ``peaks`` each task's peak memory."""
        self.file, self.callback, self.seen, self.buffer_ = file, callback, seen, ""
        self.peaks = peaks if peaks is not None else {}

    def write(self, text: str) -> int:
        """Log ``text``; act on each complete line."""
        self.file.write(text)
        self.buffer_ += text
        while "\n" in self.buffer_:
            line, self.buffer_ = self.buffer_.split("\n", 1)
            plain = _ANSI.sub("", line)
            match = _EVENT.search(plain)
            peak = _PEAK.search(plain)
            if peak and self.seen:
                self.peaks[self.seen[-1]] = int(peak["mib"])
            if match and match["start"]:
                self.seen.append(match["start"])
                if self.callback:
                    self.callback(match["start"], "started")
            elif match and match["done"] and self.callback:
                self.callback(match["done"], match["status"])
        return len(text)

    def flush(self) -> None:
        """Flush the log file."""
        self.file.flush()


def error_detail(log_text: str) -> str:
    """The last exception message in a task log, with its continuation lines."""
    lines = _ANSI.sub("", log_text).splitlines()
    for i in range(len(lines) - 1, -1, -1):
        match = _ERROR.match(lines[i])
        if match and "finished with status" not in lines[i]:
            block = [f"{match['kind']}: {match['msg']}"]
            for extra in lines[i + 1 : i + 12]:
                if not extra.strip() or " - INFO - " in extra or " - ERROR - " in extra or PEAK_MEMORY_MARK in extra:
                    break
                block.append(extra.strip())
            return "\n".join(block)
    return "see the log"


@contextlib.contextmanager
def task_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the task subprocesses kfp.local starts, then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_container(client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any) -> int:
    """Run one task's container to its end; return its exit code (1 on any error of the engine).

    kfp's own ``run_docker_container`` removes the container as it exits (``auto_remove``) and
    then asks for its exit code: podman answers that request with a 500 for a removed container,
    and where kfp hears "not found" it reports success, so a failed task could pass. Here the
    container stays until its code is read; the run removes its containers when it ends.
    """
    import docker

    try:
        client.images.get(image)  # present (checked before the run): never pulled here
        container = client.containers.run(
            image=image, command=command, detach=True, volumes=volumes, auto_remove=False, **run_args
        )
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    except docker.errors.DockerException as exc:
        print(f"ContainerError: {exc}")
        return 1


@contextlib.contextmanager
def container_runner(settings: Settings, git_sha: str) -> Iterator[tuple[Any, Settings, str]]:
    """The DockerRunner over podman for this checkout's platform image; yields (runner, task settings, image).

    kfp.local's Docker task handler opens a new API client for every task and asks the engine
    for its version and host information each time: podman answers each in about half a second,
    a second of every task spent before its container starts. Here one client serves the run,
    asked once, and each task's container is run by :func:`_run_container`.
    """
    import docker
    from kfp import local
    from kfp.local import docker_task_handler, status

    from ctloop.adapters import containers

    podman = containers.Podman(Path(settings.root))
    image = f"{settings.pipeline.platform_image}:{settings.pipeline.image_tag or git_sha}"
    podman.require_image(image)
    data = settings.data_dir
    podman.hand_over([data], containers.PLATFORM_UID)
    mounts = {str(data): {"bind": str(data), "mode": "rw"}}
    source = settings.source_path
    if source:
        mounts[source] = {"bind": source, "mode": "ro"}
    # the image's own code and Feast definitions; this checkout's data folder at its own path
    paths = dataclasses.replace(settings.paths, data_dir=str(data), source_dir=source)
    task_settings = settings.replace(root=IMAGE_WORKDIR, paths=paths)
    run_id = containers.new_run_id()
    user = podman.user_args(containers.PLATFORM_UID)[-1]
    user_arg = {"userns_mode": user.split("=", 1)[1]} if podman.rootless else {"user": user}
    runner = local.DockerRunner(network_mode="host", labels=containers.labels(run_id), **user_arg)
    kfp_run = docker_task_handler.DockerTaskHandler.run

    with containers.docker_api(podman, data / "podman") as docker_host, task_env({"DOCKER_HOST": docker_host}):
        client = docker.DockerClient(base_url=docker_host)
        relabel = "name=selinux" in client.info().get("SecurityOptions", [])

        def run_task(handler: Any) -> Any:
            volumes = handler.get_volumes_to_mount()  # the pipeline root (kfp.local's own layout)
            podman.hand_over([Path(folder) for folder in volumes], containers.PLATFORM_UID)  # the run's new folders
            every = {**volumes, **mounts}
            if relabel:
                every = {host: {**spec, "mode": spec["mode"] + ",z"} for host, spec in every.items()}
            args = dict(handler.runner.container_run_args)
            if handler.env_vars:
                args["environment"] = handler.env_vars
            code = _run_container(client, handler.image, handler.full_command, every, **args)
            return status.Status.SUCCESS if code == 0 else status.Status.FAILURE

        docker_task_handler.DockerTaskHandler.run = run_task
        try:
            yield runner, task_settings, image
        finally:
            docker_task_handler.DockerTaskHandler.run = kfp_run
            client.close()
            podman.remove_labelled(run_id)


_zygote: warm_tasks.Zygote | None = None
"""This process's zygote (:mod:`ctloop.adapters.warm_tasks`), started by the first run that wants one."""


def _warm_zygote(preload: Sequence[str], env: dict[str, str]) -> warm_tasks.Zygote:
    """The process's zygote, started now (imports ``preload``, tasks' ``env``) unless one is running."""
    global _zygote  # noqa: PLW0603 (one zygote per process, for every run it makes)
    from ctloop.adapters import warm_tasks

    if _zygote is None or _zygote.process.poll() is not None:
        _zygote = warm_tasks.Zygote(preload, {**os.environ, **env})
        atexit.register(_zygote.close)
    return _zygote


@contextlib.contextmanager
def subprocess_runner(
    settings: Settings, preload: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[tuple[Any, Settings, str]]:
    """kfp.local's SubprocessRunner in this venv (tasks forked warm if set); yields (runner, settings, "")."""
    from kfp import local

    runner = local.SubprocessRunner(use_venv=False)
    if not settings.pipeline.warm_tasks:
        yield runner, settings, ""
        return
    from ctloop.adapters import warm_tasks

    with warm_tasks.patched_subprocess_runner(_warm_zygote(preload, env or {})):
        yield runner, settings, ""


@contextlib.contextmanager
def _capture(log_path: Path, sink: TaskLog) -> Iterator[None]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as file:
        sink.file = file
        with contextlib.redirect_stdout(sink):
            yield


PipelineBuilder = Callable[[str], Callable[..., Any]]
"""Given the image every task should run (empty: the components' own), the pipeline function."""
Arguments = Callable[[Settings], dict[str, Any]]
"""Given the settings the tasks see (paths as inside a container, if so), the run's arguments."""


def run_pipeline(
    settings: Settings,
    build: PipelineBuilder,
    arguments: Arguments,
    *,
    log_name: str,
    env: dict[str, str],
    runner: str = "",
    git_sha: str = "unknown",
    callback: Callback | None = None,
    preload: Sequence[str] = (),
) -> LocalRun:
    """Run a pipeline function through kfp.local; raise :class:`PipelineStepError` on a failed step.

    ``runner``: ``subprocess`` or ``container`` (empty: ``[pipeline] local_runner``). Artifacts go
    under ``<data_dir>/kfp``, the tasks' output to ``<data_dir>/logs/<log_name>-<time>.log``;
    ``env`` is set for every task. ``preload``: the modules the tasks import, for a warm zygote.
    """
    from kfp import local

    kind = runner or settings.pipeline.local_runner
    if kind not in RUNNERS:
        raise ValueError(f"unknown runner {kind!r}: one of {', '.join(RUNNERS)}")
    root = settings.data_dir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    log_path = settings.data_dir / "logs" / f"{log_name}-{time.time_ns()}.log"
    seen: list[str] = []
    peaks: dict[str, int] = {}
    sink = TaskLog(io.StringIO(), callback, seen, peaks)
    began = time.perf_counter()
    failure: RuntimeError | None = None
    chosen = container_runner(settings, git_sha) if kind == "container" else subprocess_runner(settings, preload, env)
    with (
        chosen as (task_runner, task_settings, image),
        _capture(log_path, sink),
        warnings.catch_warnings(),
        task_env(env),
    ):
        local.init(runner=task_runner, pipeline_root=str(root), raise_on_error=True)
        pipeline = build(image)
        # the platform venv is what the platform image holds: running its functions here is intended
        warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")
        # display names, caching options: cluster-only settings kfp.local reports as ignored
        warnings.filterwarnings("ignore", message=r"Task '.*': settings .* have no effect in the current local runner")
        try:
            pipeline(**arguments(task_settings))
        except RuntimeError as exc:
            failure = exc
    if failure is not None:  # a task that failed before writing an output leaves no run folder
        task = seen[-1] if seen else "pipeline"
        raise PipelineStepError(task, error_detail(log_path.read_text()), log_path)
    created = sorted((p for p in root.iterdir() if p.name not in before), key=lambda p: p.stat().st_mtime)
    if not created:
        raise PipelineStepError("pipeline", "no run folder was created", log_path)
    return LocalRun(created[-1], log_path, time.perf_counter() - began, seen, peaks)
