"""`ctloop pipeline ...`: compile the training pipeline; upload it, submit runs and schedule them on a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.shell import (
    DEFAULT_CONFIG,
    ConfigOption,
    EndOption,
    StartOption,
    UserError,
    console,
    find_config,
    friendly,
    git_sha,
    load_settings,
    pipeline_app,
)
from ctloop.config import TRAINING_PIPELINE

CLUSTER_CONFIG = "config/dev.toml"
"""Upload, run and schedule talk to a cluster: the dev environment's settings unless told otherwise."""


@pipeline_app.command("compile")
@friendly
def pipeline_compile(
    output: Annotated[Path, typer.Option(help="Where to write the KFP IR YAML.")],
    image_tag: Annotated[str, typer.Option(help="Platform image tag (default: settings, else git SHA).")] = "",
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Compile flight-delay-training to KFP IR YAML naming the platform image by tag."""
    settings = load_settings(config)
    sha = git_sha(settings.root)
    tag = image_tag or settings.pipeline.image_tag or sha
    image = f"{settings.pipeline.platform_image}:{tag}"
    os.environ["CTLOOP_PLATFORM_IMAGE"] = image  # read once by src/ctloop/components/image.py at import
    if "ctloop.components.image" in sys.modules:
        raise UserError("components were imported before the image was set; run compile in a fresh process")
    from kfp import compiler

    from ctloop.pipelines.training import build

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build(settings, git_sha=sha, pipeline_version=sha), str(output))
    console.print(f"wrote {output} (image {image})")


HostOption = Annotated[
    str,
    typer.Option(
        help="KFP API, e.g. http://localhost:8080 (kubectl port-forward svc/ml-pipeline-ui -n kubeflow 8080:80)."
    ),
]
ShaOption = Annotated[
    str, typer.Option("--pipeline-version", help="Pipeline version name (default: the checkout's git SHA).")
]


@pipeline_app.command("upload")
@friendly
def pipeline_upload(
    host: HostOption,
    pipeline_version: ShaOption = "",
    config: ConfigOption = Path(CLUSTER_CONFIG),
) -> None:
    """Compile the pipeline for the platform image of a git SHA and upload it as the pipeline version of that name."""
    import tempfile

    from ctloop.adapters.kfp_client import Kfp

    settings = load_settings(config)
    sha = pipeline_version or git_sha(settings.root)
    package = Path(tempfile.mkdtemp(prefix="ctloop-upload-")) / "pipeline.yaml"
    # compile in a fresh process: the image is read once by src/ctloop/components/image.py at import
    cli = Path(sys.executable).parent / "ctloop"
    args = [str(cli), "pipeline", "compile", "--output", str(package), "--image-tag", sha]
    args += ["--config", str(find_config(config))]
    compiled = subprocess.run(args, check=False, capture_output=True, text=True)
    if compiled.returncode:
        raise UserError(f"compiling the pipeline failed: {compiled.stderr.strip()[-300:]}")
    done = Kfp(host).upload(package, TRAINING_PIPELINE, sha, description=f"ctloop {sha[:12]}")
    state = "uploaded" if done.created else "already uploaded (nothing to do)"
    console.print(
        f"{TRAINING_PIPELINE} version {sha}: {state} (pipeline {done.pipeline_id}, version {done.version_id})"
    )


@pipeline_app.command("submit")
@friendly
def pipeline_submit(
    host: HostOption,
    pipeline_version: ShaOption = "",
    start: StartOption = "2013-01-01",
    end: EndOption = "2013-03-31",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "ctloop",
    config: ConfigOption = Path(CLUSTER_CONFIG),
) -> None:
    """Submit a run of an uploaded pipeline version on a window to a cluster's KFP (`ctloop run`: the local replay)."""
    from ctloop.adapters.kfp_client import Kfp

    settings = load_settings(config)
    sha = pipeline_version or git_sha(settings.root)
    # this environment's settings, portable: the run resolves its paths in its pods
    params = {"start": start, "end": end, "settings_json": settings.to_json(portable=True)}
    run_id = Kfp(host).run(TRAINING_PIPELINE, sha, experiment, f"train-{start}-{end}", params)
    console.print(f"started run {run_id} of {TRAINING_PIPELINE} {sha[:12]} ({start}..{end})")


@pipeline_app.command("schedule")
@friendly
def pipeline_schedule(
    host: HostOption,
    cron: Annotated[str, typer.Option(help="KFP cron (6 fields, with seconds), e.g. '0 0 3 * * *'.")],
    pipeline_version: ShaOption = "",
    start: StartOption = "2013-01-01",
    end: EndOption = "2013-03-31",
    name: Annotated[str, typer.Option(help="Recurring run name (one per name).")] = "flight-delay-nightly",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "ctloop",
    config: ConfigOption = Path(CLUSTER_CONFIG),
) -> None:
    """Create or update the recurring run NAME for a pipeline version (the CT loop's fallback trigger)."""
    from ctloop.adapters.kfp_client import Kfp

    settings = load_settings(config)
    sha = pipeline_version or git_sha(settings.root)
    params = {"start": start, "end": end, "settings_json": settings.to_json(portable=True)}
    run_id, changed = Kfp(host).schedule(TRAINING_PIPELINE, sha, experiment, name, cron, params)
    console.print(f"recurring run {name} ({run_id}): {'created' if changed else 'unchanged'}, cron {cron!r}")
