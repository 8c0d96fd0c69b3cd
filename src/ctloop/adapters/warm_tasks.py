"""Warm task processes for kfp.local's ``SubprocessRunner``: each task forked from an interpreter that has imported.

kfp.local starts every task of a lightweight component as ``sh -ec '<script>' <source> <args>``:
the script writes the component's source to a temporary file and runs
``python3 -m kfp.dsl.executor_main`` on it. Each such process imports scikit-learn, MLflow, Feast
and pandas afresh before it does any work. Here a *zygote*, one process started once, imports
those modules (the caller's ``preload`` list) and waits; for each task it forks a child that does
exactly what the script does: the source in a new temporary folder, then ``kfp.dsl.executor_main``
run as ``__main__`` with the task's arguments, environment and working directory. The child is a
process of its own, as the task's process was: its memory, its exit code, its output on a pipe the
runner reads line by line, as kfp.local reads a task's output. Gunicorn's ``--preload`` and Python's
``forkserver`` start processes the same way.

Only the exact command kfp.local builds for ``install_kfp_package=False`` components with this
interpreter is forked; any other command, or a task whose interpreter settings (``PYTHON*``,
``OMP_*`` variables, read once at start) differ from the zygote's, runs as kfp.local runs it. On a
cluster nothing of this exists: each task is its pod.

Tasks are asked for over a Unix socket in a folder only the user who started the zygote can
enter. The zygote imports while it waits, in the preload's order, and forks between two imports: the first
tasks start at once with what is loaded, and the later modules load while they run. It exits when
the process that started it closes its end (or dies). Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SCRIPT = re.compile(
    r'\s*program_path=\$\(mktemp -d\)\s+printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\s+'
    r"_KFP_RUNTIME=true (?P<python>\S+) -m kfp\.dsl\.executor_main\s+"
    r'--component_module_path\s+"\$program_path/ephemeral_component\.py"\s+"\$@"\s*'
)
"""The script of a lightweight component's command (``install_kfp_package=False``), any interpreter."""
START_VARIABLES = re.compile(r"^(PYTHON|OMP_|MKL_|OPENBLAS_)")
"""Variables an interpreter or a native library reads once at start: the zygote's and a task's must agree."""
_HELLO = b"fd"
_LENGTH = struct.Struct("!Q")


class ZygoteUnavailableError(OSError):
    """The zygote could not be asked for a task (it has ended); the task did not start."""


class Zygote:
    """A running zygote (see the module's docstring): :meth:`run` forks a task from it."""

    def __init__(self, preload: Sequence[str], env: dict[str, str]) -> None:
        """Start the zygote with ``env`` (the tasks' start environment); it loads ``preload`` (:func:`_load`)."""
        self.env = dict(env)
        self._started = _start_variables(self.env)
        # the socket lives in a folder only this user can enter: no one else can ask for a task
        self._folder = Path(tempfile.mkdtemp(prefix="ctloop-warm-"))
        self.address = str(self._folder / "zygote.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.address)
        self._listener.listen(16)
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self._listener.fileno()), *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # what preloading says, a task importing the same says in its log
            env=self.env,
            pass_fds=(self._listener.fileno(),),
        )
        self._listener.close()  # the zygote holds it now

    def accepts(self, command: Sequence[str], env: dict[str, str]) -> bool:
        """Whether ``command`` is kfp.local's lightweight-component command for this interpreter, and ``env`` fits."""
        if len(command) < 4 or list(command[:2]) != ["sh", "-ec"] or self.process.poll() is not None:
            return False
        match = SCRIPT.fullmatch(command[2])
        if not match or match["python"] not in (sys.executable, "python3"):
            return False
        return self._started == _start_variables(env)

    def run(self, command: Sequence[str], env: dict[str, str]) -> int:
        """Fork the task ``command`` (accepted by :meth:`accepts`) with ``env``; print its output; its exit code."""
        read_end, write_end = os.pipe()
        request = json.dumps({"source": command[3], "args": list(command[4:]), "env": env, "cwd": str(Path.cwd())})
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            try:
                conn.connect(self.address)
                socket.send_fds(conn, [_HELLO], [write_end])
                body = request.encode()
                conn.sendall(_LENGTH.pack(len(body)) + body)
            except OSError as exc:  # nothing has run: the caller may start the task another way
                os.close(read_end)
                raise ZygoteUnavailableError(f"the zygote cannot take the task: {exc}") from exc
            finally:
                os.close(write_end)
            with open(read_end, errors="replace") as output:  # noqa: PTH123 (a pipe's descriptor)
                for line in output:
                    print(line, end="")
            print("\n")  # as kfp.local ends a task's output
            try:
                answer = _read_all(conn)
            except OSError:
                answer = b""
        if not answer:
            print("TaskProcessError: the task's process ended without an exit status (killed by a signal?)")
            return 1
        return int(json.loads(answer)["code"])

    def close(self) -> None:
        """Stop the zygote (its children, tasks still running, are the caller's to wait for)."""
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


