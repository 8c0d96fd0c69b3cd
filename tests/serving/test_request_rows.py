"""How the feature client lays out one online read: each view's distinct keys packed into the fewest rows."""

from __future__ import annotations

from serving.features_client import FeatureClient

VIEWS = {
    "origin_weather": {"join_keys": ["origin"], "features": ["temp"], "ttl_s": 10800.0},
    "carrier_delay": {"join_keys": ["carrier"], "features": ["carrier_flights_7d"], "ttl_s": 172800.0},
    "route_delay": {"join_keys": ["route"], "features": ["route_flights_28d"], "ttl_s": 172800.0},
}
FLIGHTS = [
    {"origin": "JFK", "carrier": "B6", "route": "JFK-BOS"},
    {"origin": "JFK", "carrier": "AA", "route": "JFK-MIA"},
    {"origin": "EWR", "carrier": "B6", "route": "EWR-BOS"},
    {"origin": "JFK", "carrier": "B6", "route": "JFK-BOS"},
    {"origin": "LGA", "carrier": "B6", "route": "LGA-ORD"},
]


def rows_for(views: dict, flights: list[dict[str, str]]) -> tuple[dict[str, list[str]], dict]:
    client = FeatureClient("http://127.0.0.1:1", views, 1.0, 0.0, 10)  # never connects here
    return client._request_rows(flights, {view: list(range(len(flights))) for view in views})


def test_a_read_has_as_many_rows_as_the_view_with_the_most_distinct_keys():
    """Four distinct routes, three origins, two carriers: four rows, each view's key in the row it is mapped to."""
    entities, slots = rows_for(VIEWS, FLIGHTS)
    assert {k: len(v) for k, v in entities.items()} == {"origin": 4, "carrier": 4, "route": 4}
    for view, spec in VIEWS.items():
        (key,) = spec["join_keys"]
        for flight in FLIGHTS:
            assert entities[key][slots[view][(flight[key],)]] == flight[key], (view, flight)
        assert set(entities[key]) == {f[key] for f in FLIGHTS}  # padding repeats a key of the view's own


def test_views_sharing_part_of_their_keys_read_one_row_per_distinct_combination():
    """A view keyed by origin beside one keyed by origin and carrier: rows are the flights' distinct combinations."""
    views = {
        "origin_weather": VIEWS["origin_weather"],
        "origin_carrier": {"join_keys": ["origin", "carrier"], "features": ["n"], "ttl_s": 0.0},
    }
    entities, slots = rows_for(views, FLIGHTS)
    assert {k: len(v) for k, v in entities.items()} == {"carrier": 4, "origin": 4}
    for flight in FLIGHTS:
        row = slots["origin_carrier"][(flight["origin"], flight["carrier"])]
        assert (entities["origin"][row], entities["carrier"][row]) == (flight["origin"], flight["carrier"])
        assert entities["origin"][slots["origin_weather"][(flight["origin"],)]] == flight["origin"]
