"""`ctloop pipeline ...`: compile either pipeline; upload it, submit runs and schedule them on a cluster."""

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
from ctloop.config import FEATURE_PIPELINE, TRAINING_PIPELINE

PIPELINES = {"training": TRAINING_PIPELINE, "features": FEATURE_PIPELINE}
"""``--pipeline`` choices and the pipeline each names."""

PipelineOption = Annotated[
    str, typer.Option("--pipeline", help="training (flight-delay-training) or features (flight-features).")
]


def pipeline_name(kind: str) -> str:
    """The KFP name of ``--pipeline KIND``, or a usage error."""
    if kind not in PIPELINES:
        raise UserError(f"--pipeline must be one of {', '.join(PIPELINES)}, got {kind!r}")
    return PIPELINES[kind]


def run_parameters(kind: str, start: str, end: str, days: str) -> tuple[dict[str, str], str]:
    """A run's parameters for ``--pipeline KIND`` (besides the settings) and a name for it."""
    if kind == "features":
        return {"days": days}, f"features-{days or 'scheduled'}"
    if days:
        raise UserError("--days is for --pipeline features; the training pipeline takes --start and --end")
    return {"start": start, "end": end}, f"train-{start}-{end}"


CLUSTER_CONFIG = "config/dev.toml"
"""Upload, run and schedule talk to a cluster: the dev environment's settings unless told otherwise."""


@pipeline_app.command("compile")
@friendly
def pipeline_compile(
    output: Annotated[Path, typer.Option(help="Where to write the KFP IR YAML.")],
    image_tag: Annotated[str, typer.Option(help="Platform image tag (default: settings, else git SHA).")] = "",
    pipeline: PipelineOption = "training",
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Compile flight-delay-training (or flight-features) to KFP IR YAML naming the platform image by tag."""
    name = pipeline_name(pipeline)
    settings = load_settings(config)
    sha = git_sha(settings.root)
    tag = image_tag or settings.pipeline.image_tag or sha
    image = f"{settings.pipeline.platform_image}:{tag}"
    os.environ["CTLOOP_PLATFORM_IMAGE"] = image  # read once by src/ctloop/components/image.py at import
    if "ctloop.components.image" in sys.modules:
        raise UserError("components were imported before the image was set; run compile in a fresh process")
    from kfp import compiler

    from ctloop.pipelines import features, training

    if pipeline == "features":
        built = features.build(settings)
    else:
        built = training.build(settings, git_sha=sha, pipeline_version=sha)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(built, str(output))
    console.print(f"wrote {output}: {name} (image {image})")


HostOption = Annotated[
    str,
    typer.Option(
        help="KFP API, e.g. http://localhost:8080 (kubectl port-forward svc/ml-pipeline-ui -n kubeflow 8080:80)."
    ),
]
ShaOption = Annotated[
    str, typer.Option("--pipeline-version", help="Pipeline version name (default: the checkout's git SHA).")
]
DaysOption = Annotated[
    str,
    typer.Option(help="--pipeline features: days to append (A, A,B or A..B); empty: the day before the run's time."),
]


@pipeline_app.command("upload")
@friendly
def pipeline_upload(
    host: HostOption,
    pipeline_version: ShaOption = "",
    pipeline: PipelineOption = "training",
    config: ConfigOption = Path(CLUSTER_CONFIG),
) -> None:
    """Compile a pipeline for the platform image of a git SHA and upload it as the pipeline version of that name."""
    import tempfile

    from ctloop.adapters.kfp_client import Kfp

    name = pipeline_name(pipeline)
    settings = load_settings(config)
    sha = pipeline_version or git_sha(settings.root)
    with tempfile.TemporaryDirectory(prefix="ctloop-upload-") as folder:
        package = Path(folder) / "pipeline.yaml"
        # compile in a fresh process: the image is read once by src/ctloop/components/image.py at import
        cli = Path(sys.executable).parent / "ctloop"
        args = [str(cli), "pipeline", "compile", "--output", str(package), "--image-tag", sha]
        args += ["--config", str(find_config(config))]
        compiled = subprocess.run(args, check=False, capture_output=True, text=True)
        if compiled.returncode:
            raise UserError(f"compiling the pipeline failed: {compiled.stderr.strip()[-300:]}")
        done = Kfp(host).upload(package, name, sha, description=f"ctloop {sha[:12]}")
    state = "uploaded" if done.created else "already uploaded (nothing to do)"
    console.print(f"{name} version {sha}: {state} (pipeline {done.pipeline_id}, version {done.version_id})")


@pipeline_app.command("submit")
@friendly
def pipeline_submit(
    host: HostOption,
    pipeline_version: ShaOption = "",
    start: StartOption = "2013-01-01",
    end: EndOption = "2013-03-31",
    days: DaysOption = "",
    pipeline: PipelineOption = "training",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "ctloop",
    config: ConfigOption = Path(CLUSTER_CONFIG),
) -> None:
    """Submit a run of an uploaded pipeline version to a cluster's KFP: training on a window, features on days."""
    from ctloop.adapters.kfp_client import Kfp

    name = pipeline_name(pipeline)
    settings = load_settings(config)
    sha = pipeline_version or git_sha(settings.root)
    given, run_name = run_parameters(pipeline, start, end, days)
    # this environment's settings, portable: the run resolves its paths in its pods
    params = {**given, "settings_json": settings.to_json(portable=True)}
    run_id = Kfp(host).run(name, sha, experiment, run_name, params)
    console.print(f"started run {run_id} of {name} {sha[:12]} ({', '.join(f'{k} {v}' for k, v in given.items())})")


@pipeline_app.command("schedule")
@friendly
def pipeline_schedule(
    host: HostOption,
    cron: Annotated[str, typer.Option(help="KFP cron (6 fields, with seconds), e.g. '0 0 3 * * *'.")],
    pipeline_version: ShaOption = "",
    start: StartOption = "2013-01-01",
    end: EndOption = "2013-03-31",
    days: DaysOption = "",
    pipeline: PipelineOption = "training",
    name: Annotated[
        str,
        typer.Option(help="Recurring run name (one per name; default flight-delay-nightly, flight-features-daily)."),
    ] = "",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = "ctloop",
    config: ConfigOption = Path(CLUSTER_CONFIG),
) -> None:
    """Create or update the recurring run NAME for a pipeline version.

    Training: the CT loop's fallback trigger. Features: each run appends the day before its
    schedule time (leave --days empty) and materializes it to the online store.
    """
    from ctloop.adapters.kfp_client import Kfp

    pipeline_ = pipeline_name(pipeline)
    name = name or ("flight-features-daily" if pipeline == "features" else "flight-delay-nightly")
    settings = load_settings(config)
    sha = pipeline_version or git_sha(settings.root)
    given, _ = run_parameters(pipeline, start, end, days)
    params = {**given, "settings_json": settings.to_json(portable=True)}
    run_id, changed = Kfp(host).schedule(pipeline_, sha, experiment, name, cron, params)
    console.print(f"recurring run {name} ({run_id}): {'created' if changed else 'unchanged'}, cron {cron!r}")
