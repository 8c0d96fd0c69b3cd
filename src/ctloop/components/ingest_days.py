from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def ingest_days(settings_json: str, days: str, snapshot: Output[Dataset], stats: Output[Metrics]) -> str:
    """Check the days against the offline store's rules, then cut what became known on them; return its sha256."""
    from pathlib import Path

    from ctloop.app import feature_steps, pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    result = feature_steps.ingest(Settings.from_json(settings_json), days, Path(snapshot.path))
    snapshot.metadata.update({"sha256": result.sha256, "days": result.days, "reruns": result.reruns, **result.counts})
    for name, value in result.counts.items():
        stats.log_metric(name, value)
    return result.sha256