def _start_variables(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if START_VARIABLES.match(k)}


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def patched_subprocess_runner(zygote: Zygote) -> Iterator[None]:
    """While open, kfp.local's subprocess tasks that :meth:`Zygote.accepts` are forked from ``zygote``."""
    from kfp.local import status, subprocess_task_handler

    handler_class = subprocess_task_handler.SubprocessTaskHandler
    kfp_run = handler_class.run

    def run(handler: Any) -> Any:
        env = {**os.environ, **handler.env_vars}
        if handler.runner.use_venv or not zygote.accepts(handler.full_command, env):
            return kfp_run(handler)
        try:
            code = zygote.run(handler.full_command, env)
        except ZygoteUnavailableError:
            return kfp_run(handler)
        return status.Status.SUCCESS if code == 0 else status.Status.FAILURE

    handler_class.run = run
    try:
        yield
    finally:
        handler_class.run = kfp_run


# The zygote's side: everything below runs in the zygote and in the tasks it forks.


def _serve(listener: socket.socket, preload: list[str]) -> None:
    """Import ``preload`` between requests; fork a task per request; return when stdin closes.

    Native libraries keep idle worker threads once imported (OpenBLAS's pool, Arrow's jemalloc
    background thread), which Python 3.12 warns about at every fork. Both register fork handlers
    that leave the child consistent and start their threads again there, as under
    ``multiprocessing``'s fork start method; no Python thread may exist (:func:`_load` checks).
    """
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system
    pending = list(preload)
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [], 0 if pending else None)
        if sys.stdin in ready:
            return
        if listener in ready:
            conn, _ = listener.accept()
            _fork_task(listener, conn)
        elif pending:
            _load(pending.pop(0))


def _load(entry: str) -> None:
    """Import one module (``module``) or fill one cache (``module:function``), then freeze what it made.

    ``module:function`` calls a function of no argument that fills a module-level cache every task
    would otherwise fill on its own (MLflow's map of installed packages, for one); one missing
    from the installed version is skipped. What the entry created is frozen out of the collector:
    children never rescan it.
    """
    import importlib

    module, _, function = entry.partition(":")
    gc.disable()
    try:
        with contextlib.suppress(Exception):  # a task importing or calling it reports the error itself
            loaded = importlib.import_module(module)
            warm = getattr(loaded, function, None) if function else None
            if callable(warm):
                warm()
    finally:
        gc.freeze()
        gc.enable()
    if threading.active_count() > 1:  # a forked thread would be missing in every child
        raise SystemExit(f"preloading {entry} started a thread: cannot fork tasks safely")


def _fork_task(listener: socket.socket, conn: socket.socket) -> None:
    with conn:
        hello, fds, _, _ = socket.recv_fds(conn, len(_HELLO), 1)
        if hello != _HELLO or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return
        size = _LENGTH.unpack(_recv_exactly(conn, _LENGTH.size))[0]
        request = json.loads(_recv_exactly(conn, size))
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():  # on the idle native threads, see _serve
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the task: whatever happens, it never returns into the zygote's loop
            code = 1
            try:
                listener.close()
                sys.stdin.close()
                code = _run_task(fds[0], request)
            finally:
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"code": code}).encode())
                os._exit(code if 0 <= code < 256 else 1)  # a forked child leaves without the zygote's exit handlers
        os.close(fds[0])


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the request ended early")
        data += chunk
    return data


def _run_task(output: int, request: dict[str, Any]) -> int:
    """What kfp.local's script does, in this forked process; the exit code."""
    import atexit
    import runpy
    import traceback

    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["_KFP_RUNTIME"] = "true"
    os.chdir(request["cwd"])
    program = Path(tempfile.mkdtemp())
    module = program / "ephemeral_component.py"
    module.write_text(request["source"])
    sys.argv = ["executor_main", "--component_module_path", str(module), *request["args"]]
    code = 0
    try:
        runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # what the interpreter runs at exit, which os._exit skips
    shutil.rmtree(program, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def main(argv: list[str]) -> None:
    """The zygote: ``python -m ctloop.adapters.warm_tasks FD MODULE...`` (FD: the listening socket)."""
    listener = socket.socket(fileno=int(argv[0]))
    try:
        _serve(listener, argv[1:])
    finally:  # the caller's close() removes it too, unless the caller was killed
        shutil.rmtree(Path(listener.getsockname()).parent, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
