"""kfp.local's DockerRunner over podman: exit codes are read, failures are failures, nothing is left behind."""

import pytest
from kfp import dsl, local

from ctloop.adapters.kfp_local import container_runner
from ctloop.components.image import PLATFORM_IMAGE
from tests.containers.conftest import ours


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def exits_with(code: int) -> str:
    """Exit with ``code`` (0: return who ran it)."""
    import os
    import sys
    from pathlib import Path

    if code:
        sys.exit(code)
    return f"{os.getuid()}:{Path.cwd()}"


def run_task(settings, tag, code: int) -> str:
    """Run ``exits_with(code)`` as a one-task pipeline in the platform image; return its output."""
    with container_runner(settings, tag) as (runner, _, image):
        workspace = settings.data_dir / "kfp-workspace"  # else kfp.local makes one in the system's temporary folder
        workspace.mkdir(parents=True, exist_ok=True)
        local.init(
            runner=runner,
            pipeline_root=str(settings.data_dir / "kfp"),
            workspace_root=str(workspace),
            raise_on_error=True,
        )

        @dsl.pipeline(name="exit-code")
        def one_task(code: int) -> str:
            return exits_with(code=code).set_container_image(image).output

        return str(one_task(code=code).output)


def test_a_task_that_succeeds_runs_as_the_image_user_in_its_workdir(box_settings, tag, podman):
    """Exit 0 is SUCCESS with the task's output; the task ran as uid 10001 in /app; no container remains."""
    assert run_task(box_settings, tag, 0) == "10001:/app"
    assert ours(podman) == []


@pytest.mark.parametrize("code", [1, 3])
def test_a_task_that_fails_is_reported_failed(box_settings, tag, podman, code):
    """A non-zero exit is FAILURE, never SUCCESS (kfp's auto-removed containers read as exit 0 or crashed)."""
    with pytest.raises(RuntimeError, match="FAILURE"):
        run_task(box_settings, tag, code)
    assert ours(podman) == []
