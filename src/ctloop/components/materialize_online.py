from kfp import dsl

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def materialize_online(settings_json: str, days: str, partitions_sha256: str) -> str:
    """Materialize the appended days' rows into the online store (incremental); return the span loaded."""
    from ctloop.app import feature_steps, pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    start, end = feature_steps.materialize(Settings.from_json(settings_json), days)
    print(f"online store: rows of {start} .. {end} (partitions {partitions_sha256[:12]})")
    return f"{start}..{end}"
