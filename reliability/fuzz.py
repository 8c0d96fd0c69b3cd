"""Fuzzing the serving endpoint: malformed requests and schema-driven cases, and what it answered.

Two generators feed one oracle:

- ``malformed_probes``: hypothesis strategies for what clients get wrong, one family per kind:
  wrong types, missing and extra fields, huge numbers, NaN/Infinity, unicode (lone surrogates,
  NUL, invalid UTF-8, other encodings), deep nesting, wrong content types, truncated JSON,
  oversized bodies (with a Content-Length, and chunked without one), malformed feedback, and
  undeclared methods and paths (Seldon's own routes included);
- ``schema_cases``: schemathesis cases from ``serving/openapi.yaml``, positive and negative, each
  also judged by schemathesis's own checks (no 5xx, declared status codes and content types,
  response schemas, negative data rejected).

The oracle (``judge``): no 5xx and no dropped connection; every other non-2xx is a 4xx whose body
is the document's ``Error`` (``{"status": {"code", "status": "FAILURE", "reason", "info", ...}}``)
with ``code`` equal to the HTTP status; a 405 names the allowed methods in ``Allow``; a 200 from
predictions or feedback matches its declared schema.

``python -m reliability.fuzz --url http://127.0.0.1:9000`` runs it against any running endpoint
(``make serve``, a port-forwarded pod); ``make reliability`` runs it against the test stack and
writes ``bench/results/reliability.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from ctloop.contract.flight_request import CARRIERS, ORIGINS, REQUIRED_FIELDS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT_PATH = ROOT / "serving" / "openapi.yaml"
JSON = "application/json"
PREDICT_PATHS = ("/api/v1.0/predictions", "/api/v0.1/predictions", "/predict")
FEEDBACK_PATHS = ("/api/v1.0/feedback", "/api/v0.1/feedback", "/send-feedback")
# every route Seldon's app serves besides ours, and the documented read-only ones
OTHER_PATHS = (
    "/health/ping", "/health/status", "/api/v1.0/health/status", "/metrics", "/metadata", "/api/v1.0/metadata",
    "/seldon.json", "/transform-input", "/transform-output", "/route", "/aggregate",
)  # fmt: skip
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD")
TIMEOUT_S = 30.0
MAX_PROBLEMS = 50
HTTP_SERVER_REJECTS = (414, 431)
"""Request line over 4,094 bytes, headers over 8,190: gunicorn answers these itself, as HTML."""


# -- bodies -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """JSON text put verbatim into an encoded body (``NaN``, a 5,000-digit number, 10,000 brackets)."""

    text: str


def encode(value: Any, *, ascii_only: bool = True) -> bytes:
    """JSON bytes of ``value`` with each :class:`Raw` inlined; ``ascii_only=False``: UTF-8, lone surrogates kept."""
    raws: list[str] = []

    def swap(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(item.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(item, dict):
            return {k: swap(v) for k, v in item.items()}
        if isinstance(item, list):
            return [swap(v) for v in item]
        return item

    text = json.dumps(swap(value), ensure_ascii=ascii_only)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{i}\x00", ensure_ascii=ascii_only), raw, 1)
    return text.encode("utf-8", "surrogatepass")


def nested(depth: int, kind: str) -> Raw:
    """``depth`` nested arrays or objects around a number."""
    if kind == "array":
        return Raw("[" * depth + "1" + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


# -- what is sent -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """The endpoint's limits and the model's feature names (for ``data.names`` requests)."""

    max_body_bytes: int = 1_000_000
    max_batch: int = 1000
    feature_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """One request: its kind, method, path, body and how the body travels."""

    kind: str
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = JSON
    chunked: bool = False
    expect: int | None = None
    """The one status this probe must get (413 for a body over the limit), when there is one."""

    def describe(self, limit: int = 240) -> str:
        """A short reproduction: method, path, content type, the start of the body."""
        shown = self.body[:limit].decode("utf-8", "backslashreplace")
        more = f"... ({len(self.body)} bytes)" if len(self.body) > limit else ""
        how = " chunked" if self.chunked else ""
        return f"{self.method} {self.path} [{self.content_type}{how}] {shown}{more}"


@dataclass(frozen=True)
class Answer:
    """What came back: status (0 when nothing did), lower-cased headers, body, transport error."""

    status: int
    headers: dict[str, str]
    body: bytes
    error: str = ""


class Client:
    """Plain ``http.client`` requests, so that bodies, headers and chunking are exactly what a probe says."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        """``url``: the endpoint's base, ``http://host:port``."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected http://host:port, got {url!r}")
        self.host, self.port, self.timeout_s = parts.hostname, parts.port or 80, timeout_s

    def send(self, probe: Probe) -> Answer:
        """Send one probe on a new connection and read the whole answer."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        headers = {} if probe.content_type is None else {"Content-Type": probe.content_type}
        try:
            try:
                if probe.chunked:
                    conn.request(probe.method, probe.path, _chunks(probe.body), headers, encode_chunked=True)
                else:
                    conn.request(probe.method, probe.path, probe.body or None, headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (413) and closed before the whole body was sent: read its answer
            response = conn.getresponse()
            body = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        except (OSError, http.client.HTTPException) as exc:
            return Answer(0, {}, b"", f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


def _chunks(body: bytes, size: int = 65_536) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


# -- the oracle -------------------------------------------------------------------------------
class Oracle:
    """What every answer must be, from the OpenAPI document's schemas."""

    def __init__(self, document_path: Path = DOCUMENT_PATH) -> None:
        """Load the document once."""
        self.document = yaml.safe_load(document_path.read_text())
        components = self.document["components"]
        self._error = Draft202012Validator({**components["schemas"]["Error"], "components": components})
        self._ok: dict[str, Draft202012Validator] = {}
        for path in ("/api/v1.0/predictions", "/api/v1.0/feedback"):
            schema = self.document["paths"][path]["post"]["responses"]["200"]["content"][JSON]["schema"]
            self._ok[path] = Draft202012Validator({**schema, "components": components})

    def judge(self, method: str, path: str, answer: Answer) -> str | None:
        """None when the answer is acceptable, else what is wrong with it."""
        status = answer.status
        if status == 0 or status >= 500:
            return f"server error {status}: {answer.body[:300]!r}" if status else f"no answer ({answer.error})"
        if 200 <= status < 300:
            return self._success(method, path, answer)
        if status < 400:
            return f"unexpected {status}"
        if status in HTTP_SERVER_REJECTS and answer.headers.get("content-type", "").startswith("text/html"):
            return None  # gunicorn's HTTP parser refused the request line or headers: the app never saw it
        if status == 405 and "allow" not in answer.headers:
            return "405 without an Allow header"
        return None if method == "HEAD" else self._error_body(status, answer)

    def _error_body(self, status: int, answer: Answer) -> str | None:
        try:
            body = json.loads(answer.body)
        except ValueError:
            return f"{status} whose body is not JSON: {answer.body[:200]!r}"
        errors = sorted(self._error.iter_errors(body), key=str)
        if errors:
            return f"{status} body is not the Error schema ({errors[0].message[:200]}): {answer.body[:200]!r}"
        if body["status"]["code"] != status:
            return f"{status} body says code {body['status']['code']}"
        return None

    def _success(self, method: str, path: str, answer: Answer) -> str | None:
        documented = {"/api/v1.0/predictions": PREDICT_PATHS, "/api/v1.0/feedback": FEEDBACK_PATHS}
        for key, aliases in documented.items():
            if method == "POST" and path in aliases:
                try:
                    body = json.loads(answer.body)
                except ValueError:
                    return f"{answer.status} whose body is not JSON: {answer.body[:200]!r}"
                errors = sorted(self._ok[key].iter_errors(body), key=str)
                if errors:
                    return f"{answer.status} does not match the declared response: {errors[0].message[:200]}"
        return None


