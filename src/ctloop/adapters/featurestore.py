"""Feast adapter: the only module that imports ``feast``.

Feast is driven through its Python API (the CLI costs seconds per call). The store's
configuration is the environment's ``feature_store.yaml`` with the local values (repo path,
Redis port) filled in from :class:`ctloop.config.Settings`.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import os
import string
import sys
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml
from feast import FeatureService, FeatureStore, RepoConfig
from redis.exceptions import ConnectionError as RedisConnectionError

from ctloop.adapters.offline_store import OfflineStore, feast_dir, offline_uri
from ctloop.config import Settings
from ctloop.core import features
from ctloop.core.clock import local_midnight

log = logging.getLogger(__name__)

DEFINITIONS_MODULE = "ctloop_feature_repo"


def _not_the_file_registry_advice(record: logging.LogRecord) -> bool:
    """Drop Feast's advice that ``serve_features_while_materializing`` has no effect on a file registry.

    It does here: a file registry shared by a feature run and ``feast serve`` flips the views it
    materializes to ``MATERIALIZING``, which the flag lets serving answer through
    (``tests/features/test_feast_registry.py``). Feast logs the advice on every config it reads.
    """
    message = str(record.msg)
    return not (message.startswith("`serve_features_while_materializing` is enabled but") and "'file'" in message)


logging.getLogger("feast.repo_config").addFilter(_not_the_file_registry_advice)


class FeatureStoreError(RuntimeError):
    """The feature store cannot answer (unreachable online store, unknown service, ...)."""


def load_yaml(path: Path, values: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse a ``feature_store.yaml``, filling ``${VAR}`` from ``values``, then the environment.

    Feast's own loader expands environment variables the same way (``feast serve`` on a cluster
    reads ``${CTLOOP_REDIS}`` from the pod); an unknown variable is left as it is.
    """
    text = string.Template(path.read_text()).safe_substitute({**os.environ, **(values or {})})
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise FeatureStoreError(f"{path} is not a mapping")
    return data


def repo_config(settings: Settings, yaml_path: Path | None = None) -> RepoConfig:
    """The environment's config with this machine's values filled in (Redis port, repo path)."""
    values = {"CTLOOP_REDIS_PORT": str(settings.services.redis_port)}
    if settings.services.redis_address:
        values["CTLOOP_REDIS"] = settings.services.redis_address
    data = load_yaml(yaml_path or settings.feature_store_yaml, values)
    repo = feast_dir(settings)
    repo.mkdir(parents=True, exist_ok=True)
    registry = data.get("registry")
    if isinstance(registry, dict) and "://" not in str(registry.get("path", "")):
        # Feast resolves a relative registry path against the working directory: pin it here
        data["registry"] = {**registry, "path": str(repo / str(registry["path"]))}
    return RepoConfig(repo_path=repo, **data)


