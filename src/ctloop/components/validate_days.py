from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def validate_days(snapshot: Input[Dataset], snapshot_sha256: str, report: Output[Metrics]) -> None:
    """Check the day snapshot's hash and declared schema; fail naming each column and rule."""
    from pathlib import Path

    from ctloop.app import feature_steps, pipeline_steps

    pipeline_steps.task_process()
    for name, value in feature_steps.validate(Path(snapshot.path), snapshot_sha256).items():
        report.log_metric(name, value)
