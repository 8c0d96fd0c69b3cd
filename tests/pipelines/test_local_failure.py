"""A run whose failing task wrote no output still names that task and its own error."""

from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from ctloop.adapters.kfp_local import PipelineStepError, run_pipeline
from ctloop.pipelines import TASK_ENV
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


@dsl.component(base_image="python:3.12", install_kfp_package=False)
def fail(message: str) -> None:
    """Raise before writing anything, as a step refusing its input does."""
    raise ValueError(message)


def _failing_pipeline(_image: str) -> Any:
    @dsl.pipeline(name="fail-first")
    def pipeline(message: str) -> None:
        fail(message=message)

    return pipeline


def test_a_first_task_failing_without_output_is_named_with_its_error(tmp_path: Path):
    settings = make_settings(tmp_path / "data", 6379)  # nothing here reaches Redis
    with pytest.raises(PipelineStepError) as failed:
        run_pipeline(
            settings, _failing_pipeline, lambda _s: {"message": "bad day 2013-02-30"}, log_name="f", env=TASK_ENV
        )
    assert failed.value.task == "fail"
    assert failed.value.detail.splitlines()[0] == "ValueError: bad day 2013-02-30"
