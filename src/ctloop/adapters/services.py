"""Local services on loopback: start, wait until ready, stop.

Redis runs with no persistence (``--save "" --appendonly no``): the online store is rebuilt by
materialization, never restored from disk. A Redis that ctloop starts works in a folder holding
:data:`OWNER_MARK`; one already answering on the port is reused only when its folder holds it too,
so Feast never writes into another program's Redis.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ctloop.config import Settings

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A local service cannot be started or did not become ready."""


def free_port() -> int:
    """An unused loopback port (for services started by tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def own_ports(settings: Settings) -> Settings:
    """``settings`` with unused loopback ports for Redis and the serving stack: a stack beside any other."""
    return settings.replace(
        services=replace(settings.services, redis_port=free_port()),
        serving=replace(
            settings.serving, rest_port=free_port(), metrics_port=free_port(), feature_server_port=free_port()
        ),
    )


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


OWNER_MARK = "ctloop-online-store"
"""A file in the working folder (``--dir``) of every ``redis-server`` that ctloop starts."""


def resp_command(*words: str) -> bytes:
    """A Redis command in the protocol's own encoding (RESP: an array of bulk strings)."""
    return f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words)


def redis_dir(port: int, timeout_s: float = 0.5) -> str | None:
    """The working folder of the Redis on loopback ``port`` (``CONFIG GET dir``); None if it does not say."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(resp_command("CONFIG", "GET", "dir"))
            reply = b""
            while reply.count(b"\r\n") < 5 and not reply.startswith(b"-"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    lines = reply.decode(errors="replace").split("\r\n")
    if len(lines) < 5 or lines[0] != "*2" or lines[2] != "dir":
        return None  # an error (authentication, a renamed CONFIG command) or not Redis at all
    return lines[4]


def redis_is_ours(port: int) -> bool:
    """True when the Redis on loopback ``port`` was started by ctloop (its folder holds :data:`OWNER_MARK`)."""
    folder = redis_dir(port)
    return folder is not None and (Path(folder) / OWNER_MARK).is_file()


def redis_binary() -> str | None:
    """``redis-server``: the one ``make setup`` links into the environment's ``bin``, else on ``PATH``."""
    beside = Path(sys.executable).parent / "redis-server"
    return str(beside) if beside.is_file() else shutil.which("redis-server")


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
    """Start ``redis-server`` on loopback with no persistence, or reuse one that ctloop started.

    Raises:
        ServiceError: the port is taken by another program (a Redis of its own included), or
            ``redis-server`` is missing or does not start.
    """
    hint = "stop it, or give ctloop a port of its own: [services] redis_port in the settings file"
    if redis_ping(port):
        if not redis_is_ours(port):
            raise ServiceError(
                f"127.0.0.1:{port} is a Redis that ctloop did not start; ctloop will not write there: {hint}"
            )
        log.info("reusing ctloop's Redis already answering on 127.0.0.1:%d", port)
        return Redis(port, None)
    if port_open(port):
        raise ServiceError(f"127.0.0.1:{port} is taken by something that is not Redis: {hint}")
    binary = redis_binary()
    if binary is None:
        raise ServiceError(
            "redis-server not found: run `make setup` (links Debian's redis-tools server into .venv/bin)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / OWNER_MARK).write_text("the working folder of a redis-server started by ctloop\n")
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
