"""When the replay sends the outcomes known so far back to serving (``[replay] feedback_every_hours``)."""

from __future__ import annotations

import pandas as pd
import pytest

from ctloop.app.replay import STEP, feedback_steps
from ctloop.core.clock import LOCAL_TZ, local_midnight


def sending_hours(first_day: str, days: int, every: int) -> list[pd.Timestamp]:
    """The local instants at which feedback goes out over ``days`` days from ``first_day``."""
    begins = local_midnight(pd.Timestamp(first_day).date())
    hours = int((local_midnight((pd.Timestamp(first_day) + pd.Timedelta(days=days)).date()) - begins) / STEP)
    steps = feedback_steps(begins, hours, every)
    assert len(steps) == hours
    return [(begins + i * STEP).tz_convert(LOCAL_TZ) for i in range(hours) if steps[i]]


@pytest.mark.parametrize("first_day", ["2013-06-10", "2013-03-09", "2013-11-02"])  # a plain day, both DST changes
def test_a_nightly_batch_goes_out_at_each_local_midnight_only(first_day):
    sent = sending_hours(first_day, 3, 24)
    days = pd.date_range(first_day, periods=3, freq="D")
    assert sent == [local_midnight(d.date()).tz_convert(LOCAL_TZ) for d in days]


def test_every_hour_sends_at_every_hour_and_six_hours_at_the_quarters_of_the_day():
    assert len(sending_hours("2013-06-10", 2, 1)) == 48
    sent = sending_hours("2013-06-10", 2, 6)
    assert [t.hour for t in sent] == [0, 6, 12, 18] * 2 and all(t.minute == 0 for t in sent)
