"""`ctloop features ...`: Feast definitions, materialization, the online store."""

from __future__ import annotations

from pathlib import Path

from ctloop.cli.shell import (
    DEFAULT_CONFIG,
    ConfigOption,
    EndOption,
    StartOption,
    console,
    features_app,
    friendly,
    load_settings,
    online_store,
)


@features_app.command("apply")
@friendly
def features_apply(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Register the Feast definitions of feature_repo/ in this environment's registry."""
    from ctloop.adapters import featurestore as fs

    settings = load_settings(config)
    names = fs.apply(fs.open_store(settings), fs.definitions(settings))
    console.print(f"applied {len(names)} objects: {', '.join(names)}")


@features_app.command("materialize")
@friendly
def features_materialize(
    start: StartOption = "2013-01-01", end: EndOption = "2013-03-31", config: ConfigOption = Path(DEFAULT_CONFIG)
) -> None:
    """Ingest a window, compute its feature tables and load the online store up to END."""
    from ctloop.app import pipeline_steps
    from ctloop.core import data

    settings = load_settings(config)
    window = data.Window.parse(start, end)
    folder = settings.data_dir / "snapshots" / f"{window.start}_{window.end}"
    result = data.ingest(window, settings.features.history_days, folder)
    with online_store(settings):
        counts = pipeline_steps.materialize(settings, folder, start, end)
    console.print(f"snapshot {result.sha256[:12]}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@features_app.command("load-online")
@friendly
def features_load_online(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Load the online store with the offline feature tables' whole span (the cluster's materialize CronJob)."""
    from ctloop.adapters import featurestore as fs

    settings = load_settings(config)
    start, end = fs.load_online(settings)
    console.print(f"online store loaded: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")
