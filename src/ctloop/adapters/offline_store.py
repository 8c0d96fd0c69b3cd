"""The offline store's parquet tables: day partitions that grow, and static tables.

Layout under the offline location (``[features] offline_uri``: a local folder, by default
``<data_dir>/feast/data``, or ``s3://...`` on a cluster), the one Feast's file sources read
(``feature_repo/definitions.py``) and DuckDB globs over::

    origin_weather/day=2013-04-01/part.parquet     one folder per day and partitioned table
    carrier_delay/day=2013-04-01/part.parquet
    route_delay/day=2013-04-01/part.parquet
    plane.parquet                                  static rows, rewritten whole
    _partitions.json                               the manifest: each day's rows and sha256

A run's days are checked (``ctloop.core.partitions.plan_append``) against the manifest before
anything is written; its partition files are copied aside first and then moved in, one file
per table and day (a rerun's file replaced); the manifest is written last. Files go through
pyarrow's file systems (local, or S3 with the object store's endpoint and the standard
``AWS_*`` credentials); pandas is imported only to read a table back.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctloop.config import Settings
from ctloop.core import partitions as parts

if TYPE_CHECKING:
    import pandas as pd
    from pyarrow import fs as pafs

MANIFEST_FILE = "_partitions.json"
STAGING_DIR = ".staging"


class OfflineStoreError(RuntimeError):
    """The offline store cannot be read or written as asked."""


def feast_dir(settings: Settings) -> Path:
    """The Feast repo path: registry and (locally) offline tables live under it."""
    return settings.data_dir / "feast"


def offline_uri(settings: Settings) -> str:
    """Where the offline feature tables live; the sources' relative paths resolve against it."""
    return settings.features.offline_uri or str(feast_dir(settings) / "data")


def _files_sha256(files: Mapping[str, Path]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(files[name].read_bytes())
    return digest.hexdigest()


def _filesystem(uri: str, endpoint_url: str) -> tuple[pafs.FileSystem, str]:
    from urllib.parse import urlsplit

    from pyarrow import fs as pafs

    if uri.startswith("s3://"):
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL", "")
        parts_ = urlsplit(endpoint)
        options = {"endpoint_override": parts_.netloc, "scheme": parts_.scheme} if endpoint else {}
        return pafs.S3FileSystem(**options), uri.removeprefix("s3://").rstrip("/")
    if "://" in uri:
        raise OfflineStoreError(f"offline location {uri}: a local folder or s3:// only")
    return pafs.LocalFileSystem(), str(Path(uri).absolute())


class OfflineStore:
    """The partitioned offline tables under one location."""

    def __init__(self, uri: str, endpoint_url: str = "") -> None:
        """Open the store at ``uri`` (created on the first append); ``endpoint_url``: an S3 endpoint (MinIO)."""
        self.uri = uri
        self.fs, self.root = _filesystem(uri, endpoint_url)

    @classmethod
    def of(cls, settings: Settings) -> OfflineStore:
        """The offline store of these settings."""
        return cls(offline_uri(settings), settings.pipeline.s3_endpoint_url)

    def _path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def _exists(self, path: str) -> bool:
        from pyarrow import fs as pafs

        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def manifest(self) -> dict[str, Any]:
        """``{"days": {day: {"sha256", "rows", "run", "written_at"}}, "static": {...}}``."""
        path = self._path(MANIFEST_FILE)
        if not self._exists(path):
            return {"days": {}, "static": {}}
        with self.fs.open_input_stream(path) as stream:
            loaded: dict[str, Any] = json.loads(stream.read().decode())
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

    def _parent(self, path: str) -> None:
        if self.fs.type_name == "local":  # object stores have no folders to create
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def _copy_in(self, source: Path, target: str) -> None:
        from pyarrow import fs as pafs

        self._parent(target)
        pafs.copy_files(
            str(source.absolute()), target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs
        )

    def _move(self, source: str, target: str) -> None:
        self._parent(target)
        self.fs.move(source, target)  # a local rename replaces the old file at once; S3 puts the new object

    def append(
        self,
        days: list[date],
        files: Mapping[date, Mapping[str, Path]],
        static: Mapping[str, Path],
        rows: Mapping[date, Mapping[str, int]],
        run: str,
    ) -> parts.AppendPlan:
        """Copy each day's partition files in (replacing a rerun's), then the static tables and the manifest.

        ``files``: per day, each partitioned table's local parquet file; ``static``: each static
        table's. The days are checked against the manifest first: a refusal writes nothing.
        """
        plan = parts.plan_append(days, self.days())
        if set(files) != set(days):
            raise OfflineStoreError(f"partitions computed for {sorted(files)} but the run names {days}")
        staging = self._path(f"{STAGING_DIR}-{os.getpid()}-{time.time_ns()}")
        manifest = self.manifest()
        written_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        moves: list[tuple[str, str]] = []
        try:
            for day in plan.days:  # copied aside first: a failure here leaves the store as it was
                for table, path in files[day].items():
                    relative = f"{parts.partition_dir(table, day)}/{parts.PARTITION_FILE}"
                    self._copy_in(path, f"{staging}/{relative}")
                    moves.append((f"{staging}/{relative}", self._path(relative)))
                manifest["days"][day.isoformat()] = {
                    "sha256": _files_sha256(dict(files[day])),
                    "rows": dict(rows[day]),
                    "run": run,
                    "written_at": written_at,
                }
            for table, path in static.items():
                self._copy_in(path, f"{staging}/{table}.parquet")
                moves.append((f"{staging}/{table}.parquet", self._path(f"{table}.parquet")))
            if static:
                manifest["static"] = {"sha256": _files_sha256(dict(static)), "tables": sorted(static)}
            self._copy_manifest(manifest, f"{staging}/{MANIFEST_FILE}")
            for source, target in moves:
                self._move(source, target)
            self._move(f"{staging}/{MANIFEST_FILE}", self._path(MANIFEST_FILE))  # last: the days are in
        finally:
            if self._exists(staging):
                self.fs.delete_dir(staging)
        return plan

    def _copy_manifest(self, manifest: dict[str, Any], path: str) -> None:
        self._parent(path)
        with self.fs.open_output_stream(path) as stream:
            stream.write(json.dumps(manifest, indent=1, sort_keys=True).encode())

    def read(self, table: str, days: list[date] | None = None) -> pd.DataFrame:
        """A partitioned table's rows (of ``days``, or every day), or a static table."""
        import pandas as pd
        import pyarrow.parquet as pq

        if table not in parts.PARTITIONED_TABLES:
            path = self._path(f"{table}.parquet")
            if not self._exists(path):
                raise OfflineStoreError(f"no offline table {table!r} under {self.uri}")
            static: pd.DataFrame = pq.read_table(path, filesystem=self.fs).to_pandas()
            return static
        wanted = days if days is not None else self.days()
        frames = [
            pq.read_table(
                self._path(f"{parts.partition_dir(table, d)}/{parts.PARTITION_FILE}"), filesystem=self.fs
            ).to_pandas()
            for d in wanted
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
