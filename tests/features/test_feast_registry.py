"""The file registry is replaced whole: a reader in the middle of a write still reads the old registry.

Feast's own ``FileRegistryStore`` empties ``registry.db`` before it writes the new one; a process
that re-reads the registry at that moment (``feast serve``, the replay's online feed) finds no
feature views. The write is caught in its middle here: while the new registry is being
serialized, the file on disk is read back.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
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


def _store(repo: Path, store_type: str | None) -> FeatureStore:
    registry: dict[str, Any] = {"registry_type": "file", "path": str(repo / "registry.db")}
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
