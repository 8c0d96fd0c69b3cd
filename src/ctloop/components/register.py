from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def register(
    model: Input[Model],
    evaluation: Input[Artifact],
    settings_json: str,
    snapshot_sha256: str,
    feature_lineage: str,
    start: str,
    end: str,
    git_sha: str,
    pipeline_version: str,
    pipeline_run: str,
    promote: bool,
) -> str:
    """Register the blessed model in MLflow as challenger and, if asked, promote it to champion."""
    import json
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    return pipeline_steps.register(
        Settings.from_json(settings_json),
        Path(model.path),
        json.loads(Path(evaluation.path).read_text()),
        lineage={
            "git_sha": git_sha,
            "pipeline_version": pipeline_version,
            "pipeline_run": pipeline_run,
            "data_sha256": snapshot_sha256,
            "window": f"{start}..{end}",
            **json.loads(feature_lineage),  # the day partitions read and their hash
        },
        promote=promote,
    )
