"""Local deploy: resolve a registry alias to a concrete version and hand its files to serving.

Serving cannot resolve ``models:/name@alias`` itself (and the serving env imports no MLflow):
the alias is resolved here to a version, whose ONNX model and metadata are exported to
``<serving_dir>/v<N>/`` with a ``model.json`` naming the model, version, alias and feature
service. ``<serving_dir>/current`` is a symlink switched atomically (a new link renamed over the
old one), so a reader sees either the old or the new version, never a mix.

A rollback (:func:`rollback`) undoes the newest promotion: ``champion`` goes back to the version
the current champion was promoted from (``promoted_from``, set by ``Registry.promote``), and is
then deployed like a promotion.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctloop.adapters.registry import (
    CHALLENGER,
    CHAMPION,
    PROMOTED_FROM,
    ROLLED_BACK_PROMOTED_FROM,
    ROLLED_BACK_TO,
    ModelVersion,
    Registry,
    RegistryError,
)
from ctloop.config import Settings
from ctloop.contract.layout import CURRENT, MODEL_CARD, serving_dir


@dataclass(frozen=True)
class Deployed:
    """What serving now points at."""

    version: str
    alias: str
    path: Path
    switched: bool


def export_version(registry: Registry, version: str, alias: str, target_root: Path) -> Path:
    """Download a version's serving files into ``target_root/v<version>`` (once) and describe it."""
    folder = target_root / f"v{version}"
    if (folder / MODEL_CARD).exists():
        return folder
    staging = target_root / f".v{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files = registry.download_serving(version, staging / "download")
    for item in files.iterdir():
        shutil.move(str(item), staging / item.name)
    shutil.rmtree(staging / "download")
    mv = registry.get(version)
    card = {
        "name": mv.name,
        "version": mv.version,
        "alias": alias,
        "feature_service": mv.tags.get("feature_service", ""),
        "run_id": mv.run_id,
        "data_sha256": mv.tags.get("data_sha256", ""),
        "git_sha": mv.tags.get("git_sha", ""),
    }
    (staging / MODEL_CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def switch_current(root: Path, folder: Path) -> bool:
    """Point ``root/current`` at ``folder`` atomically; False if it already did."""
    link = root / CURRENT
    target = folder.name  # relative: the tree can move as a whole
    if link.is_symlink() and str(link.readlink()) == target:
        return False
    tmp = root / f".{CURRENT}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)  # rename(2): atomic for readers of the link
    return True


def deploy_alias(settings: Settings, alias: str = CHAMPION) -> Deployed:
    """Resolve ``alias``, export its version and switch ``current`` to it."""
    registry = Registry(settings)
    version = registry.by_alias(alias)
    if version is None:
        raise RegistryError(f"{settings.registry.model_name} has no version with alias {alias!r}: run `ctloop train`")
    root = serving_dir(settings.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    folder = export_version(registry, version.version, alias, root)
    return Deployed(version.version, alias, folder, switch_current(root, folder))


def deploy_seldon(settings: Settings, kube: Any = None) -> Deployed:
    """Give the cluster's SeldonDeployment the champion (and the challenger as a canary, if configured).

    The aliases are resolved here to versions and object-storage URIs (Seldon cannot resolve
    ``models:/name@alias``); ``kube`` is a :class:`ctloop.adapters.kube.Kube` (built from settings if None).
    """
    from ctloop.adapters import kube as k8s

    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise RegistryError(f"{settings.registry.model_name} has no champion to deploy: run the training pipeline")
    challenger = registry.by_alias(CHALLENGER) if settings.deploy.canary_percent else None

    def served(mv: ModelVersion, alias: str) -> k8s.ServedModel:
        uri = registry.serving_uri(mv)
        return k8s.ServedModel(mv.name, mv.version, alias, uri, mv.tags.get("feature_service", ""))

    cluster = kube or k8s.Kube(settings.deploy.namespace)
    live = cluster.get_seldon_deployment(settings.deploy.seldon_deployment)
    body = k8s.render_predictors(
        live,
        served(champion, CHAMPION),
        served(challenger, CHALLENGER) if challenger is not None else None,
        settings.deploy.canary_percent,
    )
    before = live.get("metadata", {}).get("labels", {}).get(k8s.VERSION_LABEL)
    cluster.apply(body)
    where = f"seldondeployment/{settings.deploy.seldon_deployment} -n {settings.deploy.namespace}"
    return Deployed(champion.version, CHAMPION, Path(where), before != champion.version)


def deploy(settings: Settings, alias: str = CHAMPION) -> Deployed:
    """Deploy where ``[deploy] target`` says: ``local`` (switch the serving link) or ``seldon`` (the cluster)."""
    if settings.deploy.target == "local":
        return deploy_alias(settings, alias)
    if settings.deploy.target == "seldon":
        return deploy_seldon(settings)
    raise RegistryError(f"[deploy] target must be 'local' or 'seldon', got {settings.deploy.target!r}")


@dataclass(frozen=True)
class RolledBack:
    """A rollback: the champion it left, the one it went back to, and what serving now points at."""

    left: str
    version: str
    deployed: Deployed


def is_rolled_back(mv: ModelVersion) -> bool:
    """True while ``mv`` stays rolled back: :func:`rollback` marked it and no promotion has happened since.

    :func:`rollback` clears ``promoted_from`` on the version it leaves; ``Registry.promote`` sets
    it again on every promotion, so promoting a rolled-back version on purpose lifts the mark.
    """
    return bool(mv.tags.get(ROLLED_BACK_TO)) and not mv.tags.get(PROMOTED_FROM)


def rollback_target(registry: Registry, champion: ModelVersion) -> ModelVersion:
    """The version ``champion`` was promoted from, passing over versions that were rolled back.

    Raises :class:`RegistryError` when there is none: ``champion`` was the first, or every
    earlier one was rolled back (a promotion cycle ends there too).
    """
    seen = {champion.version}
    earlier = champion.tags.get(PROMOTED_FROM, "")
    passed: list[str] = []
    while earlier and earlier not in seen:
        seen.add(earlier)
        mv = registry.get(earlier)
        if not is_rolled_back(mv):
            return mv
        passed.append(earlier)
        earlier = mv.tags.get(ROLLED_BACK_PROMOTED_FROM, "")
    skipped = f" (v{', v'.join(passed)} {'was' if len(passed) == 1 else 'were'} rolled back)" if passed else ""
    raise RegistryError(
        f"champion v{champion.version} of {registry.name} has no earlier version to roll back to{skipped}: "
        "promote one with `ctloop promote VERSION`"
    )


def rollback(settings: Settings) -> RolledBack:
    """Point ``champion`` back at the version the current champion was promoted from, and deploy it.

    The version left behind is marked (``rolled_back_to``; its ``promoted_from`` is kept as
    ``rolled_back_promoted_from`` and cleared) so that it is never a rollback target: a second
    rollback goes one promotion further back (v3 → v2 → v1), never forward to v3 again. The
    target keeps its own ``promoted_from`` (an alias move, not a promotion).
    """
    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    if champion is None:
        raise RegistryError(f"{registry.name} has no champion to roll back: run `ctloop train`")
    target = rollback_target(registry, champion)
    registry.set_alias(CHAMPION, target.version)
    tags = {
        ROLLED_BACK_TO: target.version,
        ROLLED_BACK_PROMOTED_FROM: champion.tags.get(PROMOTED_FROM, ""),
        PROMOTED_FROM: "",
    }
    registry.set_version_tags(champion.version, tags)
    return RolledBack(champion.version, target.version, deploy(settings))