@dataclass
class Tally:
    """Requests sent and answers by status class, per kind, and the problems found."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    problem_count: int = 0

    def record(self, kind: str, status: int, problem: str | None, request: str) -> None:
        """Count one exchange; keep the first problems with their requests."""
        self.sent += 1
        self.statuses[status] += 1
        kind_counts = self.by_kind.setdefault(kind, Counter())
        kind_counts["sent"] += 1
        kind_counts[status_class(status)] += 1
        if problem is not None:
            self.problem_count += 1
            kind_counts["problems"] += 1
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append({"kind": kind, "status": status, "problem": problem, "request": request})

    def count(self, status_class_name: str) -> int:
        """Answers in one class (``2xx``, ``4xx``, ``5xx``, ``no answer``)."""
        return sum(n for s, n in self.statuses.items() if status_class(s) == status_class_name)

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready data."""
        return {
            "requests": self.sent,
            "2xx": self.count("2xx"),
            "4xx": self.count("4xx"),
            "5xx": self.count("5xx"),
            "no_answer": self.count("no answer"),
            "problems": self.problem_count,
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(self.by_kind.items())},
            "first_problems": self.problems,
        }


def status_class(status: int) -> str:
    """``2xx``/``3xx``/``4xx``/``5xx``, or ``no answer`` for 0."""
    return "no answer" if status == 0 else f"{status // 100}xx"


