"""The training pipeline killed mid-run: SIGKILL a kfp.local run from its parent, then rerun.

``kill_during`` starts ``python -m reliability.pipeline_kill`` (the settings as JSON on stdin)
in a session of its own, waits until the run reports that a given task started, lets it work
for a moment and SIGKILLs the whole session: the runner and the task subprocess it started,
as an OOM kill or a lost node would. Nothing of the killed run may survive it, and a rerun
must complete and register exactly one version.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ctloop.config import Settings

STARTED = "started"


@dataclass(frozen=True)
class Killed:
    """What the kill left: which tasks had started, how long the run lived, processes that outlived it."""

    tasks: list[str]
    seconds: float
    survivors: list[int]
    log: str
    left_behind: list[str]
    """What the killed session left in its temporary folder (removed since, by the killer)."""


def session_members(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (zombies and the dead excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[4])  # after "pid (comm)": state ppid pgrp session
        if session == sid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def kill_during(
    settings: Settings, start: str, end: str, task: str = "train", after_s: float = 0.2, timeout_s: float = 600.0
) -> Killed:
    """Run the pipeline in a child session and SIGKILL it ``after_s`` after ``task`` started."""
    log = settings.data_dir / "logs" / f"killed-run-{int(time.time())}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1]
    args = [sys.executable, "-m", "reliability.pipeline_kill", start, end]
    # a temporary folder of the session's own: what the killed processes cannot remove, the killer does
    temp = Path(tempfile.mkdtemp(prefix="ctloop-killed-"))
    began = time.monotonic()
    with log.open("wb") as sink:
        child = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sink,
            cwd=root,
            env={**os.environ, "TMPDIR": str(temp)},
            start_new_session=True,
        )
    if child.stdin is None or child.stdout is None:  # both are PIPE above
        raise RuntimeError("no pipe to the pipeline run")
    child.stdin.write(settings.to_json().encode())
    child.stdin.close()
    tasks: list[str] = []
    try:
        for raw in child.stdout:
            name, _, event = raw.decode().strip().partition(" ")
            if event == STARTED:
                tasks.append(name)
            if name == task and event == STARTED:
                time.sleep(after_s)
                break
            if time.monotonic() - began > timeout_s:
                break
        else:
            raise RuntimeError(f"the run ended before {task!r} started (tasks {tasks}; log {log})")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    lived = time.monotonic() - began
    time.sleep(0.5)  # let the kernel reap what the kill reached
    survivors = session_members(child.pid)
    left_behind = sorted(entry.name for entry in temp.iterdir())
    shutil.rmtree(temp, ignore_errors=True)
    return Killed(tasks, lived, survivors, str(log), left_behind)


def main() -> None:
    """Child side: run the pipeline for ``argv[1]..argv[2]`` and report each task event on stdout."""
    from ctloop.pipelines import local

    settings = Settings.from_json(sys.stdin.read())

    def report(name: str, event: str) -> None:
        print(name, event, file=sys.__stdout__, flush=True)  # the run's stdout is redirected to its log

    local.run(settings, sys.argv[1], sys.argv[2], git_sha="0" * 40, callback=report)


if __name__ == "__main__":
    main()
