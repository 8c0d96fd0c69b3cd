"""The partitioned offline store on S3-compatible storage, as a cluster's feature pipeline writes it.

moto's S3 server on loopback stands in for MinIO: days appended, a rerun replacing its day, a
refusal writing nothing, the tables read back, all through the object store's endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest

from ctloop.adapters.offline_store import OfflineStore
from ctloop.core import partitions as parts
from tests.conftest import partition_files
from tests.s3_server import BUCKET, CREDENTIALS, moto_s3, s3_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[str]:
    """Moto's S3 server on a free loopback port, with the offline store's bucket."""
    with moto_s3(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


def test_days_append_rerun_and_refuse_on_s3(endpoint, tmp_path, monkeypatch):
    """Two days in, one rerun replacing its own file, a gap refused with the store unchanged."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    store = OfflineStore(f"s3://{BUCKET}/data", endpoint)
    plane = tmp_path / "plane.parquet"
    pd.DataFrame({"tailnum": ["N1"]}).to_parquet(plane, index=False)
    d1, d2, gap = date(2013, 3, 1), date(2013, 3, 2), date(2013, 3, 4)
    files = {d1: partition_files(tmp_path, d1, 1.0), d2: partition_files(tmp_path, d2, 2.0)}
    store.append([d1, d2], files, {"plane": plane}, {d1: {"x": 1}, d2: {"x": 1}}, "run-1")
    assert store.days() == [d1, d2]
    kept = store.manifest()["days"]["2013-03-01"]

    store.append([d2], {d2: partition_files(tmp_path, d2, 9.0)}, {"plane": plane}, {d2: {"x": 1}}, "run-2")
    assert store.read("carrier_delay")["x"].tolist() == [1.0, 9.0]
    assert store.manifest()["days"]["2013-03-01"] == kept
    assert store.read("plane")["tailnum"].tolist() == ["N1"]

    before = store.manifest()
    with pytest.raises(parts.PartitionRuleError, match="no-gap"):
        store.append([gap], {gap: partition_files(tmp_path, gap, 4.0)}, {"plane": plane}, {gap: {"x": 1}}, "run-3")
    assert store.manifest() == before
    listed = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix="data/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    assert not any("2013-03-04" in k or ".staging" in k for k in keys), keys
    assert "data/route_delay/day=2013-03-02/part.parquet" in keys
