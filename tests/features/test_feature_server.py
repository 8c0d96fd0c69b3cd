"""`feast serve` over the rendered local config answers the feature service, request features included."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from ctloop.adapters import featurestore as fs
from ctloop.adapters import services
from tests.online_store import online_features

pytestmark = pytest.mark.slow
FEAST = str(Path(sys.executable).parent / "feast")


def test_feature_server_serves_flight_delay_v1(materialized, store):
    """The feature server returns the same values as the in-process online read, mapped by name."""
    folder = fs.write_rendered_yaml(materialized)
    port = services.free_port()
    args = [
        FEAST,
        "-c",
        str(folder),
        "serve",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--workers",
        "1",
        "--max-requests",
        "0",
        "--no-access-log",
    ]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    try:
        services.wait_until(lambda: services.port_open(port), "feast serve", timeout_s=60, interval_s=0.25)
        row = {
            "origin": "JFK",
            "carrier": "B6",
            "route": "JFK-BOS",
            "tailnum": "N503JB",
            "sched_dep_local": "2013-03-15T08:30:00",
            "distance": 187.0,
        }
        body = {"feature_service": "flight_delay_v1", "entities": {k: [v] for k, v in row.items()}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/get-online-features",
            json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
            answer = json.load(response)
    finally:
        server.terminate()
        server.wait(timeout=10)
    served = {n: r["values"][0] for n, r in zip(answer["metadata"]["feature_names"], answer["results"], strict=True)}
    assert served["sched_hour"] == 8.5 and served["distance_mi"] == 187.0  # the on-demand view ran in the server
    local = online_features(store, materialized.features.feature_service, [row]).iloc[0]
    for name in fs.feature_names(store, materialized.features.feature_service):
        want = local[name]
        assert (served[name] is None and pd.isna(want)) or served[name] == pytest.approx(want), name
