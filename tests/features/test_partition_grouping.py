"""A day's partition does not depend on the run that computed it: one run of a week, or a run per part.

The replay's feature runs take whatever days the store lacks when they start, so which days
share a run depends on timing; training reads the partitions, so each must be the same however
the days were grouped. Checked on a week with the spring clock change and on a summer week.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

from ctloop.core import daily

WEEKS = (date(2013, 3, 7), date(2013, 7, 29))
SPLITS = ((3,), (1, 2, 3, 4, 5, 6))
"""Where a week is cut into runs (after so many days)."""


def _partitions(first: date, last: date, folder: Path) -> dict[date, dict[str, pd.DataFrame]]:
    daily.ingest_days(first, last, folder)
    per_day, _ = daily.day_tables(folder, first, last)
    return per_day


@pytest.mark.parametrize("first", WEEKS, ids=[d.isoformat() for d in WEEKS])
def test_a_weeks_partitions_are_the_same_in_one_run_or_in_several(first, tmp_path):
    last = first + timedelta(days=6)
    whole = _partitions(first, last, tmp_path / "whole")
    assert sorted(whole) == [first + timedelta(days=i) for i in range(7)]
    assert all(len(whole[day][name]) > 0 for day in whole for name in whole[day])  # something to compare
    for cuts in SPLITS:
        bounds = [0, *cuts, 7]
        for lo, hi in pairwise(bounds):
            start, end = first + timedelta(days=lo), first + timedelta(days=hi - 1)
            part = _partitions(start, end, tmp_path / f"{cuts}-{lo}")
            for day, tables in part.items():
                for name, frame in tables.items():
                    pd.testing.assert_frame_equal(frame, whole[day][name], obj=f"{day} {name} (runs cut at {cuts})")
