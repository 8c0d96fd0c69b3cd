"""`make reliability`: the full scenarios against the real serving stack of tests/serving.

Not part of `make test` (its fast subset is tests/serving/test_fuzz.py): the test files here are
collected only when ``CTLOOP_RELIABILITY=1``, which `make reliability` sets.
"""

from __future__ import annotations

import os

from tests.serving.conftest import live, registered  # noqa: F401 - the serving stack's session fixtures

collect_ignore_glob = [] if os.environ.get("CTLOOP_RELIABILITY") == "1" else ["test_*.py"]
