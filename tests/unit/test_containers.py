"""The podman adapter's refusals: one readable error naming what to run, never a hang or a leftover.

A stand-in ``podman`` (a shell script first on PATH) plays each broken case, so these run with
or without a real podman; `make e2e-local` runs the real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctloop.adapters import containers
from tests.conftest import ROOT

CTLOOP = str(Path(sys.executable).parent / "ctloop")


def fake_podman(folder: Path, script: str) -> dict[str, str]:
    """An environment whose PATH starts with a ``podman`` running ``script`` (sh)."""
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "podman"
    binary.write_text(f"#!/bin/sh\n{script}\n")
    binary.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_a_missing_podman_names_the_target_that_installs_it(monkeypatch, tmp_path):
    """No podman on PATH: ContainerError pointing at `make container-tools`."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(containers.ContainerError, match="make container-tools"):
        containers.Podman(ROOT)


def test_an_absent_image_names_make_images(monkeypatch, tmp_path):
    """`podman image exists` says no: ContainerError naming the image and `make images`."""
    monkeypatch.setattr(os, "environ", fake_podman(tmp_path, "exit 1"))
    with pytest.raises(containers.ContainerError, match=r"image example/x:1 is not built: run `make images`"):
        containers.Podman(ROOT).require_image("example/x:1")


def test_an_api_socket_that_never_answers_is_an_error_not_a_hang(monkeypatch, tmp_path):
    """A service that never opens its socket: an error after the timeout, and the service is gone."""
    pid_file = tmp_path / "service.pid"
    monkeypatch.setattr(os, "environ", fake_podman(tmp_path / "bin", f"echo $$ > {pid_file}; exec sleep 60"))
    podman = containers.Podman(ROOT)
    began = time.monotonic()
    with (
        pytest.raises(containers.ContainerError, match="did not answer within 1 s"),
        containers.docker_api(podman, tmp_path / "api", timeout_s=1.0),
    ):
        pass
    assert time.monotonic() - began < 10
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_api_service_that_exits_shows_its_log(monkeypatch, tmp_path):
    """A service that dies on start: the error carries what it printed."""
    monkeypatch.setattr(os, "environ", fake_podman(tmp_path / "bin", "echo 'cannot start: no runtime' >&2; exit 125"))
    with (
        pytest.raises(containers.ContainerError, match="no runtime"),
        containers.docker_api(containers.Podman(ROOT), tmp_path / "api", timeout_s=5.0),
    ):
        pass


def test_the_config_file_reaches_podman(monkeypatch, tmp_path):
    """Podman runs with ctloop's containers.conf (runc, ulimits) unless the caller chose another."""
    monkeypatch.setattr(os, "environ", fake_podman(tmp_path, 'echo "$CONTAINERS_CONF"'))
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    assert containers.Podman(ROOT).run("info").stdout.strip() == str(ROOT / "images" / "containers.conf")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runner", "container"], "is not built: run `make images`"),
        (["--runner", "pods"], "--runner must be subprocess or container"),
    ],
)
def test_train_refuses_with_one_error_line(tmp_path, args, message):
    """`ctloop train` with an absent image or an unknown runner: one error line, exit 1, no traceback."""
    env = fake_podman(tmp_path, "exit 1")
    done = subprocess.run(
        [CTLOOP, "train", "--start", "2013-01-01", "--end", "2013-01-31", *args],
        cwd=ROOT,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr
