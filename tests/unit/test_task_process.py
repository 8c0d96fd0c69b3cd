"""What a pipeline task process pays before its step: collector settings and the gate's imports.

Each case runs in a fresh interpreter, as a task does (the settings are process-wide).
"""

from __future__ import annotations

import json
import subprocess
import sys

from ctloop.adapters.kfp_local import PEAK_MEMORY_MARK


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_task_process_tunes_the_collector_once_and_exits_cleanly():
    """Thresholds raised; the exit-time freeze and peak-memory line registered once however often it is called."""
    out = _fresh(
        "import atexit, gc, json\n"
        "from ctloop.app import pipeline_steps\n"
        "before = atexit._ncallbacks()\n"
        "pipeline_steps.task_process(); pipeline_steps.task_process()\n"
        "print(json.dumps([gc.get_threshold(), atexit._ncallbacks() - before]))"
    )
    first, *rest = out.splitlines()
    threshold, registered = json.loads(first)
    assert tuple(threshold) == (50_000, 20, 20)
    assert registered == 2  # gc.freeze and the peak-memory report
    (peak,) = rest  # printed once, at exit, on the line the local runner reads
    assert peak.startswith(PEAK_MEMORY_MARK) and int(peak.removeprefix(PEAK_MEMORY_MARK)) > 10


def test_the_gate_step_imports_no_pandas_numpy_or_sklearn():
    """The gate reads a JSON document: its task should not pay for the data stack."""
    out = _fresh(
        "import json, sys\n"
        "from ctloop.app import pipeline_steps\n"
        "from ctloop.config import GateSettings\n"
        "doc = {'candidate': {'overall': {'rows': 10, 'positive_rate': 0.2, 'auc': 0.7, 'log_loss': 0.5,"
        " 'brier': 0.16}, 'slices': {}}, 'champion': None, 'onnx_max_abs_diff': 1e-7}\n"
        "pipeline_steps.gate(doc, GateSettings())\n"
        "print(json.dumps(sorted(m for m in ('pandas', 'numpy', 'sklearn') if m in sys.modules)))"
    )
    assert json.loads(out) == []
