"""`ctloop models`, `promote`, `rollback` and `deploy`: the registry and what serving points at."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ctloop.cli.shell import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    ReplayOption,
    app,
    console,
    friendly,
    load_settings,
    print_json,
    scoped_settings,
)


@app.command()
@friendly
def models(replay: ReplayOption = False, json: JsonOption = False, config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Registered versions with aliases and lineage tags, newest first."""
    from ctloop.adapters.registry import Registry

    settings = scoped_settings(config, replay)
    registry = Registry(settings)
    versions = registry.versions()
    if json:
        print_json(
            {
                "model": settings.registry.model_name,
                "tracking_uri": settings.tracking_uri,
                "versions": [
                    {
                        "version": v.version,
                        "aliases": list(v.aliases),
                        "created": datetime.fromtimestamp(v.created_ms / 1000, tz=UTC).isoformat(),
                        "run_id": v.run_id,
                        "tags": v.tags,
                    }
                    for v in versions
                ],
            }
        )
        return
    if not versions:
        first = "make run (or ctloop replay --quick)" if replay else "ctloop train"
        console.print(f"no versions of {settings.registry.model_name} yet: run `{first}`")
        return
    table = Table(title=f"{settings.registry.model_name} ({settings.tracking_uri})")
    for column in (
        "version",
        "aliases",
        "created",
        "window",
        "data sha256",
        "git sha",
        "feature service",
        "pipeline run",
    ):
        table.add_column(column)
    for v in versions:
        created = datetime.fromtimestamp(v.created_ms / 1000, tz=UTC).strftime("%m-%d %H:%M")
        table.add_row(
            v.version,
            ", ".join(v.aliases) or "—",
            created,
            v.tags.get("window", "—"),
            v.tags.get("data_sha256", "—")[:12],
            v.tags.get("git_sha", "—")[:12],
            v.tags.get("feature_service", "—"),
            v.tags.get("pipeline_run", "—"),
        )
    console.print(table)


@app.command()
@friendly
def promote(version: str, config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Point the `champion` alias at VERSION (the previous champion stays a version) and deploy it."""
    from ctloop.adapters.registry import Registry
    from ctloop.app.deploy import deploy

    settings = load_settings(config)
    previous = Registry(settings).promote(version)
    console.print(f"champion: v{version} (was {'v' + previous.version if previous else 'none'})")
    done = deploy(settings)  # locally a running `ctloop serve` swaps within swap_check_s; on a cluster: Seldon
    console.print(f"serving {'switched to' if done.switched else 'already at'} v{done.version}")


@app.command()
@friendly
def rollback(config: ConfigOption = Path(DEFAULT_CONFIG)) -> None:
    """Move `champion` back to the version the current champion was promoted from, and deploy it.

    The version left is marked rolled back and is never a rollback target again: a second
    rollback goes one promotion further back. `ctloop promote` of it lifts the mark.
    """
    from ctloop.app.deploy import rollback as roll_back

    done = roll_back(load_settings(config))
    console.print(f"champion: v{done.version} (rolled back from v{done.left})")
    state = "switched to" if done.deployed.switched else "already at"
    console.print(f"serving {state} v{done.deployed.version}")


@app.command()
@friendly
def deploy(
    alias: Annotated[str, typer.Option(help="Registry alias to serve.")] = "champion",
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Resolve ALIAS to a version and deploy it: the local serving link, or the cluster's SeldonDeployment."""
    from ctloop.app.deploy import deploy as deploy_to

    done = deploy_to(load_settings(config), alias)
    state = "switched to" if done.switched else "already at"
    console.print(f"serving {state} v{done.version} ({alias}): {done.path}")
