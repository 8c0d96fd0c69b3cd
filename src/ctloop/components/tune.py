from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def tune(training_set: Input[Dataset], end: str, settings_json: str, trials: Output[Metrics]) -> str:
    """Choose the model's hyper-parameters on validation days before the evaluation window ([tune]).

    Returns the search (chosen values, the days, every trial's scores; JSON) for the train step.
    """
    import json
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    from ctloop.core.tune import trial_metrics

    result = pipeline_steps.tune(Settings.from_json(settings_json), Path(training_set.path), end)
    for name, value in trial_metrics(result).items():
        trials.log_metric(name, value)
    for name, value in result.chosen.items():
        trials.log_metric(f"chosen.{name}", value)
    if result.skipped:
        print(f"tuning skipped: {result.skipped}; [train]'s values are used")
    return json.dumps(result.to_dict())
