"""Warm task processes: kfp.local's tasks forked from a zygote, each still a process of its own."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import dsl, local

from ctloop.adapters import warm_tasks

PRELOADED = "tabnanny"
"""A standard module nothing else here imports: present in a task only if the zygote preloaded it."""
WARMERS = ("mimetypes:init", "colorsys:no_such_function")
"""A cache filled in the zygote (``mimetypes.inited``, which a task run as kfp.local runs it lacks), and a
function the installed module does not have (skipped)."""


@dsl.component(base_image="python:3.12", install_kfp_package=False)
def describe(name: str) -> str:
    """What the task's process sees."""
    import json
    import os
    import sys
    from pathlib import Path

    return json.dumps(
        {
            "name": name,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "var": os.environ.get("CTLOOP_WARM_TEST"),
            "runtime": os.environ.get("_KFP_RUNTIME"),
            "cwd": str(Path.cwd()),
            "preloaded": "tabnanny" in sys.modules,
            "warmed": bool(getattr(sys.modules.get("mimetypes"), "inited", False)),
        }
    )


@dsl.component(base_image="python:3.12", install_kfp_package=False)
def fail(how: str) -> str:
    """Fail as asked: an exception, an exit code or a signal."""
    import os
    import signal
    import sys

    if how == "raise":
        raise ValueError("the day 2013-02-30 does not exist")
    if how == "exit":
        sys.exit(3)
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


def init_local(folder: Path, raise_on_error: bool) -> None:
    """kfp.local's subprocess runner; its outputs and its workspace in ``folder``, not in a folder of its own."""
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(folder),
        workspace_root=str(folder),
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="module")
def zygote() -> Iterator[warm_tasks.Zygote]:
    """One zygote for the module, with a marker module preloaded."""
    started = warm_tasks.Zygote([PRELOADED, *WARMERS], dict(os.environ))
    yield started
    started.close()


@pytest.fixture
def warm(zygote: warm_tasks.Zygote, tmp_path) -> Iterator[warm_tasks.Zygote]:
    """kfp.local's subprocess runner with tasks forked from the zygote."""
    init_local(tmp_path, raise_on_error=False)
    with warm_tasks.patched_subprocess_runner(zygote):
        yield zygote


def test_a_task_is_forked_from_the_zygote_with_the_callers_environment(warm, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CTLOOP_WARM_TEST", "set after the zygote started")
    monkeypatch.chdir(tmp_path)
    first = json.loads(describe(name="first").output)
    second = json.loads(describe(name="second").output)
    assert first["ppid"] == second["ppid"] == warm.process.pid  # forked by the zygote, not by a shell
    assert first["pid"] != second["pid"]  # a process per task
    assert first["name"] == "first" and first["var"] == "set after the zygote started"
    assert first["runtime"] == "true" and first["cwd"] == str(tmp_path)
    assert second["preloaded"] is True  # loaded while the first ran (the first may start before)
    third = json.loads(describe(name="third").output)
    assert third["warmed"] is True  # a module:function entry ran in the zygote, and a missing one did not stop it
    assert "[KFP Executor" in capsys.readouterr().out  # the task's own output, streamed as kfp.local streams it


def test_a_task_that_raises_fails_with_its_error_in_the_log(warm, capsys):  # kfp.local colours the status
    fail(how="raise")
    out = capsys.readouterr().out
    assert "ValueError: the day 2013-02-30 does not exist" in out
    assert "FAILURE" in out


def test_an_exit_code_and_a_signal_are_failures(warm, capsys):
    fail(how="exit")
    assert "FAILURE" in capsys.readouterr().out
    fail(how="signal")
    out = capsys.readouterr().out
    assert "ended without an exit status" in out and "FAILURE" in out
    assert json.loads(describe(name="after").output)["ppid"] == warm.process.pid  # the zygote lives on


def test_a_task_with_other_interpreter_settings_starts_as_kfp_starts_it(warm, monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "7")  # read once at start: the zygote's differs
    seen = json.loads(describe(name="cold").output)
    assert seen["ppid"] != warm.process.pid and seen["preloaded"] is False and seen["warmed"] is False


def test_only_kfp_locals_own_script_is_forked(zygote):
    env = dict(os.environ)
    assert not zygote.accepts(["sh", "-ec", "echo hello", "x"], env)
    assert not zygote.accepts(["python3", "-m", "kfp.dsl.executor_main"], env)
    command = describe.component_spec.implementation.container.command
    assert zygote.accepts([*command, "--executor_input", "{}"], env)


def test_only_this_user_can_reach_the_zygote_and_it_ends_when_closed():
    started = warm_tasks.Zygote([], dict(os.environ))
    folder = Path(started.address).parent
    assert folder.stat().st_mode & 0o777 == 0o700 and Path(started.address).is_socket()
    command = describe.component_spec.implementation.container.command
    started.close()
    assert started.process.returncode == 0 and not folder.exists()
    assert not started.accepts([*command, "--executor_input", "{}"], dict(os.environ))


def test_the_zygote_removes_its_folder_when_its_caller_goes_without_closing_it():
    started = warm_tasks.Zygote([], dict(os.environ))
    folder = Path(started.address).parent
    assert started.process.stdin is not None
    started.process.stdin.close()  # what the system does when the caller is killed
    assert started.process.wait(timeout=10) == 0
    assert not folder.exists()


def test_a_task_that_cannot_start_fails_and_the_zygote_goes_on(zygote, monkeypatch, capsys):
    """A task whose folder is gone fails with its own exit status; it does not take over the zygote's loop."""
    command = [*describe.component_spec.implementation.container.command, "--executor_input", "{}"]
    folder = Path(zygote.address).parent
    with monkeypatch.context() as patched:
        patched.setattr(warm_tasks.Path, "cwd", staticmethod(lambda: Path("/nonexistent-ctloop-folder")))
        assert zygote.run(command, dict(os.environ)) == 1
    assert "ended without an exit status" not in capsys.readouterr().out
    assert folder.is_dir() and zygote.process.poll() is None
    assert zygote.accepts(command, dict(os.environ))


def test_a_task_starts_as_kfp_starts_it_when_the_zygote_has_ended(tmp_path, monkeypatch):
    started = warm_tasks.Zygote([], dict(os.environ))
    monkeypatch.setattr(started, "accepts", lambda *_: True)  # it ended after saying yes
    started.close()
    init_local(tmp_path, raise_on_error=True)
    with warm_tasks.patched_subprocess_runner(started):
        seen = json.loads(describe(name="after the zygote").output)
    assert seen["name"] == "after the zygote" and seen["ppid"] != started.process.pid


@dsl.component(base_image="python:3.12", install_kfp_package=False)
def absent(modules: list) -> list:
    """Which of ``modules`` (``module`` or ``module:function``) this task's process has not imported."""
    import sys

    return [m for m in modules if m.partition(":")[0] not in sys.modules]


def test_the_pipelines_preload_list_is_all_loaded_in_the_zygote(tmp_path):
    """Every entry of ctloop.pipelines.local.PRELOAD is imported by the zygote: tasks forked late see them all."""
    import time

    from ctloop.pipelines.local import PRELOAD

    init_local(tmp_path, raise_on_error=False)
    started = warm_tasks.Zygote(PRELOAD, dict(os.environ))
    try:
        with warm_tasks.patched_subprocess_runner(started):
            deadline = time.monotonic() + 120
            missing = absent(modules=list(PRELOAD)).output
            while missing and time.monotonic() < deadline:
                time.sleep(1)  # the zygote loads between tasks
                missing = absent(modules=list(PRELOAD)).output
    finally:
        started.close()
    assert missing == []
