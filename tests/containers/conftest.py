"""`make e2e-local`: the pipeline, the feature server and serving in the images of this checkout.

These tests need both images (``make images`` tags them with the checkout's git SHA) and podman,
so they are collected only when ``CTLOOP_CONTAINERS=1``, which `make e2e-local` sets after
building or reusing the images. `make test` stays on the subprocess runner.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ctloop.adapters import containers, services
from ctloop.cli.shell import git_sha
from ctloop.config import Settings
from ctloop.pipelines.local import LocalRun, features_for_window, run
from tests.conftest import ROOT

ENABLED = os.environ.get("CTLOOP_CONTAINERS") == "1"
collect_ignore_glob = [] if ENABLED else ["test_*.py"]


def checkout_sha() -> str:
    """The git SHA the images of this checkout are tagged with (what `make images` and the CLI read)."""
    return git_sha(str(ROOT))


@pytest.fixture(scope="session")
def podman() -> containers.Podman:
    """Podman with ctloop's configuration."""
    return containers.Podman(ROOT)


@pytest.fixture(scope="session")
def tag(podman: containers.Podman) -> str:
    """The checkout's SHA, once both images carry it."""
    sha = checkout_sha()
    for name in ("platform", "serving"):
        podman.require_image(f"ghcr.io/ctloop/{name}:{sha}")
    return sha


@pytest.fixture(scope="session")
def box_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The local settings with a data folder, a Redis port and serving ports of their own."""
    base = Settings.load(ROOT / "config" / "local.toml")
    folder = tmp_path_factory.mktemp("containers")
    for parent in (folder, *folder.parents):  # pytest's base folder is private to its user
        if parent.owner() == "root" and str(parent).startswith(str(tmp_path_factory.getbasetemp().parent)):
            parent.chmod(parent.stat().st_mode | 0o011)
    own = services.own_ports(base)
    return own.replace(
        paths=replace(base.paths, data_dir=str(folder / "data")),
        serving=replace(own.serving, feature_cache_ttl_s=0.0, static_feature_cache_ttl_s=0.0),
    )


@pytest.fixture(scope="session")
def box_redis(box_settings: Settings) -> Iterator[services.Redis]:
    """The online store on loopback, as a cluster's Redis Service."""
    redis = services.start_redis(box_settings.services.redis_port, Path(box_settings.data_dir) / "redis")
    yield redis
    redis.stop()


def ours(podman: containers.Podman) -> list[str]:
    """Containers ctloop started that still exist (any state)."""
    listed = podman.run("ps", "-aq", "--filter", f"label={containers.LABEL_OWNER}={containers.OWNER}")
    return listed.stdout.split()


@pytest.fixture(scope="session")
def trained(box_settings: Settings, box_redis: services.Redis, tag: str) -> LocalRun:
    """The feature pipeline, then the training pipeline on 2013 Jan-Mar, every task in the platform image."""
    features_for_window(box_settings, "2013-01-01", "2013-03-31", git_sha=tag, runner="container")
    return run(box_settings, "2013-01-01", "2013-03-31", git_sha=tag, runner="container")