def open_store(settings: Settings, config: RepoConfig | None = None) -> FeatureStore:
    """A ``FeatureStore`` for this environment."""
    if offline_uri(settings).startswith("s3://"):
        configure_s3_reads(settings.pipeline.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL", ""))
    return FeatureStore(config=config or repo_config(settings))


def _duckdb_extensions() -> Path:
    """The extension folder the ``duckdb-ext-httpfs`` wheel installs (a namespace package's data)."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise FeatureStoreError("DuckDB's httpfs extension is missing: the platform env needs duckdb-ext-httpfs")
    return Path(next(iter(spec.submodule_search_locations))) / "extensions"


def configure_s3_reads(endpoint_url: str) -> None:
    """Point DuckDB, which Feast's offline store reads ``s3://`` parquet with, at the object store.

    Feast's DuckDB store reads through ibis's default DuckDB connection and its httpfs extension,
    which ignores ``AWS_ENDPOINT_URL``: without this it asks AWS itself, not MinIO. Credentials
    come from the standard variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, a pod's
    Secret); an empty ``endpoint_url`` leaves AWS's own endpoint.
    """
    from urllib.parse import urlsplit

    import ibis

    options = {
        "KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "SECRET": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        options |= {"ENDPOINT": parts.netloc, "URL_STYLE": "path", "USE_SSL": str(parts.scheme == "https").lower()}
    quoted = ", ".join(
        f"{key} {value}" if key == "USE_SSL" else f"{key} '{value.replace(chr(39), chr(39) * 2)}'"
        for key, value in options.items()
    )
    backend = ibis.get_backend()
    # httpfs from the hashed duckdb-ext-httpfs wheel, never downloaded at run time
    backend.raw_sql(f"SET extension_directory = '{_duckdb_extensions()}'")
    backend.raw_sql("SET autoinstall_known_extensions = false")
    backend.load_extension("httpfs")
    backend.raw_sql(f"CREATE OR REPLACE SECRET ctloop_s3 (TYPE s3, {quoted})")


def write_rendered_yaml(settings: Settings) -> Path:
    """Write the local config to the repo path (for ``feast serve``); return its folder."""
    config = repo_config(settings)
    data = load_yaml(settings.feature_store_yaml)
    data["online_store"] = {**data["online_store"], **config.online_store.model_dump(exclude_unset=True)}
    data["registry"] = {**data["registry"], "path": str(config.registry.path)}  # absolute: any cwd works
    target = feast_dir(settings) / "feature_store.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target.parent


def load_definitions(settings: Settings) -> ModuleType:
    """Import ``feature_repo/definitions.py`` (once per process)."""
    if DEFINITIONS_MODULE in sys.modules:
        return sys.modules[DEFINITIONS_MODULE]
    path = settings.feature_repo / "definitions.py"
    spec = importlib.util.spec_from_file_location(DEFINITIONS_MODULE, path)
    if spec is None or spec.loader is None:
        raise FeatureStoreError(f"cannot load Feast definitions from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[DEFINITIONS_MODULE] = module
    spec.loader.exec_module(module)
    return module


def definitions(settings: Settings) -> list[Any]:
    """Every Feast object declared in the definitions module."""
    from feast import Entity, FeatureView, FileSource, OnDemandFeatureView

    module = load_definitions(settings)
    kinds = (Entity, FeatureView, OnDemandFeatureView, FeatureService)
    # copies: the module's objects stay as declared (bare file names) for the next environment
    objects = [copy.deepcopy(obj) for obj in vars(module).values() if isinstance(obj, kinds)]
    base = offline_uri(settings).rstrip("/")
    for obj in objects:
        if isinstance(obj, FeatureView) and isinstance(obj.batch_source, FileSource):
            uri = obj.batch_source.file_options.uri
            if "://" not in uri and not uri.startswith("/"):  # relative in the definitions: place it in this env
                obj.batch_source.file_options.uri = f"{base}/{uri}"
    return objects


def apply(store: FeatureStore, objects: Iterable[Any]) -> list[str]:
    """Register the definitions; return their names."""
    objs = list(objects)
    store.apply(objs)
    return sorted(str(o.name) for o in objs)


STATIC_SINCE: datetime = features.PLANES_EVENT_TIME.to_pydatetime()
"""Views with no TTL hold static rows (plane attributes) stamped long before the data."""


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load feature rows with event time in ``[start, end]`` into the online store.

    Feast's Redis store keeps the newest event per key (an older write never replaces it), so
    the online store holds the newest rows materialized up to ``end``. Static views (no TTL) are
    loaded from their stamp.
    """
    views = store.list_feature_views()
    static = [v.name for v in views if not v.ttl]
    dynamic = [v.name for v in views if v.ttl]
    try:
        if dynamic:
            store.materialize(start_date=start, end_date=end, feature_views=dynamic)
        if static:
            store.materialize(start_date=min(start, STATIC_SINCE), end_date=end, feature_views=static)
    except (ConnectionError, RedisConnectionError) as exc:
        raise FeatureStoreError(f"online store unreachable during materialize: {exc}") from exc


def load_online(settings: Settings, until: datetime | None = None) -> tuple[datetime, datetime]:
    """Fill the online store with every day partition of the offline store, up to ``until`` if given.

    Returns the span. The online store keeps the newest event per key, so after this it serves
    the newest feature values the feature pipeline appended (or those of ``until``: a replay's
    simulated now, after which nothing may be online yet).
    """
    days = OfflineStore.of(settings).days()
    if not days:
        raise FeatureStoreError(
            f"no day partitions under {offline_uri(settings)}: run the feature pipeline first (ctloop features run)"
        )
    span = (local_midnight(days[0]).to_pydatetime(), local_midnight(days[-1] + timedelta(days=1)).to_pydatetime())
    if until is not None:
        span = (min(span[0], until), min(span[1], until))
    store = open_store(settings)
    apply(store, definitions(settings))
    with contextlib.redirect_stdout(io.StringIO()):  # Feast prints a progress bar per view
        materialize(store, *span)
    return span


def materialize_days(store: FeatureStore, first: date, last: date) -> tuple[datetime, datetime]:
    """Incremental materialization of day partitions ``first..last``: their event times, to the online store."""
    span = (local_midnight(first).to_pydatetime(), local_midnight(last + timedelta(days=1)).to_pydatetime())
    with contextlib.redirect_stdout(io.StringIO()):  # Feast prints a progress bar per view
        materialize(store, *span)
    return span


