"""`ctloop features ...`: Feast definitions, the feature pipeline here, the online store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.shell import (
    DEFAULT_CONFIG,
    ConfigOption,
    _progress,
    console,
    features_app,
    friendly,
    git_sha,
    load_settings,
    online_store,
    task_bar,
)
from ctloop.config import FEATURE_PIPELINE


@features_app.command("apply")
@friendly
def features_apply(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Register the Feast definitions of feature_repo/ in this environment's registry."""
    from ctloop.adapters import featurestore as fs

    settings = load_settings(config)
    names = fs.apply(fs.open_store(settings), fs.definitions(settings))
    console.print(f"applied {len(names)} objects: {', '.join(names)}")


@features_app.command("run")
@friendly
def features_run(
    days: Annotated[str, typer.Option(help="New York days to append: 2013-04-02, 2013-04-02,2013-04-03 or A..B.")],
    runner: Annotated[str, typer.Option(help="subprocess or container (default: [pipeline] local_runner).")] = "",
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Run the flight-features pipeline locally (kfp.local): append DAYS to the offline store, load them online.

    A day already in the store is replaced (a rerun); a new day must follow the last one appended.
    """
    from ctloop.app import feature_steps
    from ctloop.pipelines import local

    settings = load_settings(config)
    feature_steps.check_days(settings, days)  # a refusal before anything starts
    with online_store(settings), _progress() as progress:
        bar, on_event = task_bar(progress, FEATURE_PIPELINE, len(local.FEATURE_TASKS))
        run = local.run_features(settings, days, git_sha=git_sha(settings.root), runner=runner, callback=on_event)
        progress.update(bar, description=f"{FEATURE_PIPELINE}: done", completed=len(local.FEATURE_TASKS))
    appended = run.artifact_metadata("append-offline", "appended")
    sha = str(appended.get("partitions_sha256", ""))[:12]
    console.print(
        f"appended {appended.get('days', days)} (reruns: {appended.get('reruns') or 'none'}), partitions sha256 {sha}, "
        f"online {run.output('materialize-online')}, in {run.seconds:.1f} s"
    )


@features_app.command("load-online")
@friendly
def features_load_online(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Load the online store with every day partition of the offline store (the cluster's materialize CronJob)."""
    from ctloop.adapters import featurestore as fs

    settings = load_settings(config)
    start, end = fs.load_online(settings)
    console.print(f"online store loaded: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")
