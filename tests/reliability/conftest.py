"""`make reliability`: the full scenarios against the real serving stack of tests/serving.

The ``test_*_full.py`` files are not part of `make test` (their fast subsets are in tests/serving:
test_fuzz.py, test_rollback.py, test_endpoint.py): they are collected only when
``CTLOOP_RELIABILITY=1``, which `make reliability` sets. The other files here run in both.
"""

from __future__ import annotations

import os

from tests.serving.conftest import live, registered  # noqa: F401 - the serving stack's session fixtures

FULL = os.environ.get("CTLOOP_RELIABILITY") == "1"
collect_ignore_glob = [] if FULL else ["test_*_full.py"]
