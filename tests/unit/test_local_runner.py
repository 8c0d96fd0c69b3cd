"""The kfp.local adapter's log reading: task events, each task's peak memory, the failing step's error."""

from __future__ import annotations

import io

from ctloop.adapters.kfp_local import PEAK_MEMORY_MARK, TaskLog, error_detail

LOG = """\
05:01:02.000 - INFO - Executing task \x1b[96m'validate'\x1b[0m
    Traceback (most recent call last):
      File "/x/ephemeral_component.py", line 9, in validate
    ctloop.core.schema.DataValidationError: flights: 1 rule(s) failed
      - column 'arr_delay' failed in_range(-180, 2000) on 3 row(s), e.g. ['9999.0']
    ctloop task peak memory (MiB): 212
05:01:03.000 - ERROR - Task \x1b[96m'validate'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
"""


def test_error_detail_is_the_steps_own_message():
    """The last exception in the log, with its continuation lines and no colour codes."""
    detail = error_detail(LOG)
    assert detail.splitlines()[0] == "DataValidationError: flights: 1 rule(s) failed"
    assert "column 'arr_delay' failed in_range(-180, 2000)" in detail
    assert "\x1b" not in detail and "FAILURE" not in detail
    assert PEAK_MEMORY_MARK not in detail


def test_task_events_reach_the_callback_line_by_line():
    """Start and finish events are reported once each, even when lines arrive in pieces."""
    events: list[tuple[str, str]] = []
    seen: list[str] = []
    sink = TaskLog(io.StringIO(), lambda task, event: events.append((task, event)), seen)
    for chunk in (LOG[:30], LOG[30:200], LOG[200:]):
        sink.write(chunk)
    assert events == [("validate", "started"), ("validate", "FAILURE")]
    assert seen == ["validate"]


def test_each_tasks_peak_memory_is_read_from_its_own_log_lines():
    """The peak a task prints at exit is recorded for that task (the last one started)."""
    peaks: dict[str, int] = {}
    sink = TaskLog(io.StringIO(), None, [], peaks)
    sink.write(LOG.replace("Executing task \x1b[96m'validate'", "Executing task \x1b[96m'ingest'", 1))
    sink.write(f"05:01:04.000 - INFO - Executing task 'train'\n{PEAK_MEMORY_MARK} 1536\n")
    assert peaks == {"ingest": 212, "train": 1536}
