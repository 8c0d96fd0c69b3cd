"""The file registry is replaced whole: a reader in the middle of a write still reads the old registry.

Feast's own ``FileRegistryStore`` empties ``registry.db`` before it writes the new one; a process
that re-reads the registry at that moment (``feast serve``, the replay's online feed) finds no
feature views. The write is caught in its middle here: while the new registry is being
serialized, the file on disk is read back.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.feature_view import FeatureViewState
from feast.infra.registry.file import FileRegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.types import Float64

from ctloop.adapters import featurestore as fs
from ctloop.adapters.feast_registry import STORE_TYPE, AtomicFileRegistryStore
from ctloop.config import Settings

ROOT = Path(__file__).resolve().parents[2]


class MidWrite:
    """A registry proto that reads the registry file while the store serializes it (the middle of a write)."""

    def __init__(self, proto: RegistryProto, path: Path) -> None:
        """Wrap ``proto``; ``path`` is the registry file to read back."""
        self.proto, self.path = proto, path
        self.on_disk: bytes | None = None

    def __getattr__(self, name: str) -> Any:
        """The proto's fields."""
        return getattr(self.proto, name)

    def __setattr__(self, name: str, value: Any) -> None:
        """Set the proto's fields (the store stamps its version and time)."""
        if name in ("proto", "path", "on_disk"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.proto, name, value)

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        """Read the file first: the store is in the middle of its write."""
        self.on_disk = self.path.read_bytes()
        return bytes(self.proto.SerializeToString())


def _store(repo: Path, store_type: str | None, **registry_options: Any) -> FeatureStore:
    registry: dict[str, Any] = {"registry_type": "file", "path": str(repo / "registry.db"), **registry_options}
    if store_type:
        registry["registry_store_type"] = store_type
    store = FeatureStore(
        config=RepoConfig(
            project="atomic",
            provider="local",
            repo_path=repo,
            registry=registry,
            offline_store={"type": "duckdb"},
            online_store={"type": "sqlite", "path": str(repo / "online.db")},
            entity_key_serialization_version=3,
        )
    )
    origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING)
    source = FileSource(path=str(repo / "weather.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(name="weather", entities=[origin], schema=[Field(name="temp", dtype=Float64)], source=source)
    store.apply([origin, view])
    return store


def _read_mid_write(store: FeatureStore) -> RegistryProto:
    registry_store = store.registry._registry_store  # type: ignore[attr-defined]
    path = Path(registry_store._filepath)
    proto = RegistryProto.FromString(path.read_bytes())
    spy = MidWrite(proto, path)
    registry_store._write_registry(spy)
    assert spy.on_disk is not None
    return RegistryProto.FromString(spy.on_disk)


def test_a_reader_in_the_middle_of_a_write_reads_the_whole_old_registry(tmp_path) -> None:
    store = _store(tmp_path, STORE_TYPE)
    assert isinstance(store.registry._registry_store, AtomicFileRegistryStore)  # type: ignore[attr-defined]
    seen = _read_mid_write(store)
    assert [v.spec.name for v in seen.feature_views] == ["weather"]
    assert [f.name for f in store.list_feature_views()] == ["weather"]  # and the new one is complete
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".registry.db.")]  # no temporary left


def test_feasts_own_file_registry_is_empty_in_the_middle_of_a_write(tmp_path) -> None:
    """What the atomic store is for: Feast's own store, caught the same way, shows no feature views."""
    store = _store(tmp_path, None)
    assert type(store.registry._registry_store) is FileRegistryStore  # type: ignore[attr-defined]
    assert list(_read_mid_write(store).feature_views) == []


def test_the_registry_keeps_its_mode_and_a_failed_write_leaves_it_whole(tmp_path) -> None:
    store = _store(tmp_path, STORE_TYPE)
    registry_store = store.registry._registry_store  # type: ignore[attr-defined]
    path = Path(registry_store._filepath)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    before = path.read_bytes()

    class Broken(MidWrite):
        def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
            """The write fails."""
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        registry_store._write_registry(Broken(RegistryProto.FromString(before), path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".registry")) == []


def test_the_local_feature_store_yaml_names_the_atomic_store() -> None:
    settings = Settings.load(ROOT / "config" / "local.toml")
    assert fs.repo_config(settings).registry.registry_store_type == STORE_TYPE


@pytest.mark.parametrize("yaml_path", ["feature_repo/feature_store.yaml", "feature_repo/cluster/feature_store.yaml"])
def test_both_feature_store_yamls_serve_while_a_view_materializes(yaml_path) -> None:
    settings = Settings.load(ROOT / "config" / "local.toml")
    assert fs.repo_config(settings, ROOT / yaml_path).registry.serve_features_while_materializing is True


@pytest.mark.parametrize("serve", [True, False])
def test_a_view_being_materialized_is_served_only_when_the_registry_says_so(tmp_path, serve) -> None:
    """A feature run's materialization marks its views MATERIALIZING: a server refuses them unless told not to."""
    stamps = pd.to_datetime(["2013-03-01 10:00", "2013-03-01 11:00"], utc=True).astype("datetime64[us, UTC]")
    pd.DataFrame({"origin": ["JFK", "JFK"], "event_timestamp": stamps, "temp": [40.0, 41.0]}).to_parquet(
        tmp_path / "weather.parquet"
    )
    store = _store(tmp_path, STORE_TYPE, serve_features_while_materializing=serve)
    store.materialize(stamps[0].to_pydatetime(), stamps[1].to_pydatetime())
    view = store.get_feature_view("weather")
    assert view.state == FeatureViewState.AVAILABLE_ONLINE
    view.state = FeatureViewState.MATERIALIZING  # what the next run's materialize sets while it writes
    store.registry.apply_feature_view(view, store.project, commit=True)

    def read() -> Any:
        return store.get_online_features(features=["weather:temp"], entity_rows=[{"origin": "JFK"}]).to_dict()

    if serve:
        assert read()["temp"] == [41.0]
    else:
        with pytest.raises(ValueError, match="MATERIALIZING"):
            read()


def test_feasts_advice_that_the_flag_does_nothing_on_a_file_registry_is_not_shown(caplog) -> None:
    """It does something here (above): the advice would only mislead, on every config read."""
    settings = Settings.load(ROOT / "config" / "local.toml")
    with caplog.at_level(logging.WARNING):
        assert fs.repo_config(settings).registry.serve_features_while_materializing
    assert not [r for r in caplog.records if "serve_features_while_materializing" in r.getMessage()]
