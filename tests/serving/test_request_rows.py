"""How the feature client lays out its online reads.

Each view's distinct keys are packed into the fewest rows, and the views are grouped into the
reads that cost the server least.
"""

from __future__ import annotations

import pytest

from serving.features_client import READ_COST, ROW_COST, FeatureClient, _partitions

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


LAYOUT = {  # the feature service's online views, with their numbers of features
    "origin_weather": {"join_keys": ["origin"], "features": [f"w{i}" for i in range(8)], "ttl_s": 10800.0},
    "carrier_delay": {"join_keys": ["carrier"], "features": [f"c{i}" for i in range(4)], "ttl_s": 172800.0},
    "route_delay": {"join_keys": ["route"], "features": ["r0", "r1"], "ttl_s": 172800.0},
}
ORIGINS, CARRIERS = ("EWR", "JFK", "LGA"), ("AA", "B6", "DL", "UA", "WN", "9E", "EV", "MQ", "US")
HOUR = [  # an hour's departures: 50 routes, three origins, nine carriers
    {"origin": ORIGINS[i % 3], "carrier": CARRIERS[i % 9], "route": f"{ORIGINS[i % 3]}-D{i:02d}"} for i in range(50)
]


def reads_for(flights: list[dict[str, str]], read_cost: float = READ_COST, views: dict | None = None) -> list:
    client = FeatureClient("http://127.0.0.1:1", views or LAYOUT, 1.0, 0.0, 10, 0.0, read_cost)
    return client.reads(flights, {view: list(range(len(flights))) for view in client.views})


def test_an_hour_reads_its_routes_apart_from_the_few_origins_and_carriers():
    """Read together, each of the 50 rows would carry the weather and the carrier rates again."""
    assert sorted(map(sorted, reads_for(HOUR))) == [["carrier_delay", "origin_weather"], ["route_delay"]]
    together = READ_COST + 50 * (ROW_COST + 14)
    apart = READ_COST + 50 * (ROW_COST + 2) + READ_COST + 9 * (ROW_COST + 12)
    assert apart < together  # what the choice rests on, with the defaults


@pytest.mark.parametrize("flights", [HOUR[:1], HOUR[:4]], ids=["one flight", "four flights"])
def test_a_few_flights_are_read_at_once(flights):
    """Another read costs more than a few rows of repeated values."""
    assert reads_for(flights) == [list(LAYOUT)]


def test_the_read_cost_bounds_the_grouping():
    """No cost per read: here every view apart (each read has its own view's rows); a prohibitive one: all at once."""
    assert sorted(map(sorted, reads_for(HOUR, 0.0))) == [["carrier_delay"], ["origin_weather"], ["route_delay"]]
    assert reads_for(HOUR, 1e12) == [list(LAYOUT)]


def test_views_sharing_part_of_their_keys_are_priced_at_a_row_per_flight():
    """Carrier by origin beside origin: their read would have a row per flight combination, so they go apart."""
    views = {
        "origin_weather": LAYOUT["origin_weather"],
        "origin_carrier": {"join_keys": ["origin", "carrier"], "features": ["n"], "ttl_s": 0.0},
    }
    flights = [{**flight, "route": "x"} for flight in HOUR]  # 9 origin-carrier pairs, 50 flights
    together = READ_COST + 50 * (ROW_COST + 9)
    apart = READ_COST + 3 * (ROW_COST + 8) + READ_COST + 9 * (ROW_COST + 1)
    assert apart < together
    assert sorted(map(sorted, reads_for(flights, views=views))) == [["origin_carrier"], ["origin_weather"]]


@pytest.mark.parametrize(("n", "bell"), [(0, 1), (1, 1), (2, 2), (3, 5), (4, 15), (5, 52)])
def test_every_grouping_of_the_views_is_considered_once(n, bell):
    """The groupings of n views are the Bell number's many, each covering every view exactly once."""
    items = [f"v{i}" for i in range(n)]
    found = [tuple(sorted(tuple(sorted(group)) for group in partition)) for partition in _partitions(items)]
    assert len(found) == len(set(found)) == bell
    assert all(sorted(v for group in partition for v in group) == items for partition in found)
