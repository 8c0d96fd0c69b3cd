from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def training_set(
    snapshot: Input[Dataset],
    snapshot_sha256: str,
    start: str,
    end: str,
    settings_json: str,
    dataset: Output[Dataset],
    stats: Output[Metrics],
    as_of: str = "",
) -> str:
    """Point-in-time training set for the window from Feast's offline store (labels known by ``as_of``, if set).

    Returns the feature data it read (day partitions and their hash, JSON) for the model's lineage.
    """
    import json
    from pathlib import Path

    from ctloop.app import feature_steps, pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    settings = Settings.from_json(settings_json)
    rows = pipeline_steps.training_rows(Path(snapshot.path), start, end, as_of)
    # the partitions these rows read, and their hash; refused when one is missing
    lineage = feature_steps.read_lineage(settings, *pipeline_steps.departure_days(rows, start, end))
    ts = pipeline_steps.features_for(settings, rows)
    ts.save(Path(dataset.path))
    dataset.metadata.update({"rows": len(ts.frame), "feature_service": settings.features.feature_service, **lineage})
    stats.log_metric("rows", len(ts.frame))
    stats.log_metric("features", len(ts.feature_names))
    return json.dumps(lineage)