# -- strategies: the pieces -------------------------------------------------------------------
DESTS = ("BOS", "ATL", "ORD", "LAX", "MIA", "DCA", "SFO", "CLT")
TAILNUMS = ("N503JB", "N14228", "N24211", "N619AA")
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates, NUL, controls included


def json_kind(value: Any) -> str:
    """The JSON type of a Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), "other")


def other_than(*kinds: str) -> st.SearchStrategy[Any]:
    """A JSON value of any type but these."""
    return JSON_VALUES.filter(lambda v: json_kind(v) not in kinds)


def flights() -> st.SearchStrategy[dict[str, Any]]:
    """A valid flight request row."""
    times = st.datetimes(datetime(2013, 1, 1), datetime(2013, 12, 31, 23, 59))  # local times, as sent
    return st.fixed_dictionaries(
        {
            "origin": st.sampled_from(ORIGINS),
            "carrier": st.sampled_from(CARRIERS),
            "dest": st.sampled_from(DESTS),
            "sched_dep": times.map(lambda t: t.isoformat(timespec="seconds")),
            "distance": st.integers(80, 4983),
        },
        optional={"tailnum": st.sampled_from(TAILNUMS) | st.none()},
    )


def feature_rows(limits: Limits) -> st.SearchStrategy[dict[str, Any]]:
    """A valid ``data`` payload: the model's names in a random order and rows of numbers or nulls."""
    names = list(limits.feature_names) or ["temp", "distance_mi"]
    cell = st.none() | st.floats(-1e6, 1e6, allow_nan=False)
    return st.permutations(names).flatmap(
        lambda order: st.fixed_dictionaries(
            {
                "names": st.just(order),
                "ndarray": st.lists(st.lists(cell, min_size=len(order), max_size=len(order)), min_size=1, max_size=3),
            }
        )
    )


def feedback_bodies() -> st.SearchStrategy[dict[str, Any]]:
    """A valid feedback body (the response the endpoint gave and one outcome per flight)."""

    def build(ps: list[float]) -> st.SearchStrategy[dict[str, Any]]:
        tags = {"model_name": "flight-delay", "model_version": "1", "alias": "champion", "feature_service": "x"}
        response = {"jsonData": {"probabilities": ps}, "meta": {"tags": tags}}
        truth = st.lists(st.sampled_from([0, 1, True, False]), min_size=len(ps), max_size=len(ps))
        return truth.map(lambda ys: {"response": response, "truth": {"data": {"ndarray": ys}}})

    return st.lists(st.floats(0, 1), min_size=1, max_size=4).flatmap(build)


def request_bodies(limits: Limits) -> st.SearchStrategy[dict[str, Any]]:
    """A valid prediction body: flights, or the model's features."""
    by_flights = st.lists(flights(), min_size=1, max_size=3).map(lambda rows: {"jsonData": {"flights": rows}})
    by_features = feature_rows(limits).map(lambda data: {"data": data})
    return by_flights | by_features if limits.feature_names else by_flights


def _predict(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(PREDICT_PATHS))


def _feedback(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(FEEDBACK_PATHS))


Path_ = tuple[str | int, ...]
FLIGHT_FIELDS = (*REQUIRED_FIELDS, "tailnum")
FLIGHT_POSITIONS: tuple[Path_, ...] = (
    *[("jsonData", "flights", 0, name) for name in FLIGHT_FIELDS],
    ("jsonData", "flights", 0),
    ("jsonData", "flights"),
    ("jsonData",),
    ("meta",),
    (),
)
DATA_POSITIONS: tuple[Path_, ...] = (
    ("data", "ndarray", 0, 0),
    ("data", "ndarray", 0),
    ("data", "ndarray"),
    ("data", "names", 0),
    ("data", "names"),
    ("data",),
    (),
)
FEEDBACK_POSITIONS: tuple[Path_, ...] = (
    ("response", "jsonData", "probabilities", 0),
    ("response", "jsonData", "probabilities"),
    ("response", "meta", "tags", "model_version"),
    ("response", "meta", "tags"),
    ("response",),
    ("truth", "data", "ndarray", 0),
    ("truth",),
    ("reward",),
    ("request",),
    (),
)


