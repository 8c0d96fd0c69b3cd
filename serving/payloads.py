"""Request and feedback bodies: validated field by field, every mistake a 400 naming the field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from ctloop.contract.flight_request import Flight, RequestError, parse_flights
from serving.errors import ServingError, bad_field

PREDICTION_NAME = "delay_probability"
REQUEST_KEYS = ("jsonData", "data", "meta")
FEEDBACK_KEYS = ("request", "response", "truth", "reward")
VERSION = re.compile(r"[0-9]{1,12}")
"""A registry version as the endpoint reports it (MLflow numbers versions); anything else is refused,
so that feedback cannot create metric series for made-up versions."""
MAX_INT_DIGITS = 308
"""Integers beyond a double's range (about 1.8e308) cannot become numbers in Seldon's protobuf."""


@dataclass(frozen=True)
class Feedback:
    """What a feedback body says: the version that answered, its probabilities, the true outcomes."""

    model_version: str
    probabilities: list[float]
    outcomes: list[int]


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise bad_field(field, f"expected a JSON object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _only(body: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise bad_field(f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(allowed)})")


def _finite(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(field, f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise bad_field(field, "number too large") from None
    if not math.isfinite(number):
        raise bad_field(field, "NaN and Infinity are not accepted")
    return number


def parse_request(body: object) -> Mapping[str, Any]:
    """The top level of a prediction request: exactly one of ``jsonData`` or ``data``."""
    request = _object(body, "request body")
    _only(request, REQUEST_KEYS, "")
    if "meta" in request:
        _object(request["meta"], "meta")
    if ("jsonData" in request) == ("data" in request):
        raise bad_field("jsonData", 'send either {"jsonData": {"flights": [...]}} or {"data": {"names", "ndarray"}}')
    return request


def flights(payload: object, max_batch: int) -> list[Flight]:
    """``jsonData.flights``: validated flights."""
    json_data = _object(payload, "jsonData")
    _only(json_data, ("flights",), "jsonData")
    if "flights" not in json_data:
        raise bad_field("jsonData.flights", "missing")
    try:
        return parse_flights(json_data["flights"], max_batch)
    except RequestError as exc:
        raise bad_field(exc.field, exc.message) from None


def feature_matrix(payload: object, feature_names: Sequence[str], max_batch: int) -> np.ndarray:
    """``data.names`` + ``data.ndarray`` with the model's features (any order, null for missing) → float32 rows."""
    data = _object(payload, "data")
    _only(data, ("names", "ndarray"), "data")
    names = data.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_field("data.names", "expected the list of feature names the model takes")
    expected = set(feature_names)
    if len(set(names)) != len(names) or set(names) != expected:
        missing = sorted(expected - set(names))
        extra = sorted(set(names) - expected)
        detail = f"missing {missing}" if missing else f"unknown {extra}" if extra else "repeated names"
        raise bad_field("data.names", f"{detail}; the model takes {list(feature_names)}")
    rows = data.get("ndarray")
    if not isinstance(rows, list):
        raise bad_field("data.ndarray", f"expected a list of rows, got {_kind(rows)}")
    if not rows:
        raise bad_field("data.ndarray", "empty batch: send at least one row")
    if len(rows) > max_batch:
        raise bad_field("data.ndarray", f"batch of {len(rows)} rows is over the limit of {max_batch}")
    order = [names.index(n) for n in feature_names]
    matrix = np.empty((len(rows), len(names)), dtype=np.float32)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise bad_field(f"data.ndarray[{i}]", f"expected a list of {len(names)} numbers or nulls")
        matrix[i] = [math.nan if row[k] is None else _finite(row[k], f"data.ndarray[{i}][{k}]") for k in order]
    return matrix


def _reject_constant(name: str) -> NoReturn:
    raise ServingError(400, "BAD_JSON", f"feedback body: {name} is not a JSON number")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ServingError(400, "BAD_JSON", f"feedback body: an integer of {digits} digits is too large")
    return int(text)


def check_json(raw: bytes) -> None:
    """400 unless ``raw`` is JSON (what Seldon decodes from a form field or ``?json=`` without a check)."""
    try:
        json.loads(raw)
    except ValueError as exc:
        raise ServingError(400, "BAD_JSON", f"request body is not valid JSON: {exc}") from None


def _column(message: object, where: str) -> list[Any]:
    """A flat list from ``{"data": {"ndarray": [x, ...] | [[x], ...]}}``."""
    data = _object(_object(message, where).get("data"), f"{where}.data")
    values = data.get("ndarray")
    if not isinstance(values, list):
        raise bad_field(f"{where}.data.ndarray", "expected a list with one value per flight")
    return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]


def _values(message: Mapping[str, Any], where: str, key: str, what: str) -> list[Any]:
    """One value per flight: ``jsonData.<key>`` or Seldon's ``data.ndarray``."""
    if "jsonData" not in message:
        return _column(message, where)
    values = _object(message["jsonData"], f"{where}.jsonData").get(key)
    if not isinstance(values, list):
        raise bad_field(f"{where}.jsonData.{key}", what)
    return values


def _version(response: Mapping[str, Any]) -> str:
    field = "response.meta.tags.model_version"
    tags = _object(_object(response.get("meta"), "response.meta").get("tags"), "response.meta.tags")
    version = tags.get("model_version")
    if version is None or version == "":
        raise bad_field(field, "missing: send back the response's meta.tags")
    number = isinstance(version, int | float) and not isinstance(version, bool)
    if number and 0 <= version < 10**12 and float(version).is_integer():  # protobuf makes tag numbers floats
        return str(int(version))
    if isinstance(version, str) and VERSION.fullmatch(version):
        return version
    raise bad_field(field, f"expected the version the response named (a number), got {str(version)[:40]!r}")


def parse_feedback(raw: bytes, max_batch: int) -> Feedback:
    """A feedback body: the response the endpoint gave and the true outcome of each flight."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_int=_bounded_int)
    except ValueError as exc:
        raise ServingError(400, "BAD_JSON", f"feedback body is not valid JSON: {exc}") from None
    feedback = _object(body, "feedback body")
    _only(feedback, FEEDBACK_KEYS, "")
    for name in ("response", "truth"):
        if name not in feedback:
            raise bad_field(name, "missing: send the response you got and the true outcomes")
    if "request" in feedback:
        _object(feedback["request"], "request")
    if "reward" in feedback:
        _finite(feedback["reward"], "reward")
    response = _object(feedback["response"], "response")
    probabilities = _values(response, "response", "probabilities", "expected the list the endpoint returned")
    version = _version(response)
    outcomes = _values(_object(feedback["truth"], "truth"), "truth", "delayed", "expected one true/false per flight")
    if not probabilities or len(probabilities) != len(outcomes) or len(outcomes) > max_batch:
        counts = f"{len(outcomes)} outcomes for {len(probabilities)} predictions"
        raise bad_field("truth", f"{counts}: give one per prediction (at most {max_batch})")
    ps = [_finite(p, f"response.probabilities[{i}]") for i, p in enumerate(probabilities)]
    if any(not 0.0 <= p <= 1.0 for p in ps):
        raise bad_field("response.probabilities", "probabilities lie in [0, 1]")
    ys: list[int] = []
    for i, y in enumerate(outcomes):
        if isinstance(y, str) or y not in (0, 1):
            raise bad_field(f"truth[{i}]", f"expected 1 (delayed 15+ min), 0 or a boolean, got {str(y)[:40]!r}")
        ys.append(int(y))
    return Feedback(version, ps, ys)
