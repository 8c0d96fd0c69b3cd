"""Local services on loopback: start, wait until ready, stop.

Redis runs with no persistence (``--save "" --appendonly no``): the online store is rebuilt by
materialization, never restored from disk.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A local service cannot be started or did not become ready."""


def free_port() -> int:
    """An unused loopback port (for services started by tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def redis_ping(port: int, timeout_s: float = 0.5) -> bool:
    """True when a Redis server answers PING on loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until(check: object, what: str, timeout_s: float, interval_s: float = 0.05) -> None:
    """Poll ``check()`` until it is true or raise :class:`ServiceError` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(interval_s)
    raise ServiceError(f"{what} not ready after {timeout_s:.0f} s")


@dataclass
class Redis:
    """A ``redis-server`` process on 127.0.0.1 that this process started (or None if reused)."""

    port: int
    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        """Stop the server if we started it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(port: int, workdir: Path, timeout_s: float = 10.0) -> Redis:
    """Start ``redis-server`` on loopback with no persistence, or reuse one already answering."""
    if redis_ping(port):
        log.info("reusing the Redis already answering on 127.0.0.1:%d", port)
        return Redis(port, None)
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("redis-server not found: run `make setup` (installs Debian's redis-server)")
    if port_open(port):
        raise ServiceError(f"port {port} is taken by something that is not Redis")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--protected-mode", "yes", "--loglevel", "warning"]
    log_file = workdir / "redis.log"
    with log_file.open("wb") as sink:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sink)
    redis = Redis(port, process)
    try:
        wait_until(lambda: redis_ping(port) or process.poll() is not None, "redis-server", timeout_s)
    except ServiceError:
        redis.stop()
        raise
    if process.poll() is not None:
        err = log_file.read_text(errors="replace").strip()
        raise ServiceError(f"redis-server exited on start: {err[-300:]}")
    return redis


@contextlib.contextmanager
def redis_running(port: int, workdir: Path) -> Iterator[Redis]:
    """Redis for the duration of a block; stopped afterwards only if this block started it."""
    redis = start_redis(port, workdir)
    try:
        yield redis
    finally:
        redis.stop()
