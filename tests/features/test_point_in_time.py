"""The training set keeps every flight with its label and the shared request features.

Each feature's value against its definition, from the raw CSVs: ``test_as_of.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctloop.contract import flight_request
from ctloop.core import data

pytestmark = pytest.mark.slow
SAMPLE = 300


@pytest.fixture(scope="module")
def sample(training_set):
    """Training rows, sampled reproducibly."""
    return training_set.frame.sample(SAMPLE, random_state=7).reset_index(drop=True)


def test_request_features_match_the_shared_definition(sample):
    """Request-time features in the training set are exactly what the shared function computes."""
    expected = flight_request.request_features(sample["sched_dep_local"].tolist(), sample["distance_mi"].tolist())
    for name, values in expected.items():
        np.testing.assert_allclose(sample[name].to_numpy(dtype=float), np.asarray(values), rtol=0, atol=1e-12)


def test_training_set_keeps_every_flight_of_the_window(training_set, snapshot, window):
    """Feast returns every entity row (no de-duplication) and labels stay attached to their flight."""
    flights, _, _ = data.read_snapshot(Path(snapshot.path))
    rows = data.training_rows(flights, window)
    assert len(training_set.frame) == len(rows)
    merged = training_set.frame.merge(rows[["flight_id", "delayed"]], on="flight_id", suffixes=("", "_raw"))
    assert (merged["delayed"] == merged["delayed_raw"]).all()
