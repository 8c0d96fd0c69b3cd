"""The platform image reads the offline store's parquet from S3-compatible storage, as pods do.

moto's S3 server on loopback stands in for MinIO. The offline tables of the containerized
pipeline run are uploaded to it; Feast's point-in-time join then runs twice over the same
entity rows: in the platform image against ``s3://`` (httpfs from the hashed wheel, the endpoint
from the settings), and on the host against the local files. Both must agree, value for value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from ctloop.adapters import featurestore as fs
from ctloop.config import Settings
from tests.s3_server import BUCKET, CREDENTIALS, moto_s3, s3_client

FEATURES = [
    "origin_weather:temp",
    "origin_weather:precip",
    "carrier_delay:carrier_flights_28d",
    "carrier_delay:carrier_delay_rate_7d",
    "route_delay:route_delay_rate_28d",
    "plane:plane_seats",
]
ENTITIES = pd.DataFrame(
    {
        "origin": ["JFK", "EWR", "LGA", "JFK", "EWR", "LGA"],
        "carrier": ["B6", "UA", "DL", "AA", "EV", "MQ"],
        "route": ["JFK-BOS", "EWR-ORD", "LGA-ATL", "JFK-LAX", "EWR-IAD", "LGA-CLT"],
        "tailnum": ["N503JB", "N14228", "N3DUAA", "N3ETAA", "N11150", "N501MQ"],
        "event_timestamp": pd.to_datetime(
            [
                "2013-03-02 13:30",
                "2013-03-10 07:05",
                "2013-03-15 18:45",
                "2013-03-20 06:00",
                "2013-03-29 21:10",
                "2013-03-31 12:00",
            ],
            utc=True,
        ),
    }
)
JOIN = """
import json, sys
import pandas as pd
from ctloop.adapters import featurestore as fs
from ctloop.config import Settings
settings = Settings.from_json(sys.argv[1])
entities = pd.read_json(sys.argv[2], orient="records", convert_dates=["event_timestamp"])
entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True)
store = fs.open_store(settings)
fs.apply(store, fs.definitions(settings))
frame = store.get_historical_features(entity_df=entities, features=json.loads(sys.argv[3])).to_df()
frame["event_timestamp"] = frame["event_timestamp"].astype(str)
print("RESULT" + frame.sort_values(["origin", "event_timestamp"]).to_json(orient="records"))
"""


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """Moto's S3 server on a free loopback port, with the offline store's bucket."""
    with moto_s3(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


def joined(lines: str) -> list[dict[str, object]]:
    """The rows a JOIN run printed."""
    (result,) = [line for line in lines.splitlines() if line.startswith("RESULT")]
    return json.loads(result.removeprefix("RESULT"))


def test_the_platform_image_joins_features_from_offline_parquet_on_s3(box_settings, trained, tag, podman, s3_endpoint):
    """Feast in the platform image, reading s3:// through the object store's endpoint, matches local files."""
    offline = fs.feast_dir(box_settings) / "data"
    tables = sorted(offline.rglob("*.parquet"))  # the day partitions and the static table
    assert tables, "the containerized feature pipeline wrote no offline tables"
    client = s3_client(s3_endpoint)
    for table in tables:
        client.upload_file(str(table), BUCKET, f"data/{table.relative_to(offline)}")

    entities = ENTITIES.assign(event_timestamp=ENTITIES["event_timestamp"].astype(str)).to_json(orient="records")
    in_pod = Settings().replace(  # the image's defaults, as a pod resolves them (root /app)
        paths=replace(Settings().paths, data_dir="/tmp/ctloop"),
        features=replace(Settings().features, offline_uri=f"s3://{BUCKET}/data"),
        pipeline=replace(Settings().pipeline, s3_endpoint_url=s3_endpoint),
    )
    argv = [podman.binary, "run", "--rm", "--network", "host", "--label", "ctloop.owner=ctloop"]
    argv += [arg for key, value in CREDENTIALS.items() for arg in ("-e", f"{key}={value}")]
    argv += [f"ghcr.io/ctloop/platform:{tag}", "python", "-c", JOIN, in_pod.to_json(portable=True), entities]
    argv.append(json.dumps(FEATURES))
    done = subprocess.run(argv, env=podman.env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    from_s3 = joined(done.stdout)

    local_settings = box_settings.replace(
        paths=replace(box_settings.paths, data_dir=str(Path(box_settings.data_dir) / "local-join"))
    )
    local_settings = local_settings.replace(features=replace(local_settings.features, offline_uri=str(offline)))
    done = subprocess.run(
        [sys.executable, "-c", JOIN, local_settings.to_json(), entities, json.dumps(FEATURES)],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from_files = joined(done.stdout)

    assert len(from_s3) == len(ENTITIES)
    assert from_s3 == from_files
    assert any(row["temp"] is not None for row in from_s3)  # real values, not only nulls
