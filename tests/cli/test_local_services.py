"""Set-up and local services have no side effects: no system service, no write into a Redis ctloop did not start."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctloop.adapters import services
from tests.cli.test_cli import ctloop, project
from tests.conftest import ROOT, promtool


def resp(port: int, *words: str) -> str:
    """One Redis command on loopback, its raw reply."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(services.resp_command(*words))
        return sock.recv(4096).decode()


@pytest.fixture
def foreign_redis(tmp_path) -> Iterator[int]:
    """A Redis that is not ctloop's (its own folder, no ctloop mark), holding a key of its owner."""
    binary = services.redis_binary()
    assert binary, "redis-server missing: run `make setup`"
    port = services.free_port()
    folder = tmp_path / "someone-else"
    folder.mkdir()
    args = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        services.wait_until(lambda: services.redis_ping(port), "the foreign redis-server", 10)
        assert resp(port, "SET", "owner", "someone-else") == "+OK\r\n"
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_redis_ctloop_did_not_start_is_refused_with_one_line(tmp_path, foreign_redis):
    """`ctloop train` on a port where another program's Redis answers: one `error:` line, exit 1, nothing written."""
    config = project(tmp_path, f"[services]\nredis_port = {foreign_redis}\n")
    done = ctloop("train", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "a Redis that ctloop did not start" in done.stderr
    assert "[services] redis_port" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert resp(foreign_redis, "DBSIZE") == ":1\r\n"  # its owner's key only
    with pytest.raises(services.ServiceError, match="did not start"):
        services.start_redis(foreign_redis, tmp_path / "ours")


def test_a_redis_ctloop_started_is_reused(tmp_path):
    """A second command on the same port shares the Redis ctloop started (its folder carries ctloop's mark)."""
    port = services.free_port()
    first = services.start_redis(port, tmp_path / "redis")
    try:
        assert first.process is not None and services.redis_is_ours(port)
        second = services.start_redis(port, tmp_path / "other")
        assert second.process is None  # reused, and stopping it leaves the first running
        second.stop()
        assert services.redis_ping(port)
    finally:
        first.stop()


def test_setup_installs_no_debian_package_that_starts_a_service():
    """`make setup`'s Debian packages ship no systemd unit or init script; promtool comes alone into the venv."""
    makefile = (ROOT / "Makefile").read_text()
    packages = re.search(r"^APT_PACKAGES := (.*)$", makefile, re.MULTILINE)
    assert packages
    for package in packages.group(1).split():
        listing = ["dpkg", "-L", package]
        files = subprocess.run(listing, capture_output=True, text=True, check=True).stdout.split()
        units = [f for f in files if "/systemd/system/" in f or f.startswith("/etc/init.d/")]
        assert not units, f"{package} installs a service: {units}"
    assert Path(promtool()).parent == ROOT / ".venv" / "bin"
    version = subprocess.run([promtool(), "--version"], capture_output=True, text=True, check=True)
    assert "promtool" in version.stdout + version.stderr
