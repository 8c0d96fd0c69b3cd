from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def compute_features(
    snapshot: Input[Dataset], snapshot_sha256: str, days: str, tables: Output[Dataset], stats: Output[Metrics]
) -> None:
    """Each day's partition of the feature tables (weather, delay rates) and the static plane table."""
    from pathlib import Path

    from ctloop.app import feature_steps, pipeline_steps

    pipeline_steps.task_process()
    counts = feature_steps.compute(Path(snapshot.path), days, Path(tables.path))
    tables.metadata.update({"days": days, "snapshot_sha256": snapshot_sha256})
    for name, value in counts.items():
        stats.log_metric(name, value)