def put(body: Any, path: Path_, value: Any) -> Any:
    """``body`` with ``value`` at ``path`` (the whole body replaced for an empty path)."""
    if not path:
        return value
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def _put(draw: st.DrawFn, body: dict[str, Any], value: Any) -> Any:
    """A prediction body with ``value`` at one of its positions."""
    positions = FLIGHT_POSITIONS if "jsonData" in body else DATA_POSITIONS
    return put(body, draw(st.sampled_from(positions)), value)


def _put_feedback(draw: st.DrawFn, body: dict[str, Any], value: Any) -> Any:
    """A feedback body with ``value`` at one of its positions."""
    return put(body, draw(st.sampled_from(FEEDBACK_POSITIONS)), value)


# -- strategies: one per kind -----------------------------------------------------------------
def _huge(draw: st.DrawFn) -> Any:
    digits = draw(st.integers(19, 6000))
    sign = draw(st.sampled_from(["", "-"]))
    return draw(
        st.sampled_from(
            [
                Raw(f"{sign}1{'0' * digits}"),  # past float range, and past Python's 4,300-digit int limit
                Raw(f"{sign}1e{digits}"),
                Raw(f"{sign}0.{'0' * digits}1"),
                Raw(f"{sign}1E+99999"),
                1.7976931348623157e308,
                -1.7976931348623157e308,
                2**64,
                -(2**63),
                Raw("5e-324"),
                Raw("-0"),
                Raw("-0.0e-0"),
            ]
        )
    )


def wrong_type(draw: st.DrawFn, limits: Limits) -> Probe:
    """A value of another JSON type at a flight field, a feature cell or a container."""
    if draw(st.booleans()):
        body = _put(draw, draw(request_bodies(limits)), draw(JSON_VALUES))
        return Probe("wrong_type", "POST", _predict(draw), encode(body))
    flight = draw(flights())
    name = draw(st.sampled_from(REQUIRED_FIELDS))
    flight[name] = draw(other_than("number") if name == "distance" else other_than("string"))
    return Probe("wrong_type", "POST", _predict(draw), encode({"jsonData": {"flights": [flight]}}))


def missing_field(draw: st.DrawFn, limits: Limits) -> Probe:
    """A required field (or payload) left out of a request or a feedback."""
    choice = draw(st.sampled_from(["flight", "payload", "data", "feedback"]))
    if choice == "flight":
        flight = draw(flights())
        del flight[draw(st.sampled_from(REQUIRED_FIELDS))]
        return Probe("missing_field", "POST", _predict(draw), encode({"jsonData": {"flights": [flight]}}))
    if choice == "payload":
        body = draw(st.sampled_from([{}, {"jsonData": {}}, {"meta": {}}, {"data": {}}, {"jsonData": None}]))
        return Probe("missing_field", "POST", _predict(draw), encode(body))
    if choice == "data":
        data = draw(feature_rows(limits))
        del data[draw(st.sampled_from(["names", "ndarray"]))]
        return Probe("missing_field", "POST", _predict(draw), encode({"data": data}))
    feedback = draw(feedback_bodies())
    path = draw(st.sampled_from([("response",), ("truth",), ("response", "meta"), ("response", "jsonData")]))
    target = feedback
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return Probe("missing_field", "POST", _feedback(draw), encode(feedback))


def extra_field(draw: st.DrawFn, limits: Limits) -> Probe:
    """An unknown key (any unicode) in a request, a flight, ``data`` or a feedback."""
    key, value = draw(st.text(min_size=1, max_size=24)), draw(JSON_VALUES)
    if draw(st.integers(0, 3)) == 0:
        feedback = draw(feedback_bodies())
        feedback.setdefault(key, value)
        return Probe("extra_field", "POST", _feedback(draw), encode(feedback))
    body = draw(request_bodies(limits))
    if "jsonData" in body:
        target = draw(st.sampled_from([body, body["jsonData"], body["jsonData"]["flights"][0]]))
    else:
        target = draw(st.sampled_from([body, body["data"]]))
    if key != "meta":
        target.setdefault(key, value)
    return Probe("extra_field", "POST", _predict(draw), encode(body))


