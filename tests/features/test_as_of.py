"""Training features equal a brute-force as-of recomputation from the raw CSVs (docs/features.md).

Two windows that start mid-year, so their first days need history from before them: the
session's (2013-02-01..03-15, through the spring daylight-saving change) and 2013-11-03..11-04
(starting on the autumn change). Sampled rows cover each window's first day, the days of the
change, departures around UTC midnight (19:00-20:00 in New York) and around New York midnight.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from ctloop.core import data
from tests.features import raw_truth
from tests.features.conftest import own_settings, pipeline_features

pytestmark = pytest.mark.slow

PER_BAND = 40
DST_DAYS = (date(2013, 3, 10), date(2013, 11, 3))
NOV = data.Window(date(2013, 11, 3), date(2013, 11, 4))


def bands(frame: pd.DataFrame, window: data.Window) -> dict[str, pd.Series]:
    """Masks of the rows each edge case needs, from the local departure in ``flight_id``."""
    local = pd.to_datetime(frame["flight_id"].str.slice(0, 19))
    clock = local.dt.hour + local.dt.minute / 60
    return {
        "first day": local.dt.date == window.start,
        "daylight-saving day": local.dt.date.isin(DST_DAYS),
        "around UTC midnight": clock.between(18.5, 21.5),
        "around New York midnight": (clock < 6.5) | (clock >= 22),
        "any": pd.Series(True, index=frame.index),
    }


def sample(frame: pd.DataFrame, window: data.Window) -> pd.DataFrame:
    """Up to PER_BAND rows of each band (fixed seed), each band non-empty."""
    picked = []
    for name, mask in bands(frame, window).items():
        rows = frame.loc[mask]
        assert len(rows), f"no row {name}: the window cannot test that edge"
        picked.append(rows.sample(min(PER_BAND, len(rows)), random_state=13))
    return pd.concat(picked).drop_duplicates("flight_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def november(tmp_path_factory, redis_server) -> pd.DataFrame:
    """The pipeline's features for the 2013-11-03..04 window, in a store of its own."""
    folder = tmp_path_factory.mktemp("november")
    return pipeline_features(own_settings(folder, redis_server.port), NOV, folder)


@pytest.fixture(params=["2013-02-01..03-15", "2013-11-03..04"])
def window_rows(request, training_set, window, november) -> tuple[pd.DataFrame, data.Window]:
    if request.param.startswith("2013-02"):
        return training_set.frame, window
    return november, NOV


def test_every_feature_equals_the_brute_force_recomputation(window_rows, truth):
    """Each of the 21 features of every sampled row equals its definition computed from the raw CSVs."""
    frame, window = window_rows
    rows = sample(frame, window)
    mismatches = []
    for row in rows.itertuples(index=False):
        raw = truth.flight(row.flight_id)
        expected = truth.features(raw)
        assert len(expected) == 21
        for name, want in expected.items():
            got = float(getattr(row, name))
            if not raw_truth.same(got, want):
                mismatches.append((row.flight_id, name, got, want))
    assert not mismatches, f"{len(mismatches)} of {len(rows) * 21} values differ, e.g. {mismatches[:5]}"


def test_the_window_holds_every_flight_with_an_outcome_and_no_other(window_rows, truth):
    """Training rows: the window's departures that have an arr_delay (cancelled and diverted excluded)."""
    frame, window = window_rows
    expected = set()
    for key, raw in truth.flights.items():
        if window.start.isoformat() <= key[0][:10] <= window.end.isoformat() and raw["arr_delay"] == raw["arr_delay"]:
            expected.add(f"{key[0]}-{key[1]}{key[2]}-{key[3]}")
    assert set(frame["flight_id"]) == expected
