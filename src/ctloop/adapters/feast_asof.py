"""Feast's DuckDB offline store with the point-in-time join done by DuckDB's ``ASOF JOIN``.

Named in ``feature_store.yaml`` as ``offline_store: type: ctloop.adapters.feast_asof.AsOfDuckDBOfflineStore``
(Feast's documented way to plug in an offline store). Everything but ``get_historical_features``
is Feast's own DuckDB store: reading the sources (local or ``s3://`` parquet), materialization,
logging.

Feast's ibis join builds a string id per entity row (its keys and timestamp cast to text), joins
each feature view on key and time range, then keeps the newest row per id with a window
function. The answer is the same as an as-of join: for each entity row and feature view, the
row with the same join keys and the newest event time at or before the row's, dropped when it is
older than the view's TTL (none for a view without TTL). DuckDB's ``ASOF LEFT JOIN`` finds that
row directly, once per view; ``tests/features/test_feast_asof.py`` checks both stores return
equal frames, on TTL edges and with null and unknown keys.

Cases that join differently fall back to Feast's own join: an entity SQL query, full feature
names, a created-timestamp tie-break, a renamed join key.
"""

from __future__ import annotations

import ibis
import pandas as pd
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _read_data_source,
    _write_data_source,
)
from feast.infra.offline_stores.ibis import (
    IbisRetrievalJob,
    _get_entity_df_event_timestamp_range,
    _to_utc,
)
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from ibis.expr import datatypes as dt

STORE_TYPE = "ctloop.adapters.feast_asof.AsOfDuckDBOfflineStore"


class AsOfDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """The DuckDB store's settings (Feast finds a custom store's config class by this name)."""

    type: str = STORE_TYPE


def _asof_applies(views: list[FeatureView], full_feature_names: bool, by_created: bool) -> bool:
    """Whether the as-of join gives Feast's answer here (else Feast's own join runs)."""
    if full_feature_names or by_created:
        return False
    for view in views:
        if view.batch_source is None or view.batch_source.created_timestamp_column:
            return False
        if view.projection.join_key_map or view.projection.name_alias:
            return False
    return True


class AsOfDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store, its historical retrieval by as-of join."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        """Point-in-time features for ``entity_df``: Feast's contract, one ``ASOF LEFT JOIN`` per view."""
        if entity_df is None:
            raise ValueError("Feast's DuckDB store retrieves for an entity frame or query only, not a date range")
        asof = _asof_applies(feature_views, full_feature_names, filter_by_created_timestamp)
        if not asof or isinstance(entity_df, str):
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        event_col = infer_event_timestamp_from_entity_df(dict(zip(entity_df.columns, entity_df.dtypes, strict=True)))
        ts_range = _get_entity_df_event_timestamp_range(entity_df, event_col)
        utc = _to_utc(entity_df, event_col)
        # DuckDB turns an ASOF join into a nested loop join when it expects few rows on the left,
        # and it expects few from an in-memory table it has not counted: a year of flights then
        # compares every flight with every row of its key (minutes instead of a second)
        ibis.get_backend().raw_sql("SET asof_loop_join_threshold = 0")
        table = ibis.memtable(utc)
        keep = list(table.columns)
        for i, view in enumerate(feature_views):
            prefix = f"{view.projection.name}:"  # no alias (_asof_applies)
            names = [ref.removeprefix(prefix) for ref in feature_refs if ref.startswith(prefix)]
            table = _join_view(table, view, names, event_col, str(config.repo_path), i)
            keep.extend(names)
        table = table.select(keep)
        on_demand = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        return IbisRetrievalJob(
            table,
            [v for v in on_demand if v.mode != "substrait"],
            full_feature_names,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=list(set(entity_df.columns) - {event_col}),
                min_event_timestamp=ts_range[0],
                max_event_timestamp=ts_range[1],
            ),
            data_source_writer=_write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
            repo_path=str(config.repo_path),
        )


def _join_view(
    table: ibis.Table, view: FeatureView, names: list[str], event_col: str, repo_path: str, i: int
) -> ibis.Table:
    """``table`` with ``names`` from ``view``: the newest row at or before each row's time, within the TTL."""
    source = view.batch_source
    if source is None:
        raise ValueError(f"feature view {view.name} has no batch source to read")
    raw = _read_data_source(source, repo_path)
    for old_name, new_name in source.field_mapping.items():
        if old_name in raw.columns:
            raw = raw.rename({new_name: old_name})
    keys = [c.name for c in view.entity_columns]
    stamp, key_of = f"__ts_{i}", {k: f"__key_{i}_{k}" for k in keys}
    right = raw.select(
        **{key_of[k]: raw[k] for k in keys},
        **{stamp: raw[source.timestamp_field].cast(dt.Timestamp(timezone="UTC"))},
        **{n: raw[n] for n in names},
    )
    joined = table.asof_join(
        right, on=table[event_col] >= right[stamp], predicates=[table[k] == right[key_of[k]] for k in keys]
    )
    if view.ttl:
        fresh = joined[stamp] + ibis.interval(seconds=int(view.ttl.total_seconds())) >= joined[event_col]
        joined = joined.mutate(**{n: fresh.ifelse(joined[n], ibis.null()) for n in names})
    return joined.select([*table.columns, *names])
