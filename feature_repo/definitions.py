"""Feast definitions for the flight-delay model family.

Declarations only. Offline sources are parquet tables written by the feature pipeline
(``flight-features``): the hourly and daily views read a table partitioned by New York day, the
plane view a static table. Their paths here are relative; ctloop resolves them against the
environment's offline data location (``[features] offline_uri``: a local folder, or ``s3://...``
on a cluster).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, String
from feast.value_type import ValueType

from ctloop.core.partitions import partitioned_path

OWNER = "ml-platform@ctloop.dev"


def _source(name: str, partitioned: bool = True) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=partitioned_path(name) if partitioned else f"{name}.parquet",
        timestamp_field="event_timestamp",
    )


origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING, description="Departure airport (FAA)")
carrier = Entity(name="carrier", join_keys=["carrier"], value_type=ValueType.STRING, description="Airline code")
route = Entity(name="route", join_keys=["route"], value_type=ValueType.STRING, description="ORIGIN-DEST")
tailnum = Entity(name="tailnum", join_keys=["tailnum"], value_type=ValueType.STRING, description="Plane tail number")

weather_source = _source("origin_weather")
carrier_delay_source = _source("carrier_delay")
route_delay_source = _source("route_delay")
plane_source = _source("plane", partitioned=False)

origin_weather_fv = FeatureView(
    name="origin_weather",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=[
        Field(name=n, dtype=Float64)
        for n in ("temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib")
    ],
    source=weather_source,
    online=True,
    owner=OWNER,
    tags={"description": "Hourly weather observed at the origin airport"},
)

carrier_delay_fv = FeatureView(
    name="carrier_delay",
    entities=[carrier],
    ttl=timedelta(days=2),
    schema=[
        Field(name="carrier_flights_7d", dtype=Float64),
        Field(name="carrier_delay_rate_7d", dtype=Float64),
        Field(name="carrier_flights_28d", dtype=Float64),
        Field(name="carrier_delay_rate_28d", dtype=Float64),
    ],
    source=carrier_delay_source,
    online=True,
    owner=OWNER,
    tags={"description": "Carrier late-arrival rate over trailing windows of arrived flights"},
)

route_delay_fv = FeatureView(
    name="route_delay",
    entities=[route],
    ttl=timedelta(days=2),
    schema=[
        Field(name="route_flights_28d", dtype=Float64),
        Field(name="route_delay_rate_28d", dtype=Float64),
    ],
    source=route_delay_source,
    online=True,
    owner=OWNER,
    tags={"description": "Route late-arrival rate over 28 days of arrived flights"},
)

plane_fv = FeatureView(
    name="plane",
    entities=[tailnum],
    ttl=timedelta(0),
    schema=[
        Field(name="plane_year", dtype=Float64),
        Field(name="plane_seats", dtype=Float64),
        Field(name="plane_engines", dtype=Float64),
    ],
    source=plane_source,
    online=True,
    owner=OWNER,
    tags={"description": "Static plane attributes (FAA registry)"},
)

flight_request = RequestSource(
    name="flight_request",
    schema=[Field(name="sched_dep_local", dtype=String), Field(name="distance", dtype=Float64)],
)


@on_demand_feature_view(
    name="request_time",
    sources=[flight_request],
    schema=[
        Field(name="sched_hour", dtype=Float64),
        Field(name="sched_weekday", dtype=Float64),
        Field(name="sched_month", dtype=Float64),
        Field(name="distance_mi", dtype=Float64),
    ],
    mode="python",
    owner=OWNER,
    tags={"description": "Scheduled hour, weekday, month and distance from the request"},
)
def request_time(inputs: dict[str, Any]) -> dict[str, Any]:
    """Scheduled hour, weekday, month and distance (the shared definition in ctloop.contract.flight_request)."""
    from ctloop.contract.flight_request import request_features

    return request_features(inputs["sched_dep_local"], inputs["distance"])


flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    features=[origin_weather_fv, carrier_delay_fv, route_delay_fv, plane_fv, request_time],
    owner=OWNER,
    tags={"description": "Features of the flight-delay model, version 1", "model_family": "flight-delay"},
)
