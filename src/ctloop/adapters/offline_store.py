"""The offline store's parquet tables: day partitions that grow, and static tables.

Layout under the offline location (``[features] offline_uri``, default ``<data_dir>/feast/data``),
the one Feast's file sources read (``feature_repo/definitions.py``) and DuckDB globs over::

    origin_weather/day=2013-04-01/part.parquet     one folder per day and partitioned table
    carrier_delay/day=2013-04-01/part.parquet
    route_delay/day=2013-04-01/part.parquet
    plane.parquet                                  static rows, rewritten whole
    _partitions.json                               the manifest: each day's rows and sha256

A run's days are checked (``ctloop.core.partitions.plan_append``) against the manifest before
anything is written; its partition files are copied aside first and then moved in, one folder per
table and day, a rerun's old folder replaced; the manifest is written last. Only the standard
library is needed to append (the pipeline's append step stays light). Writes go to a local
folder (a cluster mounts the offline location, or runs Feast's offline engine over object storage).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctloop.core import partitions as parts

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_FILE = "_partitions.json"
STAGING_DIR = ".staging"


class OfflineStoreError(RuntimeError):
    """The offline store cannot be read or written as asked."""


def _files_sha256(frames: Mapping[str, Path]) -> str:
    digest = hashlib.sha256()
    for name in sorted(frames):
        digest.update(name.encode())
        digest.update(frames[name].read_bytes())
    return digest.hexdigest()


class OfflineStore:
    """The partitioned offline tables under one local folder."""

    def __init__(self, uri: str) -> None:
        """Open the store at ``uri`` (a local folder; created on the first append)."""
        if "://" in uri:
            raise OfflineStoreError(f"offline location {uri} is not a local folder: appends write local partitions")
        self.root = Path(uri)

    @property
    def manifest_path(self) -> Path:
        """Where the manifest lives."""
        return self.root / MANIFEST_FILE

    def manifest(self) -> dict[str, Any]:
        """``{"days": {day: {"sha256", "rows", "run", "written_at"}}, "static": {...}}``."""
        if not self.manifest_path.is_file():
            return {"days": {}, "static": {}}
        loaded: dict[str, Any] = json.loads(self.manifest_path.read_text())
        return loaded

    def days(self) -> list[date]:
        """The days in the store, in order."""
        return sorted(date.fromisoformat(d) for d in self.manifest()["days"])

    def hashes(self, days: list[date]) -> dict[date, str]:
        """The content hash of each of ``days`` (all must be present)."""
        entries = self.manifest()["days"]
        return {d: str(entries[d.isoformat()]["sha256"]) for d in days}

    def static_sha256(self) -> str:
        """The hash of the static tables as last written."""
        return str(self.manifest()["static"].get("sha256", ""))

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        tmp = self.root / f".{MANIFEST_FILE}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        tmp.replace(self.manifest_path)

    def append(
        self,
        days: list[date],
        files: Mapping[date, Mapping[str, Path]],
        static: Mapping[str, Path],
        rows: Mapping[date, Mapping[str, int]],
        run: str,
    ) -> parts.AppendPlan:
        """Copy each day's partition files in (replacing a rerun's), then the static tables and the manifest.

        ``files``: per day, each partitioned table's parquet file; ``static``: each static table's.
        The days are checked against the manifest first: a refusal writes nothing.
        """
        plan = parts.plan_append(days, self.days())
        if set(files) != set(days):
            raise OfflineStoreError(f"partitions computed for {sorted(files)} but the run names {days}")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / STAGING_DIR / f"{os.getpid()}-{time.time_ns()}"
        manifest = self.manifest()
        written_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            for day in plan.days:  # copied aside first: a failure here leaves the store as it was
                staged: dict[str, Path] = {}
                for table, path in files[day].items():
                    folder = staging / parts.partition_dir(table, day)
                    folder.mkdir(parents=True)
                    staged[table] = Path(shutil.copyfile(path, folder / parts.PARTITION_FILE))
                manifest["days"][day.isoformat()] = {
                    "sha256": _files_sha256(staged),
                    "rows": dict(rows[day]),
                    "run": run,
                    "written_at": written_at,
                }
            static_staged = {t: Path(shutil.copyfile(p, staging / f"{t}.parquet")) for t, p in static.items()}
            for day in plan.days:  # moved in: a rerun's old folder is swapped out, then removed
                for table in files[day]:
                    target = self.root / parts.partition_dir(table, day)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.exists():
                        old = staging / "replaced" / parts.partition_dir(table, day)
                        old.parent.mkdir(parents=True, exist_ok=True)
                        target.replace(old)
                    (staging / parts.partition_dir(table, day)).replace(target)
            for table, path in static_staged.items():
                path.replace(self.root / f"{table}.parquet")
            if static_staged:
                final = {t: self.root / f"{t}.parquet" for t in static_staged}
                manifest["static"] = {"sha256": _files_sha256(final), "tables": sorted(static_staged)}
            self._write_manifest(manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return plan

    def read(self, table: str, days: list[date] | None = None) -> pd.DataFrame:
        """A partitioned table's rows (of ``days``, or every day), or a static table."""
        import pandas as pd

        if table not in parts.PARTITIONED_TABLES:
            path = self.root / f"{table}.parquet"
            if not path.is_file():
                raise OfflineStoreError(f"no offline table {table!r} under {self.root}")
            return pd.read_parquet(path)
        wanted = days if days is not None else self.days()
        frames = [pd.read_parquet(self.root / parts.partition_dir(table, d) / parts.PARTITION_FILE) for d in wanted]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
