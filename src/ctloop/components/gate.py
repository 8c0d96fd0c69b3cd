from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def gate(evaluation: Input[Artifact], settings_json: str, decision: Output[Metrics]) -> str:
    """Bless or reject the candidate; the reasons are logged on the decision artifact."""
    import json
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()
    rules = Settings.from_json(settings_json).gate
    verdict = pipeline_steps.gate(json.loads(Path(evaluation.path).read_text()), rules)
    decision.log_metric("blessed", 1.0 if verdict.blessed else 0.0)
    decision.metadata.update(
        {"verdict": verdict.verdict, "reasons": verdict.reasons, "passed": verdict.passed, "waived": verdict.waived}
    )
    print(json.dumps(verdict.to_dict(), indent=2))  # the task log shows why
    return verdict.verdict
