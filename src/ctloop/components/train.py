from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def train(
    training_set: Input[Dataset],
    end: str,
    settings_json: str,
    tuning: str,
    model: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Fit the delay classifier with the tuning step's parameters and export it to ONNX."""
    import json
    from datetime import date
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()  # before the heavy imports
    from ctloop.core import train as core
    from ctloop.core.tune import Tuning

    ts = core.TrainingSet.load(Path(training_set.path), core.SPLIT_COLUMNS)
    settings = Settings.from_json(settings_json)
    chosen_by = json.loads(tuning)
    search = Tuning.from_dict(chosen_by)
    bundle, fit_metrics = core.train(
        ts, date.fromisoformat(end), search.params, settings.monitor.window_s, tuning=chosen_by
    )
    bundle.save(Path(model.path))
    model.metadata.update({"framework": "scikit-learn+onnx", "features": len(bundle.feature_names), **search.chosen})
    for name, value in fit_metrics.items():
        metrics.log_metric(name, value)
