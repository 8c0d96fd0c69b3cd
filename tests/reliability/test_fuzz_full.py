"""The full fuzzing scenario: at least 1,000 malformed requests and schemathesis cases, figures to bench/results."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reliability import fuzz

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "reliability.json"
REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "1500"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))


def test_fuzzing_the_endpoint_finds_no_5xx_and_only_structured_4xx(live, registered, capsys):
    """Every answer to a malformed or schema-generated request is a 2xx or a structured 4xx."""
    serving = registered.settings.serving
    limits = fuzz.Limits(serving.max_body_bytes, serving.max_batch, tuple(registered.bundles["1"].feature_names))
    report = fuzz.run(live.rest_url, limits, REQUESTS, EXAMPLES, SEED)
    fuzz.write(report, RESULTS, {"max_body_bytes": limits.max_body_bytes, "max_batch": limits.max_batch})
    with capsys.disabled():
        print("\n" + "\n".join(report.lines()) + f"\nfigures: {RESULTS.relative_to(ROOT)}")
    assert report.malformed.sent >= 1000
    assert report.ok(), "see the problems printed above"
