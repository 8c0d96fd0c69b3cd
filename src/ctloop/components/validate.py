from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def validate(snapshot: Input[Dataset], snapshot_sha256: str, start: str, end: str, report: Output[Metrics]) -> None:
    """Check the snapshot's hash and declared schema; fail naming each column and rule."""
    from pathlib import Path

    from ctloop.app import pipeline_steps

    pipeline_steps.task_process()
    for name, value in pipeline_steps.validate(Path(snapshot.path), snapshot_sha256, start, end).items():
        report.log_metric(name, value)
