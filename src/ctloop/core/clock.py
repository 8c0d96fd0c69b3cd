"""The project's clock: New York local time, and days that begin at New York midnight.

The flights' departures are New York times, the delay rates count New York days, and the monitor
and the replay start their days at New York midnight. Event times are UTC instants.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

LOCAL_TZ = "America/New_York"


def local_midnight(day: date) -> pd.Timestamp:
    """New York midnight at the start of ``day``, in UTC (never ambiguous: clocks change at 02:00)."""
    return pd.Timestamp(day.isoformat(), tz=LOCAL_TZ).tz_convert("UTC")


def local_days(stamps: pd.Series) -> pd.Series:
    """The New York day of each UTC instant, as naive midnights (``datetime64``, no zone)."""
    days: pd.Series = stamps.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    return days


def departs_from(local_text: pd.Series, day: date) -> pd.Series:
    """Whether each local departure (ISO text, ``YYYY-MM-DDTHH:MM:SS``) falls on ``day`` or later.

    ISO text orders as its instants do, so the text is compared whole: a departure on ``day``
    begins with the day's own ten characters and is longer, so it sorts after them. The same test
    on the first ten characters cut out of every row would copy each of them first.
    """
    after: pd.Series = local_text >= day.isoformat()
    return after


def departs_before(local_text: pd.Series, day: date) -> pd.Series:
    """Whether each local departure (ISO text) falls before ``day`` (see :func:`departs_from`)."""
    return ~departs_from(local_text, day)


def departs_within(local_text: pd.Series, first: date, last: date) -> pd.Series:
    """Whether each local departure (ISO text) falls on a day of ``first..last``, both included."""
    return departs_from(local_text, first) & departs_before(local_text, last + timedelta(days=1))


def local_hours(local_text: pd.Series) -> np.ndarray:
    """The hour (0-23) of each local departure (ISO text), as integers."""
    text = np.asarray(local_text, dtype="U13")  # ``YYYY-MM-DDTHH``: the hour is the last two characters
    hours: np.ndarray = (text.view(np.uint32).reshape(len(text), 13)[:, 11:13] - ord("0")) @ np.array([10, 1])
    return hours
