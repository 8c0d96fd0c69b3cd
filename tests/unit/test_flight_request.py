"""The shared request definition: validation of flight fields and the entity keys of a flight."""

from __future__ import annotations

import pandas as pd
import pytest

from ctloop.contract import flight_request
from ctloop.contract.flight_request import RequestError, parse_flight, parse_flights
from ctloop.core import features

GOOD = {"origin": "JFK", "carrier": "B6", "tailnum": "N503JB", "dest": "BOS", "sched_dep": "2013-04-02T08:30"}
GOOD = {**GOOD, "distance": 187}


def test_a_good_flight_is_normalized():
    """Times gain seconds, a missing tail number becomes UNKNOWN, distance a float."""
    flight = parse_flight({k: v for k, v in GOOD.items() if k != "tailnum"}, "f")
    assert flight.sched_dep_local == "2013-04-02T08:30:00"
    assert flight.tailnum == flight_request.UNKNOWN_TAILNUM and flight.distance == 187.0
    assert parse_flight({**GOOD, "tailnum": None}, "f").tailnum == flight_request.UNKNOWN_TAILNUM


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"origin": None}, "f.origin"),
        ({"origin": "ORD"}, "f.origin"),
        ({"carrier": "b6"}, "f.carrier"),
        ({"dest": "BOSTON"}, "f.dest"),
        ({"tailnum": "N 503"}, "f.tailnum"),
        ({"sched_dep": "02/04/2013 08:30"}, "f.sched_dep"),
        ({"sched_dep": "2013-04-02T08:30:00Z"}, "f.sched_dep"),
        ({"distance": True}, "f.distance"),
        ({"distance": "187"}, "f.distance"),
        ({"distance": float("nan")}, "f.distance"),
        ({"distance": -5}, "f.distance"),
        ({"distance": 1e300}, "f.distance"),
        ({"seats": 150}, "f.seats"),
    ],
)
def test_bad_fields_are_named(change, field):
    """Each wrong field raises RequestError naming exactly that field."""
    with pytest.raises(RequestError) as caught:
        parse_flight({**GOOD, **change}, "f")
    assert caught.value.field == field and str(caught.value).startswith(field)


def test_missing_field_is_named():
    """A required field that is absent is reported as missing."""
    with pytest.raises(RequestError, match=r"^f\.dest: missing"):
        parse_flight({k: v for k, v in GOOD.items() if k != "dest"}, "f")


@pytest.mark.parametrize(("value", "message"), [([], "empty batch"), ([GOOD] * 3, "over the limit"), ({}, "list")])
def test_batch_rules(value, message):
    """A batch is a non-empty list of at most max_batch flights."""
    with pytest.raises(RequestError, match=message):
        parse_flights(value, max_batch=2)


def test_entity_keys_match_the_training_entity_frame():
    """A request's join keys equal the ones the training set's entity frame builds for the same flight."""
    flights = pd.DataFrame(
        {
            "flight_id": ["a", "b"],
            "origin": ["JFK", "EWR"],
            "carrier": ["B6", "UA"],
            "dest": ["BOS", "ORD"],
            "route": ["JFK-BOS", "EWR-ORD"],
            "tailnum": ["N503JB", None],
            "sched_dep_utc": pd.to_datetime(["2013-04-02T12:30Z", "2013-04-02T22:30Z"]),
            "sched_dep_local": ["2013-04-02T08:30:00", "2013-04-02T18:30:00"],
            "distance": [187, 719],
        }
    )
    frame = features.entity_frame(flights)
    for i, row in flights.iterrows():
        request = {"origin": row.origin, "carrier": row.carrier, "dest": row.dest, "tailnum": row.tailnum}
        flight = parse_flight({**request, "sched_dep": row.sched_dep_local, "distance": row.distance}, "f")
        expected = {k: frame.loc[i, k] for k in features.ENTITY_COLUMNS}
        assert flight.entity_keys() == expected


def test_the_example_flight_is_a_valid_request():
    """The example `ctloop serve` prints (and benchmarks send) passes the request rules."""
    (flight,) = parse_flights([flight_request.EXAMPLE], max_batch=1)
    assert (flight.origin, flight.carrier, flight.distance) == ("JFK", "B6", 187.0)
