"""Pipeline definitions (wiring only) and their compile entry point."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfp.dsl import PipelineTask

    from ctloop.config import Settings

TASK_ENV = {"PYTHONOPTIMIZE": "1"}
"""Environment of every task process, here (``local``) and on a cluster (``training``). Feast
decorates its classes with typeguard's ``@typechecked``, which re-instruments them on every
import (~5 s); under ``-O`` it is a no-op (feast imports in ~2.4 s). The platform image sets it too.
"""


def place(tasks: Iterable[PipelineTask], settings: Settings, image: str) -> None:
    """Give every task its image (if set), environment and, on a cluster, the object store's Secret."""
    from kfp import kubernetes

    for task in tasks:
        if image:
            task.set_container_image(image)
        for name, value in {**TASK_ENV, **settings.pipeline.task_env()}.items():
            task.set_env_variable(name, value)
        if settings.pipeline.s3_secret:
            keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            kubernetes.use_secret_as_env(task, settings.pipeline.s3_secret, {k: k for k in keys})
