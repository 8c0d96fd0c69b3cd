"""Days and hours of local departures, read from their ISO text, against the same read from each row's date."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ctloop.core import clock

DEPARTURES = pd.array(
    [
        "2013-03-09T23:59:00",  # the last minute before a day
        "2013-03-10T00:00:00",  # its first minute (and a daylight-saving day)
        "2013-03-10T05:07:00",
        "2013-03-10T23:59:00",
        "2013-03-11T00:00:00",
        "2013-12-31T23:59:00",
        "2014-01-01T00:00:00",
    ],
    dtype="string",
)


def _day(text: str) -> date:
    return datetime.fromisoformat(text).date()


@pytest.mark.parametrize("day", [date(2013, 3, 10), date(2013, 3, 11), date(2014, 1, 1), date(2013, 1, 1)])
def test_departs_from_and_before_split_at_the_days_first_minute(day):
    text = pd.Series(DEPARTURES)
    expected = np.array([_day(t) >= day for t in DEPARTURES])
    assert clock.departs_from(text, day).to_numpy(dtype=bool).tolist() == expected.tolist()
    assert clock.departs_before(text, day).to_numpy(dtype=bool).tolist() == (~expected).tolist()


@pytest.mark.parametrize(
    ("first", "last"), [(date(2013, 3, 10), date(2013, 3, 10)), (date(2013, 3, 10), date(2013, 12, 31))]
)
def test_departs_within_includes_both_ends_whole(first, last):
    text = pd.Series(DEPARTURES)
    expected = [first <= _day(t) <= last for t in DEPARTURES]
    assert clock.departs_within(text, first, last).to_numpy(dtype=bool).tolist() == expected


def test_local_hours_read_every_hour_of_the_day():
    start = datetime(2013, 3, 10)
    stamps = [start + timedelta(minutes=37 * i) for i in range(200)]  # every hour, over several days
    text = pd.Series(pd.array([s.isoformat() for s in stamps], dtype="string"))
    hours = clock.local_hours(text)
    assert hours.tolist() == [s.hour for s in stamps]
    assert set(hours.tolist()) == set(range(24))
