"""``flight-delay-training``, wiring only.

ingest → validate → training set (reads the offline store) → tune → train → evaluate → gate → (blessed) register.
The feature pipeline (``features.py``) owns the feature tables; this one only reads them.
"""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from ctloop.components.evaluate import evaluate
from ctloop.components.gate import gate
from ctloop.components.ingest import ingest
from ctloop.components.register import register
from ctloop.components.train import train
from ctloop.components.training_set import training_set
from ctloop.components.tune import tune
from ctloop.components.validate import validate
from ctloop.config import TRAINING_PIPELINE, Settings
from ctloop.pipelines import place


def build(
    settings: Settings, git_sha: str = "unknown", pipeline_version: str = "local", image: str = ""
) -> GraphComponent:
    """The pipeline with this environment's settings as parameter defaults.

    ``settings_json`` is the one channel of settings into a run (paths, features, training and gate
    parameters, registry): every task reads what it needs from it. Its default is portable
    (relative paths, no root folder): a compiled pipeline resolves them in the pod. A local run
    passes the settings with this checkout's root instead.
    """

    @dsl.pipeline(name=TRAINING_PIPELINE, description="Train, gate and register the flight-delay model on a window.")
    def flight_delay_training(
        settings_json: str = settings.to_json(portable=True),
        start: str = "2013-01-01",
        end: str = "2013-03-31",
        git_sha: str = git_sha,
        pipeline_version: str = pipeline_version,
        promote: bool = True,
        as_of: str = "",
    ) -> None:
        """The level-2 training pipeline for one window of flights."""
        ingested = ingest(settings_json=settings_json, start=start, end=end).set_display_name("ingest")
        ingested.set_caching_options(False)  # reads external data: never serve a stale snapshot
        sha = ingested.outputs["Output"]
        snapshot = ingested.outputs["snapshot"]

        checked = validate(snapshot=snapshot, snapshot_sha256=sha, start=start, end=end).set_display_name("validate")

        built = training_set(
            snapshot=snapshot, snapshot_sha256=sha, start=start, end=end, settings_json=settings_json, as_of=as_of
        )
        built.set_display_name("point-in-time training set").after(checked)
        built.set_caching_options(False)  # reads the offline store, whose partitions a rerun may replace

        tuned = tune(training_set=built.outputs["dataset"], end=end, settings_json=settings_json)
        tuned.set_display_name("tune on validation days")

        fitted = train(
            training_set=built.outputs["dataset"], end=end, settings_json=settings_json, tuning=tuned.outputs["Output"]
        ).set_display_name("train")

        scored = evaluate(
            training_set=built.outputs["dataset"],
            model=fitted.outputs["model"],
            end=end,
            settings_json=settings_json,
        ).set_display_name("evaluate vs champion")
        scored.set_caching_options(False)  # compares with whatever the champion is now

        decided = gate(evaluation=scored.outputs["evaluation"], settings_json=settings_json).set_display_name("gate")

        with dsl.If(decided.outputs["Output"] == "blessed", name="blessed"):
            registered = register(
                model=fitted.outputs["model"],
                evaluation=scored.outputs["evaluation"],
                settings_json=settings_json,
                snapshot_sha256=sha,
                feature_lineage=built.outputs["Output"],
                start=start,
                end=end,
                git_sha=git_sha,
                pipeline_version=pipeline_version,
                pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                promote=promote,
            ).set_display_name("register in MLflow")
            registered.set_caching_options(False)  # writes the registry

        place((ingested, checked, built, tuned, fitted, scored, decided, registered), settings, image)

    return flight_delay_training