def huge_number(draw: st.DrawFn, limits: Limits) -> Probe:
    """Numbers past a double's range, past Python's 4,300-digit limit, subnormal, negative zero."""
    if draw(st.integers(0, 2)) == 0:
        body = _put_feedback(draw, draw(feedback_bodies()), _huge(draw))
        return Probe("huge_number", "POST", _feedback(draw), encode(body))
    body = draw(request_bodies(limits))
    path = ("jsonData", "flights", 0, "distance") if "jsonData" in body else ("data", "ndarray", 0, 0)
    return Probe("huge_number", "POST", _predict(draw), encode(put(body, path, _huge(draw))))


def nan_infinity(draw: st.DrawFn, limits: Limits) -> Probe:
    """``NaN``/``Infinity`` tokens (not JSON, but Python's parser takes them) anywhere a value goes."""
    token = Raw(draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "inf"])))
    if draw(st.integers(0, 2)) == 0:
        return Probe(
            "nan_infinity", "POST", _feedback(draw), encode(_put_feedback(draw, draw(feedback_bodies()), token))
        )
    body = draw(request_bodies(limits))
    if "jsonData" in body and draw(st.booleans()):
        body = put(body, ("jsonData", "flights", 0, "distance"), token)
    else:
        body = _put(draw, body, token)
    return Probe("nan_infinity", "POST", _predict(draw), encode(body))


def unicode(draw: st.DrawFn, limits: Limits) -> Probe:
    """Any code point (lone surrogates, NUL, controls) in values and keys; invalid UTF-8; BOM; UTF-16/32."""
    how = draw(st.sampled_from(["field", "key", "version", "invalid_utf8", "bom", "utf16"]))
    if how == "version":
        feedback = _put_feedback(draw, draw(feedback_bodies()), draw(ANY_TEXT))
        return Probe("unicode", "POST", _feedback(draw), encode(feedback, ascii_only=draw(st.booleans())))
    body = draw(request_bodies(limits))
    if how == "field":
        body = {
            "jsonData": {"flights": [put(draw(flights()), (draw(st.sampled_from(FLIGHT_FIELDS)),), draw(ANY_TEXT))]}
        }
    elif how == "key":
        body = _put(draw, body, {draw(ANY_TEXT): draw(ANY_TEXT)})
    raw = encode(body, ascii_only=draw(st.booleans()))
    if how == "invalid_utf8":
        junk = draw(st.binary(min_size=1, max_size=8).filter(lambda b: not _utf8(b)))
        raw = raw.replace(b'"', b'"' + junk, 1) if draw(st.booleans()) else raw + junk
    elif how == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif how == "utf16":
        raw = raw.decode().encode(draw(st.sampled_from(["utf-16", "utf-16-be", "utf-32"])))
    return Probe("unicode", "POST", _predict(draw), raw)


def deep_nesting(draw: st.DrawFn, limits: Limits) -> Probe:
    """Arrays or objects nested 2 to 200,000 deep at any position (Python's parser recurses)."""
    depth = draw(st.sampled_from([50, 200, 999, 1001, 5000, 20_000, 100_000]) | st.integers(2, 200_000))
    deep = nested(depth, draw(st.sampled_from(["array", "object"])))
    if draw(st.integers(0, 2)) == 0:
        return Probe(
            "deep_nesting", "POST", _feedback(draw), encode(_put_feedback(draw, draw(feedback_bodies()), deep))
        )
    return Probe("deep_nesting", "POST", _predict(draw), encode(_put(draw, draw(request_bodies(limits)), deep)))


CONTENT_TYPES = (
    None, "", "text/plain", "application/xml", "text/json", "application/x-www-form-urlencoded",
    "application/json; charset=latin-1", "application/json; charset=utf-16", "APPLICATION/JSON",
    "application/json-seq", "application/vnd.api+json", "*/*", "application/octet-stream", "multipart/form-data",
    'application/json; boundary="x"', "application/json;;;",
)  # fmt: skip
FORM = "application/x-www-form-urlencoded"


