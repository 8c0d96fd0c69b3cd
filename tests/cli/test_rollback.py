"""`ctloop rollback`: champion back to the version it was promoted from, deployed; never forward again.

A real MLflow registry (SQLite under a temp dir) with three versions whose serving folders hold
small placeholder files: the alias moves, the tags and the local deploy (export + ``current``
link) are what is tested here; serving a real model during a rollback is tests/serving/test_rollback.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from ctloop.adapters.registry import CHAMPION, Registry, RegistryError
from ctloop.app import deploy
from ctloop.config import Settings
from ctloop.contract import layout
from tests.cli.test_cli import ctloop


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    path = config / "local.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose registry holds versions 1, 2, 3 (no champion yet), each with a serving folder."""
    path = write_config(tmp_path)
    registry = Registry(Settings.load(path))
    MlflowClient(registry.uri).create_registered_model(registry.name)
    for n in (1, 2, 3):
        with registry.run(f"rollback-{n}", {}) as run_id:
            mlflow.log_text(f"onnx placeholder {n}", "serving/model.onnx")
            mlflow.log_text(json.dumps({"n": n}), "serving/metadata.json")
        MlflowClient(registry.uri).create_model_version(registry.name, f"runs:/{run_id}/serving", run_id=run_id)
    return path


def promote(config: Path, *versions: str) -> Registry:
    registry = Registry(Settings.load(config))
    for version in versions:
        registry.promote(version)
    return registry


def served_version(config: Path) -> str:
    card = layout.serving_dir(Settings.load(config).data_dir) / layout.CURRENT / layout.MODEL_CARD
    return str(json.loads(card.read_text())["version"])


def champion(registry: Registry) -> str:
    found = registry.by_alias(CHAMPION)
    assert found is not None
    return found.version


def test_rollback_moves_champion_back_and_serving_follows(config):
    """v1 → v2 → v3 promoted: `ctloop rollback` makes v2 champion and points `current` at v2."""
    registry = promote(config, "1", "2", "3")
    done = ctloop("rollback", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "champion: v2 (rolled back from v3)" in done.stdout
    assert "serving switched to v2" in done.stdout
    assert champion(registry) == "2"
    assert served_version(config) == "2"
    left = registry.get("3")
    assert left.tags[deploy.ROLLED_BACK_TO] == "2" and left.tags[deploy.ROLLED_BACK_PROMOTED_FROM] == "2"
    assert registry.get("2").tags[deploy.PROMOTED_FROM] == "1"  # the target's own history is untouched


def test_a_second_rollback_goes_further_back_and_then_stops(config):
    """Rollbacks walk back through the promotions (v3 → v2 → v1); past the first version: one error line, exit 1."""
    registry = promote(config, "1", "2", "3")
    assert deploy.rollback(Settings.load(config)).version == "2"
    assert deploy.rollback(Settings.load(config)).version == "1"
    assert served_version(config) == "1"
    done = ctloop("rollback", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: champion v1 of flight-delay has no earlier version to roll back to: "
        "promote one with `ctloop promote VERSION`"
    ]
    assert champion(registry) == "1" and served_version(config) == "1"


def test_a_rolled_back_version_is_never_the_next_target(config):
    """v1 → v2, then v1 promoted again (v1 from v2): rolling back to v2 must not lead back to v1 next."""
    registry = promote(config, "1", "2", "1")
    assert deploy.rollback(Settings.load(config)).version == "2"
    assert registry.get("2").tags[deploy.PROMOTED_FROM] == "1"  # without the mark, v1 would be next
    with pytest.raises(RegistryError, match=r"no earlier version to roll back to \(v1 was rolled back\)"):
        deploy.rollback(Settings.load(config))
    assert champion(registry) == "2" and served_version(config) == "2"


def test_a_rolled_back_version_in_the_history_is_passed_over(config):
    """v3 was promoted from v2, and v2 is marked rolled back (back to v1): a rollback from v3 lands on v1."""
    registry = promote(config, "1", "2", "3")
    marked = {deploy.ROLLED_BACK_TO: "1", deploy.ROLLED_BACK_PROMOTED_FROM: "1", deploy.PROMOTED_FROM: ""}
    for key, value in marked.items():  # the state a rollback of v2 leaves on it
        MlflowClient(registry.uri).set_model_version_tag(registry.name, "2", key, value)
    done = deploy.rollback(Settings.load(config))
    assert (done.left, done.version, done.deployed.version) == ("3", "1", "1")
    assert served_version(config) == "1"


def test_promoting_a_rolled_back_version_again_lifts_the_mark(config):
    """v2 rolled back, then promoted again on purpose and replaced by v3: a rollback from v3 returns to v2."""
    registry = promote(config, "1", "2")
    deploy.rollback(Settings.load(config))
    assert deploy.is_rolled_back(registry.get("2"))
    registry.promote("2")
    assert not deploy.is_rolled_back(registry.get("2"))
    registry.promote("3")
    assert deploy.rollback(Settings.load(config)).version == "2"
    assert served_version(config) == "2"


def test_rollback_with_no_champion_is_a_clear_error(config):
    """Nothing promoted yet: one `error:` line that says so."""
    done = ctloop("rollback", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: flight-delay has no champion to roll back: run `ctloop train`"]


def test_rollback_of_a_first_champion_is_a_clear_error(config):
    """The first champion has no earlier version: exit 1, the alias and serving stay where they were."""
    registry = promote(config, "1")
    deploy.deploy_alias(Settings.load(config))
    done = ctloop("rollback", "--config", str(config))
    assert done.returncode == 1
    assert "champion v1 of flight-delay has no earlier version to roll back to" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and len(done.stderr.strip().splitlines()) == 1
    assert champion(registry) == "1" and served_version(config) == "1"
