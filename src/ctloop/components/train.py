from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def train(
    training_set: Input[Dataset], end: str, settings_json: str, model: Output[Model], metrics: Output[Metrics]
) -> None:
    """Fit the delay classifier on the point-in-time training set and export it to ONNX."""
    from datetime import date
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()  # before the heavy imports
    from ctloop.core import train as core

    ts = core.TrainingSet.load(Path(training_set.path), core.SPLIT_COLUMNS)
    settings = Settings.from_json(settings_json)
    bundle, fit_metrics = core.train(ts, date.fromisoformat(end), settings.train, settings.monitor.window_s)
    bundle.save(Path(model.path))
    model.metadata.update({"framework": "scikit-learn+onnx", "features": len(bundle.feature_names)})
    for name, value in fit_metrics.items():
        metrics.log_metric(name, value)
