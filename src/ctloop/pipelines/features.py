"""``flight-features``, wiring only.

ingest days → validate → compute partitions → append to the offline store → materialize to the online store.
"""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from ctloop.components.append_offline import append_offline
from ctloop.components.compute_features import compute_features
from ctloop.components.ingest_days import ingest_days
from ctloop.components.materialize_online import materialize_online
from ctloop.components.validate_days import validate_days
from ctloop.config import FEATURE_PIPELINE, Settings
from ctloop.pipelines import place


def build(
    settings: Settings, image: str = "", scheduled_at: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER
) -> GraphComponent:
    """The pipeline with this environment's settings as parameter defaults (see ``training.build``).

    ``scheduled_at``: what tells a run without ``days`` which day to take; KFP's schedule time on
    a cluster. kfp.local resolves no such placeholder: a local run passes ``""`` and names its days.

    ``days``: the New York days to append, ``YYYY-MM-DD``, a list ``A,B`` or a range ``A..B``;
    empty (a recurring run on a cluster): the day before the run's schedule time. A day already
    in the store is replaced; any other day must follow the last one appended.
    """

    @dsl.pipeline(name=FEATURE_PIPELINE, description="Append days of features to the offline store; load them online.")
    def flight_features(settings_json: str = settings.to_json(portable=True), days: str = "") -> None:
        """The feature pipeline for one or more days."""
        ingested = ingest_days(settings_json=settings_json, days=days, scheduled_at=scheduled_at).set_display_name(
            "ingest days"
        )
        ingested.set_caching_options(False)  # reads external data and the store's days: never serve a stale run
        sha, days = ingested.outputs["sha256"], ingested.outputs["days"]
        snapshot = ingested.outputs["snapshot"]

        checked = validate_days(snapshot=snapshot, snapshot_sha256=sha).set_display_name("validate")

        computed = compute_features(snapshot=snapshot, snapshot_sha256=sha, days=days).set_display_name(
            "compute partitions"
        )
        computed.after(checked)

        appended = append_offline(
            tables=computed.outputs["tables"],
            days=days,
            settings_json=settings_json,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ).set_display_name("append to the offline store")
        appended.set_caching_options(False)  # writes the offline store

        loaded = materialize_online(
            settings_json=settings_json, days=days, partitions_sha256=appended.outputs["Output"]
        ).set_display_name("materialize online")
        loaded.set_caching_options(False)  # writes the online store

        place((ingested, checked, computed, appended, loaded), settings, image)

    return flight_features