def table_of(view: Any) -> str:
    """The offline table a feature view reads (its source is named ``<table>_source``)."""
    return str(view.batch_source.name).removesuffix("_source")


def feature_service(store: FeatureStore, name: str) -> FeatureService:
    """Look up a feature service by name with a clear error."""
    try:
        return store.get_feature_service(name)
    except Exception as exc:  # feast raises its own FeatureServiceNotFoundException
        raise FeatureStoreError(f"feature service {name!r} not found in the registry: {exc}") from exc


def feature_names(store: FeatureStore, service_name: str) -> list[str]:
    """The service's feature names in projection order (the model's column order)."""
    service = feature_service(store, service_name)
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def service_layout(store: FeatureStore, service_name: str) -> dict[str, Any]:
    """How serving gets each feature of the service, as plain JSON.

    ``views``: per feature view, its join keys, features and TTL (read from the online store);
    ``on_demand``: per on-demand view, its request inputs and features (computed from the
    request by the view's own definition). Written into the model's metadata so that serving,
    which imports no Feast, asks the feature server for exactly what training retrieved.
    """
    service = feature_service(store, service_name)
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    views = {v.name: v for v in store.list_feature_views()}
    layout: dict[str, Any] = {"feature_service": service_name, "views": {}, "on_demand": {}}
    for projection in service.feature_view_projections:
        names = [f.name for f in projection.features]
        if projection.name in on_demand:
            view = on_demand[projection.name]
            inputs = [field.name for source in view.source_request_sources.values() for field in source.schema]
            layout["on_demand"][projection.name] = {"inputs": inputs, "features": names}
        else:
            stored = views[projection.name]
            keys = [c.name for c in stored.entity_columns]
            ttl_s = stored.ttl.total_seconds() if stored.ttl else 0.0  # 0: static rows (no TTL)
            layout["views"][projection.name] = {"join_keys": keys, "features": names, "ttl_s": ttl_s}
    return layout


