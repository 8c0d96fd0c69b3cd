"""Feast's file registry, written atomically: a reader sees the old registry or the new one, never half.

Feast's ``FileRegistryStore`` rewrites ``registry.db`` in place (open for writing, which empties
it, then write). Every ``apply`` and every ``materialize`` rewrites it, and a reader in another
process (``feast serve``, a replay's online feed, a pipeline task) re-reads it when its
modification time changes: one that reads between the emptying and the write parses an empty
registry, with no feature views in it. ``AtomicFileRegistryStore`` writes the new registry
beside the old one and renames it into place, which POSIX makes atomic. Everything else is
Feast's, and ``feature_store.yaml`` names it (``registry: registry_store_type``), Feast's way to
plug in a registry store. Tested in ``tests/features/test_feast_registry.py``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from feast.infra.registry.file import FileRegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.utils import _utc_now

STORE_TYPE = "ctloop.adapters.feast_registry.AtomicFileRegistryStore"
"""How ``feature_store.yaml`` names this store."""
DEFAULT_MODE = 0o644
"""A new registry's mode (a file other users and containers of the data folder read)."""


class AtomicFileRegistryStore(FileRegistryStore):
    """A file registry whose every write replaces the file whole."""

    def _write_registry(self, registry_proto: RegistryProto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        folder = self._filepath.parent
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{self._filepath.name}.", dir=folder)
        temporary = Path(name)
        try:
            # a temporary file is private (0600): keep the registry's mode, or what open() would give
            mode = self._filepath.stat().st_mode & 0o777 if self._filepath.exists() else DEFAULT_MODE
            temporary.chmod(mode)
            with os.fdopen(handle, "wb") as file:
                file.write(registry_proto.SerializeToString())
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(self._filepath)
        except BaseException:
            temporary.unlink()
            raise
