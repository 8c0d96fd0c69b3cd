"""The training set step awaits day partitions a feature run may still append, for ``[pipeline] partition_wait_s``."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from ctloop.adapters.offline_store import MANIFEST_FILE, offline_uri
from ctloop.app import feature_steps
from ctloop.app.feature_steps import MissingPartitionsError
from ctloop.config import ConfigError, PipelineSettings
from tests.conftest import make_settings


def manifest(first: date, last: date) -> dict:
    """A manifest naming the days ``first..last`` (the store's own record that a run appended them)."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    entry = {"sha256": "0" * 64, "rows": {}, "run": "test", "written_at": "2013-01-01T00:00:00Z"}
    return {"days": {d.isoformat(): entry for d in days}, "static": {"sha256": "1" * 64, "tables": ["plane"]}}


@pytest.fixture
def store(tmp_path):
    """Settings over an offline store that holds 2013-03-09..2013-03-14 (a window to Mar 15 lacks its last day)."""
    settings = make_settings(tmp_path / "data", 6379)
    root = Path(offline_uri(settings))
    root.mkdir(parents=True)
    write(root, manifest(date(2013, 3, 9), date(2013, 3, 14)))
    return settings, root


def write(root: Path, document: dict) -> None:
    """Replace the manifest whole, as the store does (a reader never sees half of it)."""
    staged = root / f".{MANIFEST_FILE}"
    staged.write_text(json.dumps(document))
    staged.replace(root / MANIFEST_FILE)


def waiting(settings, seconds: float):
    """The settings with the training set step's wait."""
    return settings.replace(pipeline=replace(settings.pipeline, partition_wait_s=seconds))


def test_without_a_wait_a_missing_day_is_refused_at_once(store):
    """The default (0) refuses at once, naming the day."""
    settings, _ = store
    began = time.monotonic()
    with pytest.raises(MissingPartitionsError, match="2013-03-15"):
        feature_steps.read_lineage(settings, "2013-03-10", "2013-03-15")
    assert time.monotonic() - began < 0.5


def test_a_day_appended_while_waiting_is_read(store):
    """The run's manifest lands 0.3 s in: the lineage names the whole window, read once it is there."""
    settings, root = store

    def append_last_day() -> None:
        time.sleep(0.3)
        write(root, manifest(date(2013, 3, 9), date(2013, 3, 15)))

    writer = threading.Thread(target=append_last_day)
    began = time.monotonic()
    writer.start()
    lineage = feature_steps.read_lineage(waiting(settings, 10.0), "2013-03-10", "2013-03-15")
    took = time.monotonic() - began
    writer.join()
    assert lineage["feature_partitions"] == "2013-03-09..2013-03-15"
    assert lineage["feature_partitions_count"] == "7"
    assert 0.3 <= took < 2.0


def test_a_day_that_never_comes_is_refused_after_the_wait(store):
    """After the wait the refusal names the day, as without one."""
    settings, _ = store
    began = time.monotonic()
    with pytest.raises(MissingPartitionsError, match="2013-03-15"):
        feature_steps.read_lineage(waiting(settings, 0.5), "2013-03-10", "2013-03-15")
    assert 0.5 <= time.monotonic() - began < 2.0


def test_a_negative_wait_is_refused():
    """A negative wait is a configuration error."""
    with pytest.raises(ConfigError, match="partition_wait_s"):
        PipelineSettings(partition_wait_s=-1.0)
