"""Podman adapter: the only module that runs ``podman`` or serves its Docker-compatible API.

Locally, ctloop's containers are the cluster's pods in miniature: the images of this checkout
(``make images``), run as their non-root users, on the host's network so that they reach the
loopback services (Redis, the feature server) as pods reach Services. Podman reads ctloop's
``images/containers.conf`` (the runtime and the ulimits that a sandboxed root can grant).

Every container ctloop starts carries the label ``ctloop.owner`` = ``OWNER`` plus a run label, so
what a run started is removed when it ends, whatever way it ends.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

CONF_FILE = Path("images") / "containers.conf"
OWNER = "ctloop"
LABEL_OWNER = "ctloop.owner"
LABEL_RUN = "ctloop.run"
PLATFORM_UID = 10001
"""The platform image's user (``images/platform/Dockerfile``)."""
SERVING_UID = 8888
"""The serving image's user (``images/serving/Dockerfile``; Seldon's default)."""


class ContainerError(RuntimeError):
    """Podman is missing, its API does not answer, or an image is absent."""


class Podman:
    """``podman`` with ctloop's configuration, for one project root."""

    def __init__(self, root: Path) -> None:
        """Find podman; refuse with the command that installs it."""
        found = shutil.which("podman")
        if found is None:
            raise ContainerError("podman is not installed: run `make container-tools` (Debian's podman, buildah, runc)")
        self.binary = found
        self.env = dict(os.environ)
        conf = Path(root).resolve() / CONF_FILE
        if conf.is_file():
            self.env.setdefault("CONTAINERS_CONF", str(conf))
        self.rootless = os.geteuid() != 0

    def run(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``podman ARGS``, captured; never raises on a non-zero exit."""
        return subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def require_image(self, image: str) -> None:
        """Refuse an image that is not in podman's store, naming the target that builds it."""
        if self.run("image", "exists", image).returncode != 0:
            raise ContainerError(f"image {image} is not built: run `make images` (it tags the checkout's git SHA)")

    def user_args(self, uid: int) -> list[str]:
        """Run as the image's user ``uid`` with write access to folders the invoking user owns.

        Rootless podman maps the invoking user to ``uid`` (``keep-id``); rootful podman runs the
        uid as it is, so the caller hands it the folders it writes (:meth:`hand_over`).
        """
        if self.rootless:
            return [f"--userns=keep-id:uid={uid},gid={uid}"]
        return ["--user", f"{uid}:{uid}"]

    def hand_over(self, folders: list[Path], uid: int) -> None:
        """Rootful: give the folders a container writes to its user (root on the host keeps access)."""
        if self.rootless:
            return
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            closed = [p for p in folder.resolve().parents if not p.stat().st_mode & 0o001]
            if closed:
                reason = f"{closed[0]} is closed to other users"
                raise ContainerError(f"{reason}: the containers' user cannot reach {folder}")
            for path in (folder, *folder.rglob("*")):
                with contextlib.suppress(FileNotFoundError):
                    os.lchown(path, uid, uid)

    def remove_labelled(self, run_id: str) -> int:
        """Remove every container of run ``run_id`` (running or not); return how many there were."""
        listed = self.run("ps", "-aq", "--filter", f"label={LABEL_RUN}={run_id}")
        ids = listed.stdout.split()
        if ids:
            self.run("rm", "-f", "-t", "2", *ids)
        return len(ids)


def new_run_id() -> str:
    """A label value for one run's containers."""
    return uuid.uuid4().hex[:12]


def labels(run_id: str) -> dict[str, str]:
    """The labels of a container ctloop starts for run ``run_id``."""
    return {LABEL_OWNER: OWNER, LABEL_RUN: run_id}


def _ping(sock: Path, timeout_s: float = 1.0) -> bool:
    """True when the Docker-compatible API on ``sock`` answers ``/_ping`` with OK."""
    conn = http.client.HTTPConnection("localhost", timeout=timeout_s)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.sock.settimeout(timeout_s)
        conn.sock.connect(str(sock))
        conn.request("GET", "/_ping")
        response = conn.getresponse()
        return response.status == 200 and response.read().strip() == b"OK"
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def docker_api(podman: Podman, folder: Path, timeout_s: float = 20.0) -> Iterator[str]:
    """Podman's Docker-compatible API on a socket of our own; yields its ``DOCKER_HOST`` value.

    The service runs only while the context is open; it is stopped (its whole process group)
    on exit. A socket that does not answer within ``timeout_s`` is an error, not a hang.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sock = folder / "podman.sock"
    sock.unlink(missing_ok=True)
    log_file = folder / "podman-service.log"
    with log_file.open("ab") as sink:
        service = subprocess.Popen(
            [podman.binary, "system", "service", "--time=0", f"unix://{sock}"],
            env=podman.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not _ping(sock):
            if service.poll() is not None:
                tail = log_file.read_text(errors="replace")[-400:].strip()
                raise ContainerError(f"podman's API service exited on start (log {log_file}): {tail}")
            if time.monotonic() > deadline:
                raise ContainerError(f"podman's API socket {sock} did not answer within {timeout_s:.0f} s")
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pid, signal.SIGKILL)
            service.wait()
        sock.unlink(missing_ok=True)
