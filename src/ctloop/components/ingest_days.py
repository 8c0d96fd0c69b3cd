from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def ingest_days(
    settings_json: str, days: str, scheduled_at: str, snapshot: Output[Dataset], stats: Output[Metrics]
) -> NamedTuple("Ingested", [("sha256", str), ("days", str)]):  # type: ignore[valid-type]  # KFP's named outputs
    """Check the days against the offline store's rules, then cut what became known on them.

    ``days`` empty: the New York day before ``scheduled_at`` (a recurring run's schedule time).
    Returns the day snapshot's sha256 and the days, as the next steps take them.
    """
    from collections import namedtuple
    from pathlib import Path

    from ctloop.app import feature_steps, pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    chosen = feature_steps.resolve_days(days, scheduled_at)
    result = feature_steps.ingest(Settings.from_json(settings_json), chosen, Path(snapshot.path))
    snapshot.metadata.update({"sha256": result.sha256, "days": result.days, "reruns": result.reruns, **result.counts})
    for name, value in result.counts.items():
        stats.log_metric(name, value)
    return namedtuple("Ingested", ["sha256", "days"])(result.sha256, result.days)  # type: ignore[call-arg]  # KFP reads the fields
