from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def evaluate(
    training_set: Input[Dataset],
    model: Input[Model],
    end: str,
    settings_json: str,
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
) -> None:
    """Score candidate, champion and baseline on the evaluation window, overall and per slice."""
    import json
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    result = pipeline_steps.evaluate(Settings.from_json(settings_json), Path(training_set.path), Path(model.path), end)
    for name, value in result.flat_metrics().items():
        metrics.log_metric(name, value)
    roc.log_roc_curve(*result.roc)
    roc.log_confusion_matrix(["on time", "late"], result.confusion)
    Path(report.path).write_text(result.html)
    Path(evaluation.path).write_text(json.dumps(result.document))