def content_type(draw: st.DrawFn, limits: Limits) -> Probe:
    """A good body under a wrong, odd or missing Content-Type; form fields ``json=`` good and bad; multipart."""
    feedback = draw(st.booleans())
    path = _feedback(draw) if feedback else _predict(draw)
    good = encode(draw(feedback_bodies()) if feedback else draw(request_bodies(limits)))
    how = draw(st.sampled_from(["header", "form", "form_garbage", "multipart"]))
    if how == "header":
        latin1 = st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=30)
        return Probe("content_type", "POST", path, good, draw(st.sampled_from(CONTENT_TYPES) | latin1))
    if how == "form":
        return Probe("content_type", "POST", path, b"json=" + quote(good).encode(), FORM)
    if how == "form_garbage":
        value = draw(st.sampled_from([b"", b"{", b"null", b"[1,2]", b"%ZZ", good[: len(good) // 2]]))
        extra = draw(st.sampled_from([b"", b"&json=1", b"&data=x", b"&isDefault=true"]))
        return Probe("content_type", "POST", path, b"json=" + quote(value).encode() + extra, FORM)
    boundary = "ctloopfuzz"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="json"\r\n\r\n'.encode() + good
    body = part + f"\r\n--{boundary}--\r\n".encode()
    return Probe("content_type", "POST", path, body, f"multipart/form-data; boundary={boundary}")


def truncated_json(draw: st.DrawFn, limits: Limits) -> Probe:
    """A good body cut short, with trailing bytes, or plain binary."""
    feedback = draw(st.booleans())
    good = encode(draw(feedback_bodies()) if feedback else draw(request_bodies(limits)))
    how = draw(st.sampled_from(["cut", "cut", "trailing", "garbage"]))
    if how == "cut":
        body = good[: draw(st.integers(0, len(good) - 1))]
    elif how == "trailing":
        body = good + draw(st.sampled_from([b"}", b",", b"xyz", b"\x00", b'{"a": 1}']))
    else:
        body = draw(st.binary(max_size=64))
    return Probe("truncated_json", "POST", _feedback(draw) if feedback else _predict(draw), body)


def oversized(draw: st.DrawFn, limits: Limits) -> Probe:
    """Bodies over the limit (Content-Length, or chunked without one); batches over ``max_batch``."""
    how = draw(st.sampled_from(["content_length", "chunked", "batch", "rows", "feedback"]))
    if how in ("content_length", "chunked"):
        size = draw(st.integers(limits.max_body_bytes + 1, 3 * limits.max_body_bytes))
        head, tail = b'{"jsonData": {"flights": [', b"]}}"
        body = head + b" " * (size - len(head) - len(tail)) + tail
        path = _feedback(draw) if draw(st.integers(0, 3)) == 0 else _predict(draw)
        return Probe("oversized", "POST", path, body, JSON, chunked=how == "chunked", expect=413)
    n = limits.max_batch + draw(st.integers(1, 200))
    if how == "batch":
        return Probe("oversized", "POST", _predict(draw), encode({"jsonData": {"flights": [draw(flights())] * n}}))
    if how == "rows":
        width = max(1, len(limits.feature_names))
        data = {"names": list(limits.feature_names), "ndarray": [[1.0] * width] * n}
        return Probe("oversized", "POST", _predict(draw), encode({"data": data}))
    response = {"jsonData": {"probabilities": [0.5] * n}, "meta": {"tags": {"model_version": "1"}}}
    return Probe(
        "oversized", "POST", _feedback(draw), encode({"response": response, "truth": {"data": {"ndarray": [1] * n}}})
    )


BAD_OUTCOMES: tuple[Any, ...] = (2, -1, 0.5, "1", "", None, [], {}, [1, 0], -0.1, 1.5, True, "1e3", "v1", "0x1")


def feedback(draw: st.DrawFn, limits: Limits) -> Probe:
    """Feedback with bad outcomes, probabilities or versions, counts that disagree, Seldon's other shapes."""
    del limits  # feedback's limits are the same max_batch the oversized kind covers
    body = draw(feedback_bodies())
    value = draw(st.sampled_from(BAD_OUTCOMES) | JSON_VALUES)
    how = draw(st.sampled_from(["value", "count", "features", "delayed"]))
    probabilities = body["response"]["jsonData"]["probabilities"]
    if how == "value":
        body = _put_feedback(draw, body, value)
    elif how == "count":
        body["truth"]["data"]["ndarray"] = [*body["truth"]["data"]["ndarray"], 1]
    elif how == "features":  # Seldon's own shape: data.ndarray of one-element rows
        rows: list[Any] = [[p] for p in probabilities]
        rows[0] = value
        body["response"] = {"data": {"names": ["p"], "ndarray": rows}, "meta": body["response"]["meta"]}
    else:
        body["truth"] = {"jsonData": {"delayed": [value] * len(probabilities)}}
    return Probe("feedback", "POST", _feedback(draw), encode(body))


ODD_PATHS = (
    "//api//v1.0/predictions", "/api/v1.0/predictions/", "/api/v1.0/predictions?x=1", "/%2e%2e/etc/passwd",
    "/api/v1.0/../v1.0/feedback", "/" + "a" * 8000, "/predict?json=%7B%7D", "/predict?json=%7B",
    "/api/v1.0/predictions;x", "/api/v1.0/predictions?json=%5B", "/api/v1.0/feedback?json=%7B%22a%22%3A1%7D",
)  # fmt: skip


def method_path(draw: st.DrawFn, limits: Limits) -> Probe:
    """Every method on every route Seldon's app has, made-up paths, odd paths and query strings."""
    method = draw(st.sampled_from(METHODS))
    made_up = st.text(st.characters(exclude_categories=["Cs"]), max_size=60).map(lambda t: "/" + quote(t, safe="/"))
    path = draw(st.sampled_from(PREDICT_PATHS + FEEDBACK_PATHS + OTHER_PATHS) | made_up | st.sampled_from(ODD_PATHS))
    body = encode(draw(request_bodies(limits))) if draw(st.booleans()) else b""
    return Probe("method_path", method, path, body, draw(st.sampled_from([JSON, None])))


BUILDERS: dict[str, Callable[[st.DrawFn, Limits], Probe]] = {
    "wrong_type": wrong_type,
    "missing_field": missing_field,
    "extra_field": extra_field,
    "huge_number": huge_number,
    "nan_infinity": nan_infinity,
    "unicode": unicode,
    "deep_nesting": deep_nesting,
    "content_type": content_type,
    "truncated_json": truncated_json,
    "oversized": oversized,
    "feedback": feedback,
    "method_path": method_path,
}


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


KINDS = tuple(BUILDERS)


def malformed_probes(limits: Limits, kinds: Sequence[str] = KINDS) -> st.SearchStrategy[Probe]:
    """One probe of a kind drawn evenly from ``kinds``."""

    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        return BUILDERS[draw(st.sampled_from(list(kinds)))](draw, limits)

    return probe()


# -- runs -------------------------------------------------------------------------------------
def _fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def run_malformed(url: str, limits: Limits, requests: int, seed: int = 0, oracle: Oracle | None = None) -> Tally:
    """Send at least ``requests`` malformed probes (rounds of hypothesis generation until enough were sent)."""
    client, judge, tally = Client(url), oracle or Oracle(), Tally()
    for round_ in range(10):
        missing = requests - tally.sent
        if missing <= 0:
            break

        @_fuzz_settings(missing)
        @given(malformed_probes(limits))
        def send(probe: Probe) -> None:
            answer = client.send(probe)
            problem = judge.judge(probe.method, probe.path, answer)
            if problem is None and probe.expect is not None and answer.status != probe.expect:
                problem = f"{answer.status} where {probe.expect} was due: {answer.body[:200]!r}"
            tally.record(probe.kind, answer.status, problem, probe.describe())

        hypothesis_seed(seed + round_)(send)()
    return tally


def run_schema(url: str, examples: int, seed: int = 0, oracle: Oracle | None = None) -> Tally:
    """Schemathesis cases of every documented operation, positive and negative, ``examples`` of each."""
    import requests as http
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis import checks as st_checks
    from schemathesis.core.result import Ok

    checks = [
        st_checks.not_a_server_error,
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.response_headers_conformance,
        st_checks.response_schema_conformance,
        st_checks.negative_data_rejection,
    ]
    # not positive_data_acceptance: the document cannot say that a date exists, that data.names are
    # the model's features, or that feedback has one outcome per prediction; such cases are a 400
    judge, tally = oracle or Oracle(), Tally()
    schema = schemathesis.openapi.from_path(DOCUMENT_PATH)
    session = http.Session()

    def exchange(case: Any, kind: str) -> None:
        response = case.call(base_url=url, session=session, timeout=TIMEOUT_S)
        answer = Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)
        problem = judge.judge(case.method.upper(), case.path, answer)
        try:
            case.validate_response(response, checks=checks)
        except AssertionError as exc:  # schemathesis's failures are AssertionErrors
            problem = problem or f"schemathesis: {str(exc).strip().splitlines()[0][:300]}"
        tally.record(kind, response.status_code, problem, case.as_curl_command()[:400])

    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()  # a part of the document schemathesis cannot use: the document is wrong
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            kind = f"{operation.label} ({mode.value})"

            @_fuzz_settings(examples)
            @given(case=operation.as_strategy(generation_mode=mode), kind=st.just(kind))
            def send(case: Any, kind: str) -> None:
                exchange(case, kind)

            try:
                hypothesis_seed(seed)(send)()
            except Exception as exc:  # an operation without negative cases (no parameters, no body)
                if mode is GenerationMode.NEGATIVE and "Unsatisfiable" in type(exc).__name__:
                    continue
                raise
    return tally


@dataclass(frozen=True)
class Report:
    """Both runs' figures."""

    url: str
    seed: int
    seconds: float
    malformed: Tally
    schema: Tally

    def ok(self) -> bool:
        """No problem in either run."""
        return self.malformed.problem_count == 0 and self.schema.problem_count == 0

    def to_json(self) -> dict[str, Any]:
        """The figures written to ``bench/results/reliability.json``."""
        both = Tally()
        for tally in (self.malformed, self.schema):
            both.sent += tally.sent
            both.statuses.update(tally.statuses)
            both.problem_count += tally.problem_count
        total = both.summary()
        for key in ("by_kind", "first_problems"):
            total.pop(key)
        return {
            "scenario": "fuzz the serving endpoint",
            "url": self.url,
            "seed": self.seed,
            "seconds": round(self.seconds, 1),
            "total": total,
            "malformed": self.malformed.summary(),
            "schemathesis": self.schema.summary(),
        }

    def lines(self) -> list[str]:
        """A short printed summary."""
        out = []
        for name, tally in (("malformed (hypothesis)", self.malformed), ("schemathesis (OpenAPI)", self.schema)):
            out.append(
                f"{name:24} requests {tally.sent:6,}  2xx {tally.count('2xx'):5,}  4xx {tally.count('4xx'):6,}  "
                f"5xx {tally.count('5xx'):3}  no answer {tally.count('no answer'):3}  problems {tally.problem_count}"
            )
        out.extend(f"  problem [{p['kind']}] {p['problem']}\n    {p['request']}" for p in self.malformed.problems[:10])
        out.extend(f"  problem [{p['kind']}] {p['problem']}\n    {p['request']}" for p in self.schema.problems[:10])
        return out


def run(url: str, limits: Limits, requests: int, examples: int, seed: int = 0) -> Report:
    """Both generators against ``url``."""
    oracle = Oracle()
    started = time.monotonic()
    malformed = run_malformed(url, limits, requests, seed, oracle)
    schema = run_schema(url, examples, seed, oracle)
    return Report(url, seed, time.monotonic() - started, malformed, schema)


def write(report: Report, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Put the figures under ``"fuzz"`` in the JSON file at ``path`` (other scenarios keep their keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = {}
    results["fuzz"] = {**report.to_json(), **(extra or {})}
    path.write_text(json.dumps(results, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Fuzz a running endpoint; exit 1 when any answer broke the rules."""
    parser = argparse.ArgumentParser(description="Fuzz the ctloop serving endpoint (no 5xx, structured 4xx).")
    parser.add_argument("--url", required=True, help="the endpoint's base URL, e.g. http://127.0.0.1:9000")
    parser.add_argument("--requests", type=int, default=1000, help="malformed requests to send (at least)")
    parser.add_argument("--examples", type=int, default=100, help="schemathesis cases per operation and mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes)
    parser.add_argument("--max-batch", type=int, default=Limits.max_batch)
    parser.add_argument("--feature-names", default="", help="comma-separated model features (data.names requests)")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    names = tuple(n for n in args.feature_names.split(",") if n)
    report = run(args.url, Limits(args.max_body_bytes, args.max_batch, names), args.requests, args.examples, args.seed)
    print("\n".join(report.lines()))
    if args.output:
        write(report, args.output)
        print(f"figures: {args.output}")
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
