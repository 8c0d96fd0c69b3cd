"""The project's clock: New York local time, and days that begin at New York midnight.

The flights' departures are New York times, the delay rates count New York days, and the monitor
and the replay start their days at New York midnight. Event times are UTC instants.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

LOCAL_TZ = "America/New_York"


def local_midnight(day: date) -> pd.Timestamp:
    """New York midnight at the start of ``day``, in UTC (never ambiguous: clocks change at 02:00)."""
    return pd.Timestamp(day.isoformat(), tz=LOCAL_TZ).tz_convert("UTC")


def local_days(stamps: pd.Series) -> pd.Series:
    """The New York day of each UTC instant, as naive midnights (``datetime64``, no zone)."""
    days: pd.Series = stamps.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    return days
