from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def materialize(
    snapshot: Input[Dataset], snapshot_sha256: str, start: str, end: str, settings_json: str, stats: Output[Metrics]
) -> None:
    """Compute the feature tables, apply the Feast definitions, materialize to the online store."""
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    counts = pipeline_steps.materialize(Settings.from_json(settings_json), Path(snapshot.path), start, end)
    for name, value in counts.items():
        stats.log_metric(name, value)
