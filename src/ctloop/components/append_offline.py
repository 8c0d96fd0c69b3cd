from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def append_offline(
    tables: Input[Dataset], days: str, settings_json: str, pipeline_run: str, appended: Output[Metrics]
) -> str:
    """Append the days' partitions to the offline store (a rerun replaces its day only); return their hash."""
    from pathlib import Path

    from ctloop.app import feature_steps, pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    done = feature_steps.append(Settings.from_json(settings_json), Path(tables.path), days, pipeline_run)
    appended.metadata.update(done)
    print(f"appended {done['days']} (reruns: {done['reruns'] or 'none'}), sha256 {done['partitions_sha256']}")
    return str(done["partitions_sha256"])