def historical_features(store: FeatureStore, service_name: str, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time features for ``entity_df``, in ``entity_df``'s row order.

    Feast returns rows in its own order: each entity row carries its row number through the
    retrieval and the result is put back in order by it (never by position).
    """
    if entity_df["flight_id"].duplicated().any():
        raise FeatureStoreError("entity rows must have unique flight_id")
    service = feature_service(store, service_name)
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    refs = [
        f"{p.name}:{f.name}" for p in service.feature_view_projections if p.name not in on_demand for f in p.features
    ]
    # Feast hands an on-demand view's UDF every retrieved column as Python lists (to_pydict):
    # 4-5 s for a year of flights. The feature views are retrieved point-in-time here, and each
    # on-demand view's own registered UDF runs on its request inputs only (same code, ~0.5 s).
    # Only join keys and the timestamp travel through the offline joins (plus the row number).
    views = {v.name: v for v in store.list_feature_views()}
    keys = sorted(
        {c.name for p in service.feature_view_projections if p.name in views for c in views[p.name].entity_columns}
    )
    rows = entity_df.loc[:, [*keys, "event_timestamp"]].assign(_row=np.arange(len(entity_df), dtype=np.int64))
    result = store.get_historical_features(entity_df=rows, features=refs).to_df()
    if len(result) != len(entity_df) or result["_row"].duplicated().any():
        raise FeatureStoreError(f"historical retrieval returned {len(result)} rows for {len(entity_df)}")
    result = result.set_index("_row").sort_index()
    out = pd.DataFrame({"flight_id": entity_df["flight_id"].to_numpy()})
    for projection in service.feature_view_projections:
        names = [f.name for f in projection.features]
        if projection.name in on_demand:
            computed = _on_demand(on_demand[projection.name], entity_df)
            for name in names:
                out[name] = computed[name]
        else:
            for name in names:
                out[name] = result[name].to_numpy()
    return out


def _on_demand(view: Any, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Run an on-demand view's registered transformation over its request inputs."""
    inputs = [field.name for source in view.source_request_sources.values() for field in source.schema]
    table = pa.Table.from_pandas(entity_df.loc[:, inputs], preserve_index=False)
    result: pd.DataFrame = view.feature_transformation.transform_arrow(table, view.features).to_pandas()
    return result


def in_order_writes(config: RepoConfig) -> RepoConfig:
    """``config`` for a writer whose rows come in event-time order, so that each write is a key's newest.

    Feast's Redis store reads a key's stored event time before each write, so that an older row
    never replaces a newer one: a second round trip per batch. Its ``skip_dedup`` option leaves
    that read out, which is safe only for such a writer. Another online store: ``config`` itself.
    """
    online = config.online_store
    if "skip_dedup" not in type(online).model_fields:
        return config
    data = config.model_dump(by_alias=True, exclude_unset=True)
    data["online_store"] = {**online.model_dump(), "skip_dedup": True}
    return RepoConfig(**data)


class OnlineFeed:
    """Writes offline feature rows into the online store as a simulated clock passes their event time.

    What ``materialize(previous, now)`` does per step, without re-reading the offline tables each
    time: the tables are sorted by event time once, and :meth:`advance` writes the rows with
    ``written_until < event_timestamp <= now`` through the provider's ``online_write_batch``, in
    time order: each write is the key's newest, and Redis is written without reading the stored
    event time first (:func:`in_order_writes`). A run of the feature pipeline that materializes
    beside the feed writes only rows the feed has passed, and keeps Feast's check of the stored
    event time. Static views (no TTL) are not fed: :func:`load_online` loads them.

    ``write_to_online_store`` would do the same per call, converting its frame to Feast's
    protobuf rows each time: most of the cost of an hour's write. Here the rows are converted by
    the same Feast function (``_prep_rows_to_write_for_ingestion``) a day ahead at a time (what
    is converted early is only written when its time comes), and a batch whose feature values
    are all null is skipped, as ``write_to_online_store`` skips it.
    """

    CHUNK = timedelta(days=1)
    """How far past ``now`` rows are converted at once."""

    def __init__(self, store: FeatureStore, tables: dict[str, pd.DataFrame], since: datetime) -> None:
        """Feed the dynamic views of ``store`` from ``tables`` (by source name) after ``since``."""
        self.store = store
        self.provider = store._get_provider()  # Feast's own write path, as write_to_online_store takes it
        self.config = in_order_writes(store.config)
        self.written_until = pd.Timestamp(since)
        self.rows_written = 0
        self._views: list[_FedView] = []
        for view in store.list_feature_views():
            if not view.ttl:
                continue
            source = table_of(view)
            if source not in tables:
                raise FeatureStoreError(f"no offline table {source!r} for feature view {view.name!r}")
            frame = tables[source].sort_values("event_timestamp", kind="stable").reset_index(drop=True)
            names = [f.name for f in view.features if f.name in frame.columns]
            empty = frame[names].isna().all(axis=1).to_numpy() if names else np.ones(len(frame), dtype=bool)
            self._views.append(_FedView(view, frame, features.epoch_us(frame["event_timestamp"]), empty))

    def advance(self, now: datetime) -> int:
        """Write every row with event time in ``(written_until, now]``; return how many."""
        until = pd.Timestamp(now)
        lo, hi = (t.value // 1000 for t in (self.written_until, until))  # .value: ns since the epoch
        ahead = (until + self.CHUNK).value // 1000
        written = 0
        for fed in self._views:
            first, last = np.searchsorted(fed.stamps, lo, side="right"), np.searchsorted(fed.stamps, hi, side="right")
            if last <= first or fed.empty[first:last].all():
                continue
            rows = fed.rows(self.provider, int(first), int(last), ahead)
            try:
                self.provider.online_write_batch(self.config, fed.view, rows, progress=None)
            except (ConnectionError, RedisConnectionError) as exc:
                raise FeatureStoreError(f"online store unreachable: {exc}") from exc
            written += int(last - first)
        self.written_until = max(self.written_until, until)
        self.rows_written += written
        return written


class _FedView:
    """One view the feed writes: its rows by event time, which have all features null, and converted rows."""

    def __init__(self, view: Any, frame: pd.DataFrame, stamps: np.ndarray, empty: np.ndarray) -> None:
        self.view, self.frame, self.stamps, self.empty = view, frame, stamps, empty
        self._start = 0
        self._converted: list[Any] = []  # Feast's rows for frame[_start : _start + len(_converted)]

    def rows(self, provider: Any, first: int, last: int, ahead_us: int) -> list[Any]:
        """Feast's rows for ``frame[first:last]``; when not converted yet, every row up to ``ahead_us`` at once."""
        if not (self._start <= first and last <= self._start + len(self._converted)):
            stop = max(last, int(np.searchsorted(self.stamps, ahead_us, side="right")))
            self._start = first
            self._converted = provider._prep_rows_to_write_for_ingestion(self.view, self.frame.iloc[first:stop])
        return self._converted[first - self._start : last - self._start]
