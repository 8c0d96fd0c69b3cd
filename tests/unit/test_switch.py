"""The serving link switches atomically and only when the target changes."""

from __future__ import annotations

import threading

from ctloop.app.deploy import switch_current
from ctloop.contract.layout import CURRENT


def test_switch_points_current_at_the_folder_and_is_idempotent(tmp_path):
    """First switch changes the link, a repeat is a no-op, a new version switches again."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    assert switch_current(tmp_path, tmp_path / "v1") is True
    assert str((tmp_path / CURRENT).readlink()) == "v1"
    assert switch_current(tmp_path, tmp_path / "v1") is False
    assert switch_current(tmp_path, tmp_path / "v2") is True
    assert (tmp_path / CURRENT).resolve() == (tmp_path / "v2").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CURRENT, "v1", "v2"]  # no temp links left


def test_readers_never_see_a_missing_link_during_switches(tmp_path):
    """While versions flip 300 times, a reader always finds the link pointing at v1 or v2."""
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.onnx").write_text(name)
    switch_current(tmp_path, tmp_path / "v1")
    seen: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add((tmp_path / CURRENT / "model.onnx").read_text())
            except OSError as exc:  # a torn switch would show up here
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(300):
        switch_current(tmp_path, tmp_path / ("v2" if i % 2 == 0 else "v1"))
    stop.set()
    reader.join()
    assert errors == []
    assert seen <= {"v1", "v2"} and seen
